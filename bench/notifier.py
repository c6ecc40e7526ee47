"""Notifier figures on the embedded stack (not a test): scaling across replicas, and latency.

For 1, 2 and 4 notifier replicas (separate processes sharing one durable consumer), N
interventions are paused across 20 projects (no rate limit) and delivered to a local webhook
peer that answers after 50 ms. Prints notifications/s, the scaling ratio against 1 replica
measured in the same run, and p50/p99 from `intervention.paused` to the peer receiving the
webhook.

Usage: python bench/notifier.py [--interventions 300] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figures import percentile  # noqa: E402  (bench/ is this script's folder)
from yokeflow_agent.contract import Intervention, Subjects  # noqa: E402

from tests.peers import HttpPeer  # noqa: E402
from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.db import migrate  # noqa: E402
from yokeflow_intervention.shared.embedded import throwaway_stack  # noqa: E402
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402


def start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        product_command(f"services.{service}"),
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _publish(js: object, prefix: str, projects: list[str], count: int) -> list[str]:
    ids = []
    for i in range(count):
        item = Intervention(
            intervention_id=f"{prefix}-{i}",
            project_id=projects[i % len(projects)],
            session_id=f"{prefix}-s{i}",
            trigger="retry_limit",
            reason="bench",
            detected_at=datetime.now(UTC),
        )
        await js.publish(
            Subjects.detected(item.project_id),
            item.model_dump_json().encode(),  # type: ignore[attr-defined]
            headers={"Nats-Msg-Id": item.intervention_id},
        )
        ids.append(item.intervention_id)
    return ids


async def run(
    replicas: int, count: int, env: dict[str, str], peer: HttpPeer, temp: Path
) -> tuple[float, list[float]]:
    """Throughput: `count` interventions paused as fast as the pauser can. Latency: a trickle."""
    pool = await asyncpg.create_pool(env["DATABASE_URL"])
    assert pool is not None
    projects = [f"bench{replicas}-p{i}" for i in range(20)]
    for project in projects:
        await save_preferences(
            pool,
            project,
            # Every stop its own notice: no rate limit, and no grouping of the project's stops
            # of one kind into an incident (which would notify the first of each and no other).
            NotificationPreferences(
                webhook_enabled=True,
                webhook_url=peer.slack_url(),
                min_notification_interval=0,
                notification_group_window=0,
            ),
        )
    await pool.close()
    nc = await nats.connect(env["NATS_URL"])
    paused_at: dict[str, float] = {}

    async def on_paused(msg: nats.aio.msg.Msg) -> None:
        paused_at.setdefault(json.loads(msg.data)["intervention_id"], time.perf_counter())

    await nc.subscribe("intervention.paused.>", cb=on_paused)
    js = nc.jetstream()
    # Replicas bind first, so the deliver group spreads the work as it arrives (a replica that
    # binds alone to a backlog is handed up to max_ack_pending messages at once).
    processes = [start("notifier", env, temp / f"notifier-{i}.log") for i in range(replicas)]
    await asyncio.sleep(3.0)
    await _publish(js, f"bench{replicas}", projects, count)
    before = len(peer.accepted("slack"))
    processes.append(start("pauser", env, temp / "pauser.log"))
    while len(peer.accepted("slack")) - before < 1:
        await asyncio.sleep(0.005)
    began = time.perf_counter()  # from the first delivery: process start-up is not throughput
    deadline = time.perf_counter() + 120
    while len(peer.accepted("slack")) - before < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    delivered = len(peer.accepted("slack")) - before
    if delivered < count:
        print(f"  only {delivered} of {count} delivered in 120 s")
        pool = await asyncpg.create_pool(env["DATABASE_URL"])
        assert pool is not None
        rows = await pool.fetch(
            "SELECT d.intervention_id, d.status, d.detail, d.attempts"
            " FROM notification_deliveries d"
            " WHERE d.project_id LIKE $1 AND d.status <> 'sent'",
            f"bench{replicas}-%",
        )
        decisions = await pool.fetchval(
            "SELECT count(*) FROM notification_decisions WHERE project_id LIKE $1",
            f"bench{replicas}-%",
        )
        paused = await pool.fetchval(
            "SELECT count(*) FROM paused_sessions WHERE project_id LIKE $1", f"bench{replicas}-%"
        )
        print(f"  paused rows {paused}, decisions {decisions}, not sent: {[dict(r) for r in rows]}")
        await pool.close()
        for log in sorted(temp.glob("notifier-*.log")):
            problems = [
                line for line in log.read_text().splitlines() if "warn" in line or "error" in line
            ]
            print(f"  {log.name}: {problems[-3:]}")
    rate = (delivered - 1) / (time.perf_counter() - began)

    before = len(peer.accepted("slack"))
    trickle = [f"{replicas}-t{i}" for i in range(100)]
    for name in trickle:
        await _publish(js, f"trickle{name}", projects, 1)
        await asyncio.sleep(0.05)  # 20 interventions/s
    deadline = time.perf_counter() + 60
    while len(peer.accepted("slack")) - before < len(trickle) and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
    latencies = []
    for received in peer.accepted("slack")[before:]:
        sent = paused_at.get(
            received.body["attachments"][0]["footer"].removeprefix("intervention ")
        )
        if sent is not None:
            latencies.append((received.at - sent) * 1000)
    for process in processes:
        process.terminate()
        process.wait(10)
    await nc.close()
    if delivered < count or len(latencies) < len(trickle):
        raise SystemExit(
            f"{replicas} replica(s): {delivered} of {count} notifications and "
            f"{len(latencies)} of {len(trickle)} timed ones delivered; no figures for a run "
            "that lost part of its load (the lines above say why)"
        )
    return rate, latencies


async def measure(args: argparse.Namespace, nats_url: str, database_url: str, temp: Path) -> None:
    nc = await nats.connect(nats_url)
    await provision(nc)
    await nc.close()
    await migrate(database_url)
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS": "true",
        "YOKEFLOW_LOG_LEVEL": "WARNING",
        "YOKEFLOW_NOTIFIER_CONCURRENCY": str(args.concurrency),
    }
    print(f"{args.interventions} notifications per run, {args.concurrency} in flight per replica")
    with HttpPeer() as peer:
        peer.delay["slack"] = args.delay
        results: dict[int, float] = {}
        for replicas in (1, 2, 4):
            rate, latencies = await run(replicas, args.interventions, env, peer, temp)
            results[replicas] = rate
            print(
                f"{replicas} replica(s): {rate:6.1f} notifications/s  "
                f"scaling x{rate / results[1]:.2f}  paused->peer p50 "
                f"{statistics.median(latencies):.0f} ms, p99 "
                f"{percentile(latencies, 0.99):.0f} ms at 20/s "
                f"({len(latencies)} samples, peer answers after {args.delay * 1000:.0f} ms)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interventions", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.05, help="peer answer delay, seconds")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="notifications in flight per replica"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yokeflow-bench-") as folder:
        temp = Path(folder)
        with throwaway_stack(temp) as (nats_url, database_url):
            asyncio.run(measure(args, nats_url, database_url, temp))


if __name__ == "__main__":
    main()
