"""Detector figures on the embedded stack (not a test): throughput ratio and latency.

1. Throughput: 100k events across 1,000 sessions are published as a backlog; the detector
   service (its own process) drains it. The baseline, measured in the same run on the same
   server, is a raw nats-py JetStream pull-consume-and-ack of the same messages.
2. Latency: while 2,000 events/s of background traffic flow (for a second before the first
   trigger too), a triggering event is published every 100 ms for 30 s (300 samples, so the p99
   is not simply the slowest one); the time from its publish to its intervention reaching a
   subscriber is recorded, with what held either side's event loop meanwhile.

Usage: python bench/detector.py [--events 100000] [--sessions 1000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import psutil
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figures import gc_figures, percentile, stall_figures  # noqa: E402  (bench/, this folder)
from yokeflow_agent.contract import CONSUMERS, Subjects, parse_agent_event  # noqa: E402

from yokeflow_intervention.services.detector.rules import DetectionConfig  # noqa: E402
from yokeflow_intervention.services.detector.sessions import SessionBook  # noqa: E402
from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.embedded import EmbeddedNats, free_port  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=UTC)
# The latency run's background traffic flows this long before the first trigger: the samples
# are a running detector's, not its first messages' (its first event ever took 18-55 ms).
WARM_UP_S = 1.0


def session_events(project: str, session: str, count: int) -> list[dict[str, Any]]:
    """A busy, healthy session: varied commands that mostly succeed (no rule fires)."""
    events: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        seq = len(events) + 1
        events.append(
            {
                "v": 1,
                "event_id": f"{session}-{seq}",
                "type": kind,
                "project_id": project,
                "session_id": session,
                "seq": seq,
                "ts": (T0 + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z"),
                **fields,
            }
        )

    add("session_started", workspace="/w", task={"id": "1", "description": "bench"})
    n = 0
    while len(events) < count - 1:
        call_id = f"c{n}"
        add("tool_call", tool="Bash", input={"command": f"step {n}"}, call_id=call_id)
        add(
            "tool_result",
            call_id=call_id,
            tool="Bash",
            result={"ok": n % 17 != 0, "exit_code": 0, "output": f"done {n}", "error": ""},
        )
        n += 1
    add("heartbeat")
    return events[:count]


def interleave(sessions: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Round-robin across sessions: every session's order is kept."""
    rng = random.Random(7)
    queues = [list(reversed(s)) for s in sessions]
    out = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return out


async def publish_all(nc: Client, events: list[dict[str, Any]], subject_of: Any) -> None:
    js = nc.jetstream()
    window: list[Any] = []
    for event in events:
        window.append(
            js.publish(
                subject_of(event),
                json.dumps(event).encode(),
                headers={"Nats-Msg-Id": event["event_id"]},
            )
        )
        if len(window) >= 500:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)


