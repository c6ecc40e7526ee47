"""Incident figures on the embedded stack (not a test): how fast a click in Slack is answered
and shows in the message.

Real pauser, notifier and API processes and a strict local Slack (tests/peers.py SlackPeer).
N incidents are posted to one channel; each one's Acknowledge button is clicked (a request
signed as Slack signs it). Prints p50/p99 of: the interactions endpoint's answer (Slack's limit
is 3 s), and click -> chat.update arriving at Slack (the message showing who took it). The
in-run baseline is the same stack's paused -> chat.postMessage (the first notice), the path a
click's update shares from the event on.

Usage: python bench/incidents.py [--incidents 40]
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
import httpx
import nats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figures import percentile  # noqa: E402  (bench/ is this script's folder)
from yokeflow_agent.contract import Intervention, Subjects  # noqa: E402

from tests.peers import SlackPeer  # noqa: E402
from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.db import migrate  # noqa: E402
from yokeflow_intervention.shared.embedded import free_port, throwaway_stack  # noqa: E402
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

TOKEN, SIGNING, CHANNEL = "xoxb-bench", "bench-signing-secret", "C0BENCH"


def start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        product_command(f"services.{service}"),
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def quantiles(values: list[float]) -> str:
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"p50 {p50:5.0f} ms, p99 {p99:5.0f} ms"


async def measure(count: int, nats_url: str, database_url: str, temp: Path) -> None:
    nc = await nats.connect(nats_url)
    await provision(nc)
    await migrate(database_url)
    pool = await asyncpg.create_pool(database_url)
    assert pool is not None
    await save_preferences(
        pool, "bench", NotificationPreferences(slack_channel=CHANNEL, notification_group_window=0)
    )
    port = free_port()
    with SlackPeer(TOKEN, SIGNING, (CHANNEL,)) as peer:
        env = {
            **os.environ,
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "YOKEFLOW_LOG_LEVEL": "WARNING",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
            "YOKEFLOW_SLACK_API_BASE_URL": peer.api_url,
            "YOKEFLOW_API_PORT": str(port),
            "YOKEFLOW_NOTIFICATION_SWEEP_INTERVAL": "3600",
        }
        processes = [start(s, env, temp / f"{s}.log") for s in ("pauser", "notifier", "api")]
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            while True:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # the notifier bound
            paused_at: dict[str, float] = {}

            async def on_paused(msg: nats.aio.msg.Msg) -> None:
                paused_at[json.loads(msg.data)["intervention_id"]] = time.perf_counter()

            await nc.subscribe("intervention.paused.bench", cb=on_paused)
            notices, answers, updates = [], [], []
            for i in range(count):
                item = Intervention(
                    intervention_id=f"bench-{i}",
                    project_id="bench",
                    session_id=f"s{i}",
                    trigger="session_duration",
                    reason=f"bench {i}",
                    detected_at=datetime.now(UTC),
                )
                posted = len(peer.ok_calls("chat.postMessage"))
                await nc.jetstream().publish(
                    Subjects.detected("bench"),
                    item.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": item.intervention_id},
                )
                while len(peer.ok_calls("chat.postMessage")) <= posted:
                    await asyncio.sleep(0.002)
                call = peer.ok_calls("chat.postMessage")[posted]
                notices.append((call.at - paused_at[item.intervention_id]) * 1000)
                ts = next(t for (c, t), m in peer.messages.items() if m is call.body)
                updated = len(peer.ok_calls("chat.update"))
                body, headers = peer.signed(peer.block_actions("acknowledge", CHANNEL, ts))
                clicked = time.perf_counter()
                response = await http.post(
                    "/api/integrations/slack/interactions", content=body, headers=headers
                )
                answers.append((time.perf_counter() - clicked) * 1000)
                assert response.status_code == 200, response.text
                while len(peer.ok_calls("chat.update")) <= updated:
                    await asyncio.sleep(0.002)
                updates.append((peer.ok_calls("chat.update")[updated].at - clicked) * 1000)
        for process in processes:
            process.terminate()
            process.wait(10)
    await pool.close()
    await nc.close()
    print(f"{count} incidents, one Slack channel, processes on this machine")
    print(f"baseline  paused -> chat.postMessage      {quantiles(notices)}")
    print(f"click     -> interactions answered (<3 s) {quantiles(answers)}")
    print(f"click     -> chat.update at Slack         {quantiles(updates)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yokeflow-bench-") as folder:
        temp = Path(folder)
        with throwaway_stack(temp) as (nats_url, database_url):
            asyncio.run(measure(args.incidents, nats_url, database_url, temp))


if __name__ == "__main__":
    main()
