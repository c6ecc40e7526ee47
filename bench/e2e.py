"""End-to-end figures on the embedded stack (not a test).

1,000 concurrent sessions stream healthy tool calls through the whole pipeline (detector,
pauser, notifier, each its own process); 1 session in 10 hits a critical error at a random
point. Prints the sustained event rate the pipeline absorbed, p50/p99 latency from each
triggering event's publish to (a) the session's KV control state showing `paused` and (b) the
local webhook peer receiving the notification, and the peak memory (RSS) of every service; with
what each process (this bench's agents, each service, NATS, PostgreSQL) spent of the machine's
CPU meanwhile and how long it waited for a core (Linux), and what the server stored. The agents
publish from one schedule at a lower CPU priority than the product (`Fleet`,
`below_the_product`): they share its two cores here.

Usage: python bench/e2e.py [--sessions 1000] [--events 30] [--stuck-every 10]
                           [--detector-replicas 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
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
# The names `spent_so_far` gives this process and the NATS server (bench/scale.py reads them).
AGENTS, NATS_SERVER = "agents (this bench)", "NATS"


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


class Fleet:
    """Many agents' sessions over a few connections, driven by one schedule, as cheaply for
    this process as the load allows: it shares the machine with what it measures (at 100,000
    sessions, 100,000 sleeping coroutines each awaiting nats-py's JetStream publish, a request
    with its own future, token and timer, took more than half a core).

    An agent publishes its next event once the stream acknowledged the last one (as an agent
    does), after its gap. Each publish is a JetStream publish: a core publish with a reply
    subject on its connection's ack inbox, answered by the stream; in flight at most
    `in_flight` (so neither this process nor the server's outbound buffers to it overflow,
    which reset the connection of a single connection carrying 100,000 agents); one refused or
    unanswered within `ack_wait` is sent again under its `Nats-Msg-Id` (the stream drops a
    repeat) until `patience` runs out for that agent."""

    def __init__(
        self,
        load: Load,
        sent: dict[str, float],
        in_flight: int = 512,
        patience: float = 180.0,
        ack_wait: float = 10.0,
    ) -> None:
        self.load = load
        self.sent = sent  # stuck session -> when its trigger was published (perf_counter)
        self.connections: list[Any] = []
        self._limit = in_flight
        self._patience = patience
        self._ack_wait = ack_wait
        self._due: list[tuple[float, int, _Agent]] = []  # (when, tiebreak, agent), a heap
        self._waiting: dict[str, tuple[_Agent, float]] = {}  # ack token -> (agent, sent at)
        self._tokens = itertools.count()
        self._agents = 0  # not finished yet
        self._woken = asyncio.Event()

    async def connect(self, nats_url: str, connections: int) -> None:
        async def disconnected() -> None:
            self.load.disconnects += 1

        for n in range(connections):
            connection = await nats.connect(
                nats_url,
                disconnected_cb=disconnected,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,
                pending_size=8 * 2**20,
            )
            await connection.subscribe(f"_BENCH_ACKS.{n}.*", cb=self._acked)
            self.connections.append(connection)

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()

    def add(self, index: int, events: int, stuck: bool, gap: float) -> None:
        """Agent `index`: `events` events (a stuck one stops at its trigger), `gap` seconds
        apart on average, starting within the first `gap`."""
        project, session = f"e2e-p{index % 50}", f"e2e-s{index}"
        trip_at = random.randint(3, max(events - 2, 3)) if stuck else -1  # a result's seq is odd
        last = 1 + 2 * ((events - 1) // 2)  # a healthy session's last seq
        self.load.planned += min(trip_at | 1, last) if stuck else last  # results: odd seqs
        agent = _Agent(
            index % len(self.connections),
            Subjects.agent_events(project, session),
            session,
            agent_steps(project, session, events, trip_at, gap),
        )
        self._agents += 1
        self._next(agent, time.monotonic())

    async def run(self) -> None:
        """Until every agent has published its last event or given up."""
        checked = time.monotonic()
        while self._agents:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now and len(self._waiting) < self._limit:
                await self._publish(heapq.heappop(self._due)[2])
            if now - checked > 0.1:
                self._expire(now)
                checked = now
            wait = 0.05 if not self._due else min(max(self._due[0][0] - now, 0.001), 0.05)
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), wait)

    def _next(self, agent: _Agent, now: float) -> None:
        step = next(agent.steps, None)
        if step is None:
            self._agents -= 1
            return
        wait, agent.trigger, agent.payload = step
        agent.give_up = 0.0
        heapq.heappush(self._due, (now + wait, next(self._tokens), agent))

    async def _publish(self, agent: _Agent) -> None:
        assert agent.payload is not None
        if not agent.give_up:  # its first attempt: stamped now, as an agent sends it
            agent.payload["ts"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            agent.data = json.dumps(agent.payload).encode()
            agent.give_up = time.monotonic() + self._patience
            if agent.trigger:
                self.sent[agent.session] = time.perf_counter()
        token = str(next(self._tokens))
        self._waiting[token] = (agent, time.monotonic())
        await self.connections[agent.connection].publish(
            agent.subject,
            agent.data,
            reply=f"_BENCH_ACKS.{agent.connection}.{token}",
            headers={"Nats-Msg-Id": agent.payload["event_id"]},
        )

    async def _acked(self, msg: Any) -> None:
        waiting = self._waiting.pop(msg.subject.rpartition(".")[2], None)
        if waiting is None:
            return  # answered after it was given up on and sent again
        agent, _ = waiting
        if b'"seq"' in msg.data and b'"error"' not in msg.data:
            self.load.offered += 1
            self._next(agent, time.monotonic())
        else:
            self._failed(agent, _refusal(msg))
        self._woken.set()

    def _expire(self, now: float) -> None:
        overdue = [t for t, (_, at) in self._waiting.items() if now - at > self._ack_wait]
        for token in overdue:
            self._failed(self._waiting.pop(token)[0], "TimeoutError")

    def _failed(self, agent: _Agent, why: str) -> None:
        self.load.errors[why] += 1
        if time.monotonic() > agent.give_up:
            self.load.gave_up += 1
            self._agents -= 1
            return
        self.load.retries += 1
        heapq.heappush(self._due, (time.monotonic() + 0.5, next(self._tokens), agent))


def _refusal(msg: Any) -> str:
    """Why the stream did not store a publish: its error, or the status nobody answered with."""
    status = (msg.headers or {}).get("Status")
    if status:
        return f"status {status}"
    try:
        return str(json.loads(msg.data)["error"]["description"])
    except (ValueError, KeyError, TypeError):
        return "an answer that is not an acknowledgement"


@dataclass(eq=False)
class _Agent:
    connection: int
    subject: str
    session: str
    steps: Iterator[tuple[float, bool, dict[str, Any]]]
    trigger: bool = False
    payload: dict[str, Any] | None = None
    data: bytes = b""
    give_up: float = 0.0


def agent_steps(
    project: str, session: str, events: int, trip_at: int, gap: float
) -> Iterator[tuple[float, bool, dict[str, Any]]]:
    """(seconds to wait first, whether it is the trigger, the event) of one session, in turn:
    a start within the first `gap`, then tool calls and their results `gap` apart on average;
    a stuck session's result fails at `trip_at` and it stops there."""
    yield (
        random.uniform(0, gap),
        False,
        event(project, session, 1, "session_started", workspace="/w"),
    )
    seq = 1
    for n in range((events - 1) // 2):
        seq += 1
        call = event(
            project,
            session,
            seq,
            "tool_call",
            tool="Bash",
            input={"command": f"step {n}"},
            call_id=f"c{n}",
        )
        yield random.uniform(0.4 * gap, 1.6 * gap), False, call
        seq += 1
        failing = seq >= trip_at > 0
        result = {
            "ok": not failing,
            "exit_code": 1 if failing else 0,
            "output": f"done {n}",
            "error": "Error: connect ECONNREFUSED 127.0.0.1:6379" if failing else "",
        }
        yield (
            0.0,
            failing,
            event(
                project, session, seq, "tool_result", call_id=f"c{n}", tool="Bash", result=result
            ),
        )
        if failing:
            return  # a stopped agent stops


@contextlib.contextmanager
def below_the_product(niceness: int = 10) -> Iterator[None]:
    """This process (the agents) at a lower CPU priority than the product's processes while
    it publishes: a fleet's agents do not run on the cores of its detectors, and here the
    scheduler would otherwise make a stop wait for a core behind 100,000 agents' publishes.
    The load is unchanged (the figures say what was offered), and the latencies that count
    are timed by the server. Restoring the priority afterwards needs root (CAP_SYS_NICE);
    without it, what this process starts later (the next size's stack) runs at the lower
    priority too, as everything did before."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, before + niceness)
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)
        except PermissionError:
            print("(not root: this process stays at the lower priority)", flush=True)


def _waited(pid: int) -> float:
    """Seconds the process's threads have spent runnable but not running (waiting on a run
    queue for a core), from Linux's schedstat; 0 where the kernel does not keep it."""
    waited = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                waited += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return waited / 1e9


