"""One tenant floods the bus; what another tenant sees (not a test).

The embedded stack with roles (each project's agents an account of their own), a detector and a
pauser. Stuck sessions of a calm project run twice: alone (the baseline), then while a second
project's agent publishes the largest events the bus takes as fast as it can, over several
connections. Prints, for both runs, the calm sessions' publish-acknowledgement latency and the
time each stuck session takes to be paused (from its first call), and for the flood what the
stream accepted and how full it stayed.

Usage: python bench/flood.py [--stream-mb 64] [--flood-connections 4] [--stuck 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figures import percentiles  # noqa: E402  (bench/ is this script's folder)
from yokeflow_agent import AgentSession, SessionPaused, connect  # noqa: E402
from yokeflow_agent.contract import MAX_EVENT_BYTES, Subjects  # noqa: E402
from yokeflow_agent.events import agent_event  # noqa: E402

from yokeflow_intervention.cli.up import Infrastructure, prepare_infrastructure  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402
from yokeflow_intervention.shared.settings import Settings  # noqa: E402

FLOOD, CALM = "flood", "calm"


class Timed:
    """An agent session whose publishes are timed (publish to acknowledgement)."""

    def __init__(self, session: AgentSession, acks: list[float]) -> None:
        self.session, self.acks = session, acks

    async def stuck(self) -> float | None:
        """Fail the same call until paused: ms from the first call to the pause (None: not in
        30 calls). Without a verdict in time a call goes ahead (the client fails open), so a
        late pause costs calls, not only time."""
        began = time.perf_counter()
        try:
            for _ in range(30):
                sent = time.perf_counter()
                call = await self.session.tool_call("Bash", {"command": "npm test"})
                self.acks.append((time.perf_counter() - sent) * 1000)
                sent = time.perf_counter()
                await self.session.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL")
                self.acks.append((time.perf_counter() - sent) * 1000)
        except SessionPaused:
            return (time.perf_counter() - began) * 1000
        return None


async def calm_run(url: str, stuck: int) -> tuple[list[float], list[float], int]:
    """`stuck` stuck sessions of the calm project at once: (ack ms, pause ms, never paused)."""
    nc = await connect(url, CALM)
    acks: list[float] = []
    try:
        sessions = [AgentSession(nc, CALM) for _ in range(stuck)]
        await asyncio.gather(*(s.start() for s in sessions))
        results = await asyncio.gather(*(Timed(s, acks).stuck() for s in sessions))
    finally:
        await nc.close()
    paused = [r for r in results if r is not None]
    return acks, paused, len(results) - len(paused)


async def flood(url: str, connections: int, stop: asyncio.Event) -> tuple[int, int]:
    """Publish the largest events the stream stores until `stop`: (accepted, refused)."""
    padding = "p" * (MAX_EVENT_BYTES - 4096)
    counts = [0, 0]

    async def one(lane: int) -> None:
        nc = await connect(url, FLOOD)
        js = nc.jetstream(timeout=30)
        seq = 0
        try:
            while not stop.is_set():
                seq += 1
                session = f"lane{lane}-{seq // 500}"
                event = agent_event(FLOOD, session, seq, "agent_message", text=padding)
                try:
                    await js.publish(
                        Subjects.agent_events(FLOOD, session), json.dumps(event).encode()
                    )
                    counts[0] += 1
                except (nats.errors.Error, TimeoutError):
                    counts[1] += 1
        finally:
            await nc.close()

    await asyncio.gather(*(one(lane) for lane in range(connections)))
    return counts[0], counts[1]


async def measure(args: argparse.Namespace, stack: Infrastructure, temp: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "YOKEFLOW_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    processes = [
        subprocess.Popen(
            product_command(f"services.{role}"),
            env={**env, "NATS_URL": stack.service_urls[role]},
            cwd=ROOT,
            stdout=(temp / f"{role}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for role in ("detector", "pauser")
    ]
    admin = await nats.connect(stack.nats_url.split(","))
    try:
        await asyncio.sleep(3.0)
        acks, paused, missed = await calm_run(stack.agent_urls[CALM], args.stuck)
        print(
            f"alone:       acks {percentiles(acks)}; paused in {percentiles(paused)}; "
            f"never paused {missed}"
        )

        stop = asyncio.Event()
        began = time.perf_counter()
        flooding = asyncio.create_task(flood(stack.agent_urls[FLOOD], args.flood_connections, stop))
        await asyncio.sleep(5.0)  # the stream is full by now
        acks, paused, missed = await calm_run(stack.agent_urls[CALM], args.stuck)
        stop.set()
        accepted, refused = await flooding
        seconds = time.perf_counter() - began
        info = await admin.jetstream().stream_info("AGENT_EVENTS")
        print(
            f"with flood:  acks {percentiles(acks)}; paused in {percentiles(paused)}; "
            f"never paused {missed}"
        )
        size = accepted * MAX_EVENT_BYTES / 2**20
        print(
            f"flood:       {accepted} events ({size:.0f} MiB) accepted in {seconds:.1f} s "
            f"({size / seconds:.0f} MiB/s), {refused} refused; AGENT_EVENTS holds "
            f"{info.state.bytes / 2**20:.1f} of {args.stream_mb} MiB, first sequence "
            f"{info.state.first_seq}"
        )
    finally:
        await admin.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream-mb", type=int, default=64)
    parser.add_argument("--flood-connections", type=int, default=4)
    parser.add_argument("--stuck", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yokeflow-flood-") as folder:
        temp = Path(folder)
        settings = Settings(data_dir=temp, stream_max_bytes=args.stream_mb * 2**20)
        stack = prepare_infrastructure(settings, report=False, agents=(FLOOD, CALM))
        try:
            asyncio.run(measure(args, stack, temp))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