async def raw_baseline(nc: Client, events: list[dict[str, Any]]) -> tuple[float, float]:
    """Events per second and CPU microseconds per event of a raw pull-consume-and-ack."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"]))
    await publish_all(nc, events, lambda e: f"bench.raw.{e['project_id']}.{e['session_id']}")
    sub = await js.pull_subscribe(
        "bench.raw.>",
        durable="raw",
        stream="BENCH_RAW",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000),
    )
    consumed = 0
    start, cpu = time.perf_counter(), time.process_time()
    while consumed < len(events):
        try:
            batch = await sub.fetch(256, timeout=1.0)
        except TimeoutError:
            continue
        for msg in batch:
            json.loads(msg.data)
            await msg.ack()
        consumed += len(batch)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await js.delete_stream("BENCH_RAW")
    return len(events) / elapsed, cpu / len(events) * 1e6


def detection_alone(events: list[dict[str, Any]]) -> float:
    """CPU microseconds an event of the detection itself, in this process, without I/O: parsing
    and validating each event and the rules (`SessionBook.feed`, the watchdog's bookkeeping
    included) over the same events in the same order. Set against the raw consumer's CPU an
    event, it bounds the ratio one replica can reach on this machine, whatever the handling
    around the rules costs."""
    data = [json.dumps(event).encode() for event in events]
    book = SessionBook(DetectionConfig())
    cpu = time.process_time()
    for seq, raw in enumerate(data, 1):
        book.feed(parse_agent_event(raw), time.time(), 0, seq)
    return (time.process_time() - cpu) / len(data) * 1e6


def start_detector(
    url: str, log_dir: Path, replica: int = 0, replicas: int = 1, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YOKEFLOW_METRICS_PORT": str(metrics_port),
        "NATS_URL": url,
        "DATABASE_URL": "unused-by-the-detector",
        "YOKEFLOW_DETECTOR_REPLICA": str(replica),
        "YOKEFLOW_DETECTOR_REPLICAS": str(replicas),
    }
    return subprocess.Popen(
        [
            sys.executable,
            *os.environ.get("BENCH_PROFILE", "").split(),
            *product_command("services.detector")[1:],
        ],
        env=env,
        cwd=ROOT,
        stdout=(log_dir / f"detector-{replica}-of-{replicas}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


async def drained(nc: Client) -> tuple[int, int]:
    """(pending, unacknowledged) over every detector partition."""
    js = nc.jetstream()
    infos = [await js.consumer_info(c.stream, c.durable) for c in CONSUMERS.detector_events]
    return sum(i.num_pending or 0 for i in infos), sum(i.num_ack_pending or 0 for i in infos)


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    times = [psutil.Process(p.pid).cpu_times() for p in processes]
    return sum(t.user + t.system for t in times)


async def detector_throughput(
    nc: Client,
    url: str,
    events: list[dict[str, Any]],
    log_dir: Path,
    replicas: int = 1,
    cpu: list[float] | None = None,
) -> float:
    """Events per second `replicas` detector processes drain from a backlog of `events`; the
    CPU microseconds per event they spent draining it are appended to `cpu`."""
    await publish_all(nc, events, lambda e: Subjects.agent_events(e["project_id"], e["session_id"]))
    detectors = [start_detector(url, log_dir, n, replicas) for n in range(replicas)]
    try:
        start, began = None, 0.0
        while True:
            pending, unacked = await drained(nc)
            if start is None and pending < len(events):
                start, began = time.perf_counter(), cpu_seconds(detectors)
            if start is not None and pending == 0 and unacked == 0:
                rate = len(events) / (time.perf_counter() - start)
                if cpu is not None:
                    cpu.append((cpu_seconds(detectors) - began) / len(events) * 1e6)
                return rate
            # Asking the server about every partition is work for it: every 20 ms it cost
            # the server about 12 µs of CPU an event of the drain. Often only near the end.
            await asyncio.sleep(0.01 if start is not None and pending == 0 else 0.1)
    finally:
        for detector in detectors:
            detector.terminate()
            detector.wait(10)


async def latency(
    nc: Client, url: str, seconds: float, rate: int, log_dir: Path
) -> tuple[list[float], str]:
    """Trigger -> intervention samples, and what held either side's event loop meanwhile: the
    detector's stalls and rounds (its /metrics) and the bench's own lateness, which every
    sample also carries (it publishes the traffic and timestamps the arrivals)."""
    port = free_port()
    detector = start_detector(url, log_dir, metrics_port=port)
    arrivals: dict[str, float] = {}
    late: list[float] = []

    async def lateness() -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            late.append((time.perf_counter() - began - 0.01) * 1000)

    async def arrived(msg: Any) -> None:
        arrivals[json.loads(msg.data)["session_id"]] = time.perf_counter()

    await nc.subscribe("intervention.detected.>", cb=arrived)
    js = nc.jetstream()
    await asyncio.sleep(2.0)  # the detector connects and binds
    sent: dict[str, float] = {}
    # As many events as the traffic sends, and frozen: a full collection in this process
    # walking half a million idle dicts held its loop (and every sample behind it) for 50 ms.
    per_session = int(rate * (WARM_UP_S + seconds) / 50) + 2
    background = [session_events("bg", f"bg-{i}", per_session) for i in range(50)]
    gc.collect()
    gc.freeze()
    cursors = [0] * len(background)

    async def traffic() -> None:
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        end = time.perf_counter() + WARM_UP_S + seconds
        i = 0
        while time.perf_counter() < end:
            began = time.perf_counter()
            batch = []
            for _ in range(per_tick):
                k = i % len(background)
                event = background[k][cursors[k]]
                cursors[k] += 1
                i += 1
                batch.append(
                    js.publish(
                        Subjects.agent_events("bg", event["session_id"]), json.dumps(event).encode()
                    )
                )
            await asyncio.gather(*batch)
            await asyncio.sleep(max(0.0, tick - (time.perf_counter() - began)))

    async def triggers() -> None:
        await asyncio.sleep(WARM_UP_S)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            session = f"trig-{uuid.uuid4().hex[:8]}"
            start, call, _ = session_events("lat", session, 3)
            result = {
                **call,
                "event_id": f"{session}-3",
                "type": "tool_result",
                "seq": 3,
                "result": {"ok": False, "error": "Error: listen EADDRINUSE :::3000"},
            }
            for event in (start, call):
                await js.publish(Subjects.agent_events("lat", session), json.dumps(event).encode())
            sent[session] = time.perf_counter()
            await js.publish(Subjects.agent_events("lat", session), json.dumps(result).encode())
            await asyncio.sleep(0.1)

    probe = asyncio.create_task(lateness())
    try:
        await asyncio.gather(traffic(), triggers())
        await asyncio.sleep(2.0)
        probe.cancel()
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        gc.unfreeze()
        probe.cancel()
        detector.terminate()
        detector.wait(10)
    collections, slow, slowest, _ = gc_figures(text)
    held = (
        f"detector: {stall_figures(text)}; {collections} full collections "
        f"({slow} over 50 ms, <= {slowest:.0f} ms)\n"
        f"bench's own loop: late p99 {percentile(late, 0.99):.1f} ms, "
        f"{sum(1 for ms in late if ms > 10)} times over 10 ms (its max {max(late):.0f} ms)"
    )
    return [(arrivals[s] - t) * 1000 for s, t in sent.items() if s in arrivals], held


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="yokeflow-bench-") as temp:
        server = EmbeddedNats(Path(temp) / "nats").start(reuse=False)
        try:
            nc = await nats.connect(server.url)
            await provision(nc)
            per_session = args.events // args.sessions
            print(
                f"generating {args.events} events across {args.sessions} sessions ...", flush=True
            )
            events = interleave(
                [session_events("bench", f"s{i}", per_session) for i in range(args.sessions)]
            )
            raw, raw_cpu = await raw_baseline(nc, events)
            line = f"raw nats-py pull-consume-and-ack: {raw:,.0f} events/s, {raw_cpu:.0f} µs CPU"
            print(f"{line} an event", flush=True)
            cpu: list[float] = []
            detected = await detector_throughput(nc, server.url, events, Path(temp), cpu=cpu)
            line = (
                f"detector service:                 {detected:,.0f} events/s, {cpu[0]:.0f} µs CPU"
            )
            print(f"{line} an event", flush=True)
            ratios = f"{detected / raw:.2f}  (target >= 1.0); CPU an event {cpu[0] / raw_cpu:.2f}"
            print(f"throughput ratio detector/raw:    {ratios}")
            alone = detection_alone(events)
            print(
                f"parse + rules alone, no I/O:      {alone:.0f} µs CPU an event (raw consumer's "
                f"{raw_cpu:.0f} µs / this: {raw_cpu / alone:.2f}, the ratio's ceiling here)",
                flush=True,
            )
            samples, held = await latency(nc, server.url, args.seconds, args.rate, Path(temp))
            if samples:
                print(
                    f"latency trigger -> intervention with {args.rate} events/s background, "
                    f"{len(samples)} samples: p50 {statistics.median(samples):.1f} ms, "
                    f"p99 {percentile(samples, 0.99):.1f} ms  (target p99 < 10 ms)"
                )
                print(held)
            else:
                print("latency: no intervention arrived; see the detector log")
            await nc.close()
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=2_000, help="background events per second")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