def spent_so_far(services: dict[str, int], folder: Path) -> tuple[Counter[str], Counter[str]]:
    """CPU seconds spent so far, and seconds spent waiting for a core, by this process (the
    agents), each service and the stack's servers (NATS, PostgreSQL: the processes whose
    command line holds `folder`, and their children), by name. They share the machine: a
    figure the load generator's own share explains is not the product's, and a process that
    waits for a core as long as it runs answers late however little it spends."""
    names = {pid: name for name, pid in services.items()}
    names[os.getpid()] = AGENTS
    running = {p.pid: p.info for p in psutil.process_iter(["ppid", "name", "cmdline", "cpu_times"])}

    def name_of(pid: int) -> str | None:
        for _ in range(8):  # a process, its parent, ...: the first one that is named
            info = running.get(pid)
            if pid in names or info is None:
                return names.get(pid)
            if str(folder) in " ".join(info["cmdline"] or ()):
                return NATS_SERVER if "nats" in (info["name"] or "") else "PostgreSQL"
            pid = info["ppid"]
        return None

    spent: Counter[str] = Counter()
    waited: Counter[str] = Counter()
    for pid, info in running.items():
        name = name_of(pid)
        if name is not None and info["cpu_times"] is not None:
            spent[name] += info["cpu_times"].user + info["cpu_times"].system
            waited[name] += _waited(pid)
    return spent, waited


