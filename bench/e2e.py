"""End-to-end figures on the embedded stack (not a test).

1,000 concurrent sessions stream healthy tool calls through the whole pipeline (detector,
pauser, notifier, each its own process); 1 session in 10 hits a critical error at a random
point. Prints the sustained event rate the pipeline absorbed, p50/p99 latency from each
triggering event's publish to (a) the session's KV control state showing `paused` and (b) the
local webhook peer receiving the notification, and the peak memory (RSS) of every service.

Usage: python bench/e2e.py [--sessions 1000] [--events 30] [--stuck-every 10]
                           [--detector-replicas 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figures import gc_figures, percentiles, stall_figures  # noqa: E402
from yokeflow_agent.contract import (  # noqa: E402
    CONSUMERS,
    CONTROL_BUCKET,
    ControlKeys,
    Intervention,
    Subjects,
)

from tests.peers import HttpPeer  # noqa: E402
from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.db import migrate  # noqa: E402
from yokeflow_intervention.shared.embedded import free_port, throwaway_stack  # noqa: E402
from yokeflow_intervention.shared.handling import delivery  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

SERVICES = ("detector", "pauser", "notifier")


def service_processes(replicas: int) -> list[tuple[str, str, dict[str, str]]]:
    """(name, role, extra environment) of every process: `replicas` detectors sharing the
    partitions, one pauser, one notifier."""
    detectors = [
        (
            f"detector-{n + 1}" if replicas > 1 else "detector",
            "detector",
            {"YOKEFLOW_DETECTOR_REPLICA": str(n), "YOKEFLOW_DETECTOR_REPLICAS": str(replicas)},
        )
        for n in range(replicas)
    ]
    return [*detectors, *((role, role, {}) for role in SERVICES if role != "detector")]


def event(project: str, session: str, seq: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "event_id": f"{session}-{seq}",
        "type": kind,
        "project_id": project,
        "session_id": session,
        "seq": seq,
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **fields,
    }


class BrokenLoad(SystemExit):
    """The benchmark did not offer the load it describes: its figures would be about another."""


@dataclass
class Load:
    """What the publisher planned and what it got out, so a broken load is said, not printed
    as figures."""

    planned: int = 0
    offered: int = 0
    retries: int = 0
    gave_up: int = 0
    disconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def problems(self) -> list[str]:
        found = []
        if self.disconnects:
            found.append(f"the publisher lost its NATS connection {self.disconnects} times")
        if self.gave_up:
            found.append(f"{self.gave_up} sessions gave up on a publish")
        if self.offered != self.planned:
            found.append(f"{self.offered:,} of {self.planned:,} planned events were offered")
        if found and self.errors:
            found.append("publish errors: " + ", ".join(f"{n} {e}" for e, n in self.errors.items()))
        return found


class Publisher:
    """Many agents' publishes over a few connections, with a bound on publishes in flight (so
    neither this process nor the server's outbound buffers to it overflow, which reset the
    connection of a single connection carrying 100,000 agents), each retried under its
    `Nats-Msg-Id` until `patience` runs out (the stream drops a repeat)."""

    def __init__(self, load: Load, in_flight: int = 512, patience: float = 180.0) -> None:
        self.load = load
        self.connections: list[Any] = []
        self._limit = asyncio.Semaphore(in_flight)
        self._patience = patience

    async def connect(self, nats_url: str, connections: int) -> None:
        async def disconnected() -> None:
            self.load.disconnects += 1

        for _ in range(connections):
            connection = await nats.connect(
                nats_url,
                disconnected_cb=disconnected,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,
                pending_size=8 * 2**20,
            )
            self.connections.append(connection)

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()

    async def publish(self, index: int, subject: str, payload: dict[str, Any]) -> None:
        js = self.connections[index % len(self.connections)].jetstream()
        data, headers = json.dumps(payload).encode(), {"Nats-Msg-Id": payload["event_id"]}
        give_up = time.monotonic() + self._patience
        while True:
            try:
                async with self._limit:
                    await js.publish(subject, data, headers=headers, timeout=10)
                self.load.offered += 1
                return
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                self.load.errors[type(exc).__name__] += 1
                if time.monotonic() > give_up:
                    self.load.gave_up += 1
                    raise
                self.load.retries += 1
                await asyncio.sleep(0.5)


async def run_session(
    publisher: Publisher,
    index: int,
    events: int,
    stuck: bool,
    sent: dict[str, float],
    gap: float = 0.5,
) -> None:
    project, session = f"e2e-p{index % 50}", f"e2e-s{index}"
    subject = Subjects.agent_events(project, session)
    trip_at = random.randint(3, max(events - 2, 3)) if stuck else -1  # a result's seq is odd
    last = 1 + 2 * ((events - 1) // 2)  # a healthy session's last seq
    publisher.load.planned += min(trip_at | 1, last) if stuck else last  # results: odd seqs

    async def publish(payload: dict[str, Any]) -> None:
        await publisher.publish(index, subject, payload)

    await asyncio.sleep(random.uniform(0, gap))  # agents start over time, not all at once
    await publish(event(project, session, 1, "session_started", workspace="/w"))
    seq = 1
    for n in range((events - 1) // 2):
        await asyncio.sleep(random.uniform(0.4 * gap, 1.6 * gap))
        seq += 1
        await publish(
            event(
                project,
                session,
                seq,
                "tool_call",
                tool="Bash",
                input={"command": f"step {n}"},
                call_id=f"c{n}",
            )
        )
        seq += 1
        failing = seq >= trip_at > 0
        result = {
            "ok": not failing,
            "exit_code": 1 if failing else 0,
            "output": f"done {n}",
            "error": "Error: connect ECONNREFUSED 127.0.0.1:6379" if failing else "",
        }
        if failing:
            sent[session] = time.perf_counter()
        await publish(
            event(project, session, seq, "tool_result", call_id=f"c{n}", tool="Bash", result=result)
        )
        if failing:
            return  # a stopped agent stops


async def stored_latencies(
    js: Any, sessions: dict[str, float], decided: dict[str, datetime]
) -> tuple[list[float], list[float], list[float]]:
    """Trigger -> paused by the server's own timestamps: when the stream stored each stuck
    session's last event (its trigger: a stopped agent stops) and when the session's control
    state was stored. Free of the publishing process's own queueing (100,000 agents in one
    event loop), which the latency seen from here includes. Split where the stream stored the
    intervention: the detector's part (trigger stored -> intervention stored) and the pauser's
    (intervention stored -> paused stored)."""
    total, detector, rest = [], [], []
    for session in sessions:
        project = f"e2e-p{int(session.removeprefix('e2e-s')) % 50}"
        try:
            trigger = await js.get_last_msg(
                "AGENT_EVENTS", Subjects.agent_events_stored(project, session)
            )
            paused = await js.get_last_msg(
                f"KV_{CONTROL_BUCKET}",
                f"$KV.{CONTROL_BUCKET}.{ControlKeys.session(project, session)}",
            )
        except (nats.errors.Error, TimeoutError):  # never paused: not counted
            continue
        if trigger.time and paused.time:
            total.append((paused.time - trigger.time).total_seconds() * 1000)
            if session in decided:
                detector.append((decided[session] - trigger.time).total_seconds() * 1000)
                rest.append((paused.time - decided[session]).total_seconds() * 1000)
    return total, detector, rest


async def measure(
    args: argparse.Namespace, nats_url: str, database_url: str, temp: Path
) -> dict[str, Any]:
    """Run the load and print its figures; returns them. Raises BrokenLoad, printing no
    figures, when the load offered was not the load planned."""
    nc = await nats.connect(nats_url)
    await provision(nc)
    await migrate(database_url)
    paused_at: dict[str, float] = {}

    async def on_control(msg: Any) -> None:
        if msg.data and json.loads(msg.data).get("state") == "paused":
            paused_at.setdefault(msg.subject.rsplit(".", 1)[-1], time.perf_counter())

    await nc.subscribe("$KV.session_control.>", cb=on_control)
    decided: dict[str, datetime] = {}

    async def on_detected(msg: Any) -> None:
        session = Intervention.model_validate_json(msg.data).session_id
        decided.setdefault(session, datetime.fromtimestamp(delivery(msg).stored_at, UTC))

    await nc.jetstream().subscribe(Subjects.DETECTED_ALL, cb=on_detected, ordered_consumer=True)
    load = Load()
    publisher = Publisher(load)
    await publisher.connect(nats_url, args.connections)
    with HttpPeer() as peer:
        env = {
            **os.environ,
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "YOKEFLOW_WEBHOOK_URL": peer.slack_url(),
            "YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS": "true",
            "YOKEFLOW_MIN_NOTIFICATION_INTERVAL": "0",
            # Every stuck session its own notice, timed: grouped into an incident, only the
            # first stop of a kind in a project would reach the peer.
            "YOKEFLOW_NOTIFICATION_GROUP_WINDOW": "0",
            "YOKEFLOW_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        roles = service_processes(getattr(args, "detector_replicas", 1))
        metrics = {name: free_port() for name, _, _ in roles}
        processes = {
            name: subprocess.Popen(
                product_command(f"services.{role}"),
                env={**env, **extra, "YOKEFLOW_METRICS_PORT": str(metrics.get(name, 0))},
                cwd=ROOT,
                stdout=(temp / f"{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for name, role, extra in roles
        }
        await asyncio.sleep(3.0)
        peak = dict.fromkeys(processes, 0)

        async def sample_memory() -> None:
            while True:
                for name, process in processes.items():
                    try:
                        peak[name] = max(peak[name], psutil.Process(process.pid).memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample_memory())
        sent: dict[str, float] = {}
        js = nc.jetstream()
        began = time.perf_counter()
        stuck_every = args.stuck_every or max(args.sessions // 100, 1)
        agents = [
            asyncio.ensure_future(
                run_session(publisher, i, args.events, i % stuck_every == 0, sent, args.gap)
            )
            for i in range(args.sessions)
        ]
        # This process's own 100,000 agents, out of its collector's walk: a full collection of
        # them took 1-2 s, delaying both the load offered and the arrivals timed.
        gc.freeze()
        outcomes = await asyncio.gather(*agents, return_exceptions=True)
        gc.unfreeze()
        published_in = time.perf_counter() - began
        broken = load.problems()
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if len(failed) > load.gave_up:  # anything else that stopped a session is the bench's own
            broken.append(f"{len(failed)} sessions failed, e.g. {failed[0]!r}")
        while not broken:  # until the detector has handled every event, in every partition
            infos = [await js.consumer_info(c.stream, c.durable) for c in CONSUMERS.detector_events]
            if not any(i.num_pending or i.num_ack_pending for i in infos):
                break
            await asyncio.sleep(0.05)
        absorbed_in = time.perf_counter() - began
        deadline = time.perf_counter() + 30
        while (
            not broken
            and len(peer.accepted("slack")) < len(sent)
            and time.perf_counter() < deadline
        ):
            await asyncio.sleep(0.1)
        sampler.cancel()
        to_pause = [(paused_at[s] - t) * 1000 for s, t in sent.items() if s in paused_at]
        stored, in_detector, after_detector = await stored_latencies(js, sent, decided)
        delivered = {}
        for received in peer.accepted("slack"):
            fields = {f["title"]: f["value"] for f in received.body["attachments"][0]["fields"]}
            delivered.setdefault(fields["Session"], received.at)
        to_peer = [(delivered[s] - t) * 1000 for s, t in sent.items() if s in delivered]
        async with httpx.AsyncClient(timeout=5) as client:
            scraped = {
                name: (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                for name, port in metrics.items()
            }
        collections = {
            name: gc_figures(text) for name, text in scraped.items() if name.startswith("detector")
        }
        for process in processes.values():
            process.terminate()
            process.wait(10)
    await publisher.close()
    await nc.close()
    if not broken and not sent:
        broken.append("no session got stuck: there is no latency to measure")
    if not broken and len(stored) < len(sent):
        broken.append(f"only {len(stored)} of {len(sent)} stuck sessions were paused")
    if broken:
        raise BrokenLoad(
            f"{args.sessions:,} sessions: the load broke, so no figures: " + "; ".join(broken)
        )
    total = load.offered
    print(
        f"{args.sessions} concurrent sessions, {total} events published in {published_in:.1f} s "
        f"({total / published_in:,.0f} events/s offered; {load.retries} publishes retried); "
        f"the detector absorbed them all {absorbed_in - published_in:.2f} s after the last "
        "publish"
    )
    print(f"{len(sent)} sessions got stuck")
    print(f"triggering event -> KV state paused:        {percentiles(to_pause)}")
    print(f"  the same, as the server stored them:      {percentiles(stored)}")
    print(f"    trigger -> intervention (the detector): {percentiles(in_detector)}")
    print(f"    intervention -> paused (the pauser):    {percentiles(after_detector)}")
    print(f"triggering event -> webhook peer received:  {percentiles(to_peer)}")
    print("peak memory: " + ", ".join(f"{n} {rss / 2**20:.0f} MiB" for n, rss in peak.items()))
    pauses = ", ".join(
        f"{n} {count} ({slow}, <= {worst:.0f} ms; {frozen:,} objects frozen)"
        for n, (count, slow, worst, frozen) in collections.items()
    )
    print(f"full collections (> 50 ms, slowest; frozen in all): {pauses}")
    for name, text in scraped.items():
        print(f"  {name}: {stall_figures(text)}")
    return {
        "sessions": args.sessions,
        "events": total,
        "rate": total / published_in,
        "seen": to_pause,
        "stored": stored,
        "webhook": to_peer,
        "peak": peak,
        "collections": collections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--events", type=int, default=30, help="events per healthy session")
    parser.add_argument("--stuck-every", type=int, default=10, help="1 session in N gets stuck")
    parser.add_argument("--connections", type=int, default=4, help="the publisher's connections")
    parser.add_argument("--gap", type=float, default=0.5, help="mean seconds between tool calls")
    parser.add_argument("--detector-replicas", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yokeflow-e2e-") as folder:
        temp = Path(folder)
        with throwaway_stack(temp) as (nats_url, database_url):
            asyncio.run(measure(args, nats_url, database_url, temp))


if __name__ == "__main__":
    main()
