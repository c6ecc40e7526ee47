"""Small helpers the tests share: example sessions under fresh ids, waiting, collecting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from yokeflow_agent.contract import Subjects

from yokeflow_intervention.shared.runtime import product_command

from .infra import TestInfra

# The contract's example sessions: the design folder beside the repository when it is there,
# else the copy committed under docs/contract/examples.
_ROOT = Path(__file__).resolve().parents[1]
_BESIDE = _ROOT.parent / "shared" / "contract" / "examples"
EXAMPLES = (
    _BESIDE if (_BESIDE / "expected.json").is_file() else _ROOT / "docs" / "contract" / "examples"
)
T = TypeVar("T")
# Rows of the fault-injection table, printed at the end of the run (tests/conftest.py).
FAULT_REPORT = pytest.StashKey[list[str]]()


def example_events(name: str, project: str, session: str) -> list[dict[str, Any]]:
    """An example session from the public contract, renamed so no other test shares it."""
    events = []
    for line in (EXAMPLES / name).read_text().splitlines():
        if line.strip():
            event = json.loads(line)
            event["project_id"], event["session_id"] = project, session
            event["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session}/{event['seq']}"))
            events.append(event)
    return events


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`yokeflow-intervention ARGS` as a user runs it, in a process of its own."""
    return subprocess.run(
        product_command("cli", *args),
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=timeout,
        cwd=cwd,
    )


def listed(project: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """`interventions list --project PROJECT --json`: the project's active interventions."""
    done = cli("interventions", "list", "--project", project, "--json", env=env)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def resume_with_notes(intervention_id: str, notes: str, env: dict[str, str]) -> None:
    """A person (ana) resumes from the terminal with notes, as the README shows."""
    done = cli("interventions", "resume", intervention_id, "--by", "ana", "--notes", notes, env=env)
    assert done.returncode == 0, done.stderr


def agent_event(project: str, session: str, seq: int, **fields: object) -> dict[str, Any]:
    """One agent event under a fresh id; `fields` give its type and the rest."""
    return {
        "v": 1,
        "event_id": str(uuid.uuid4()),
        "project_id": project,
        "session_id": session,
        "seq": seq,
        "ts": "2026-11-01T10:00:00Z",
        **fields,
    }


async def publish_events(nc: Client, events: list[dict[str, Any]]) -> None:
    js = nc.jetstream()
    for event in events:
        await js.publish(
            Subjects.agent_events(event["project_id"], event["session_id"]),
            json.dumps(event).encode(),
            headers={"Nats-Msg-Id": event["event_id"]},
        )


class Collector:
    """Every message on a subject, as parsed JSON, while the test runs."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.subjects: list[str] = []

    async def receive(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)
        self.messages.append(json.loads(msg.data))


async def collect(nc: Client, subject: str) -> Collector:
    collector = Collector()
    await nc.subscribe(subject, cb=collector.receive)
    await nc.flush()
    return collector


async def eventually(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll until check() returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def stream_count(nc: Client, stream: str, subject: str) -> int:
    """How many messages the stream stores on a subject: what a JetStream consumer receives."""
    from nats.js.api import AckPolicy, ConsumerConfig

    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subject, stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
    )
    try:
        info = await sub.consumer_info()
        return int(info.num_pending or 0)
    finally:
        await sub.unsubscribe()


def service_env(infra: TestInfra, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_", "DATABASE_"))
    }
    env.update(NATS_URL=infra.nats_url, DATABASE_URL=infra.database_url, PYTHONUNBUFFERED="1")
    env["YOKEFLOW_DATA_DIR"] = str(infra.data_dir)
    env.update(extra)
    return env


class ServiceProcesses:
    """Real service processes, as `up` runs them; every one is killed at teardown."""

    def __init__(self, infra: TestInfra, log_dir: Path) -> None:
        self.infra = infra
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []
        self.log_of: dict[int, Path] = {}  # pid -> that process's log

    def start(self, service: str, **env: str) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{service}-{len(self.running)}.log"
        log = path.open("wb")
        process = subprocess.Popen(
            product_command(f"services.{service}"),
            # Each service as its own PostgreSQL role (shared/owners.py), as `up` runs it.
            env=service_env(self.infra, DATABASE_URL=self.infra.database_url_of(service), **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.log_dir,
        )
        self.running.append(process)
        self.log_of[process.pid] = path
        return process

    @staticmethod
    def kill9(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


async def recorded_intervention(
    db: Any,
    project: str,
    session: str,
    trigger: str,
    blocker: str | None,
    paused_at: datetime,
    resolved_after_s: float | None = None,
    resolved_by: str | None = None,
) -> str:
    """An intervention as the pauser records it (its project and session rows too), for tests of
    what reads them: the overview's figures and the dashboard's charts. Returns its id."""
    ident = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO projects (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", project
    )
    await db.execute("INSERT INTO sessions (id, project_id) VALUES ($1, $2)", session, project)
    resolved_at = (
        None if resolved_after_s is None else paused_at + timedelta(seconds=resolved_after_s)
    )
    await db.execute(
        """INSERT INTO paused_sessions (id, session_id, project_id, pause_reason, pause_type,
               blocker_type, paused_at, resolved, resolved_at, resolved_by, intervention)
           VALUES ($1, $2, $3, 'r', $4, $5, $6, $7, $8, $9, '{}')""",
        ident,
        session,
        project,
        trigger,
        blocker,
        paused_at,
        resolved_at is not None,
        resolved_at,
        resolved_by,
    )
    return ident


async def start_api(services: ServiceProcesses, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
    """The API as its own process on a free port: its base URL, once `/readyz` says 200, and
    the process."""
    import httpx

    from yokeflow_intervention.shared.embedded import free_port

    port = free_port()
    process = services.start("api", YOKEFLOW_API_PORT=str(port), **env)
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{base}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=30, what="the API to be ready")
    return base, process


def outside_fences(markdown: str) -> list[str]:
    """The lines of `markdown` that are not inside a fenced block."""
    outside, fence = [], None
    for line in markdown.splitlines():
        marker = line[: len(line) - len(line.lstrip("`"))]
        if fence is None and len(marker) >= 3:
            fence = marker
        elif fence is not None and marker.startswith(fence) and line.strip() == marker:
            fence = None
        elif fence is None:
            outside.append(line)
    return outside