async def stream_writes(js: Any) -> Counter[str]:
    """How many messages each stream has stored so far (its last sequence): the server's writes
    during a run, apart from the load's own events (bucket puts are writes too)."""
    return Counter({info.config.name: info.state.last_seq for info in await js.streams_info()})


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
    sent: dict[str, float] = {}
    fleet = Fleet(load, sent)
    await fleet.connect(nats_url, args.connections)
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
        js = nc.jetstream()
        stuck_every = args.stuck_every or max(args.sessions // 100, 1)
        for index in range(args.sessions):
            fleet.add(index, args.events, index % stuck_every == 0, args.gap)
        # This process's own 100,000 agents, out of its collector's walk: a full collection of
        # them took 1-2 s, delaying both the load offered and the arrivals timed.
        gc.freeze()
        pids = {name: process.pid for name, process in processes.items()}
        stored_before = await stream_writes(js)
        (spent, waited), began = spent_so_far(pids, temp), time.perf_counter()
        psutil.cpu_percent()
        with below_the_product():
            await fleet.run()
        gc.unfreeze()
        published_in = time.perf_counter() - began
        busy = psutil.cpu_percent() * (psutil.cpu_count() or 1)
        spent_after, waited_after = spent_so_far(pids, temp)
        shares = {n: s / published_in for n, s in (spent_after - spent).items()}
        waits = {n: s / published_in for n, s in (waited_after - waited).items()}
        writes = await stream_writes(js) - stored_before
        broken = load.problems()
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
        delivered: dict[str, float] = {}
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
    await fleet.close()
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
    print(
        f"CPU while publishing, share of a core (the machine: {busy:.0f} % of "
        f"{(psutil.cpu_count() or 1) * 100} %): "
        + ", ".join(f"{n} {share:.0%}" for n, share in sorted(shares.items(), key=lambda i: -i[1]))
    )
    if any(waits.values()):  # Linux keeps it
        print(
            "waiting for a core while publishing (runnable, not running), share of the time: "
            + ", ".join(f"{n} {w:.0%}" for n, w in sorted(waits.items(), key=lambda i: -i[1]))
        )
    print(
        "stored while publishing: "
        + ", ".join(f"{n} {count:,}" for n, count in writes.most_common() if count)
    )
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
        "cpu": shares,
        "waited": waits,
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
