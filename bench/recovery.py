"""Recovery fairness on the embedded stack (not a test): one project's port fix, alone and
while another project's installs hang.

Project B's stale dev server holds a registered port; from `intervention.detected` to the
session resumed by auto-recovery is timed `--fixes` times with recovery idle (the in-run
baseline), then again while project A has three installs that never finish (its registered
interpreter, an operator's script, sleeps). Prints the median and the worst of each and the
ratio. A's installs run as `nobody`, so the run needs root (otherwise they are refused at once
and the figure says nothing).

Usage: python bench/recovery.py [--fixes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
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

from yokeflow_agent.contract import Intervention, Subjects  # noqa: E402

from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.db import migrate  # noqa: E402
from yokeflow_intervention.shared.embedded import free_port, throwaway_stack  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

HANGING_INSTALLS = 3


def start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        product_command(f"services.{service}"),
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def listener(port: int, cwd: Path) -> subprocess.Popen[bytes]:
    code = (
        "import socket, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(300)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=cwd)
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.02)


async def detect(js: object, project: str, session: str, blocker: str, error: str) -> str:
    item = Intervention(
        intervention_id=f"{session}-i",
        project_id=project,
        session_id=session,
        trigger="critical_error",
        blocker_type=blocker,
        reason="bench",
        error_excerpt=error,
        detected_at=datetime.now(UTC),
        can_auto_resume=True,
    )
    await js.publish(  # type: ignore[attr-defined]
        Subjects.detected(project),
        item.model_dump_json().encode(),
        headers={"Nats-Msg-Id": item.intervention_id},
    )
    return item.intervention_id


async def fix_seconds(
    js: object, db: asyncpg.Pool, project: str, port: int, cwd: Path, n: int
) -> float:
    holder = listener(port, cwd)
    started = time.perf_counter()
    ident = await detect(js, project, f"fix-{n}", "port_conflict", f"EADDRINUSE 127.0.0.1:{port}")
    try:
        while not await db.fetchval(
            "SELECT resolved FROM paused_sessions WHERE id = $1 AND resolved", ident
        ):
            if time.perf_counter() - started > 300:
                raise SystemExit("the fix took over 300 s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - started
    finally:
        holder.kill()
        holder.wait()


async def measure(args: argparse.Namespace, nats_url: str, database_url: str, temp: Path) -> None:
    nc = await nats.connect(nats_url)
    await provision(nc)
    await migrate(database_url)
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert db is not None
    js = nc.jetstream()
    operator = Path(tempfile.mkdtemp(prefix="yokeflow-bench-operator-"))
    operator.chmod(0o755)
    workspace_a, workspace_b = operator / "a", temp / "b"
    workspace_a.mkdir()
    workspace_b.mkdir()
    shutil.chown(workspace_a, "nobody")
    pids = workspace_a / "pids"
    hang = operator / "hang"
    hang.write_text(f'#!/bin/sh\necho "$$" >> {pids}\nexec sleep 600\n')
    hang.chmod(0o755)
    port = free_port()
    projects = {
        "a": {
            "workspace_root": str(workspace_a),
            "user": "nobody",
            "python": str(hang),
            "recovery_actions": ["install_module"],
        },
        "b": {
            "workspace_root": str(workspace_b),
            "dev_ports": [port],
            "recovery_actions": ["free_port"],
        },
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env.update(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        YOKEFLOW_DATA_DIR=str(temp),
        YOKEFLOW_PROJECTS=json.dumps(projects),
        YOKEFLOW_RECOVERY_TIMEOUT="600",
    )
    processes = [start(name, env, temp / f"{name}.log") for name in ("pauser", "recovery")]
    try:
        await fix_seconds(js, db, "b", port, workspace_b, -1)  # warm up: consumers bound
        idle = [await fix_seconds(js, db, "b", port, workspace_b, n) for n in range(args.fixes)]
        for n in range(HANGING_INSTALLS):
            await detect(js, "a", f"install-{n}", "module_not_found", f"No module named 'm{n}'")
        while not pids.exists():
            await asyncio.sleep(0.05)
        busy = [
            await fix_seconds(js, db, "b", port, workspace_b, args.fixes + n)
            for n in range(args.fixes)
        ]
        running = len(pids.read_text().split())
    finally:
        for process in processes:
            process.kill()
            process.wait()
        for line in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(line), signal.SIGKILL)
        shutil.rmtree(operator, ignore_errors=True)
        await db.close()
        await nc.close()
    print(f"project B's port fix, detected -> resumed, {args.fixes} each:")
    print(
        f"  recovery idle:                      median {statistics.median(idle):.2f} s, "
        f"worst {max(idle):.2f} s"
    )
    print(
        f"  A's {HANGING_INSTALLS} installs hanging ({running} running): median "
        f"{statistics.median(busy):.2f} s, worst {max(busy):.2f} s "
        f"({statistics.median(busy) / statistics.median(idle):.2f}x the idle median)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: project A's installs run as nobody")
    with tempfile.TemporaryDirectory(prefix="yokeflow-bench-") as folder:
        temp = Path(folder)
        with throwaway_stack(temp / "stack") as (nats_url, database_url):
            asyncio.run(measure(args, nats_url, database_url, temp))


if __name__ == "__main__":
    main()
