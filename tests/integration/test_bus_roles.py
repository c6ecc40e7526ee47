"""Roles on the bus, on an embedded NATS started exactly as `up` starts it (a user per service,
per agent project and per consumer). Every attack is made with only an agent's credentials."""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest
from nats.js.errors import NotFoundError
from yokeflow_agent import AgentSession, SessionPaused, connect
from yokeflow_agent.contract import (
    CONTROL_BUCKET,
    SESSION_SUMMARY_BUCKET,
    ControlKeys,
    Subjects,
)

from yokeflow_intervention.cli.up import prepare_infrastructure
from yokeflow_intervention.shared.commands import CommandFailed, PauserClient
from yokeflow_intervention.shared.embedded import free_port
from yokeflow_intervention.shared.runtime import product_command
from yokeflow_intervention.shared.settings import Settings

from ..helpers import ServiceProcesses, eventually
from ..infra import TestInfra

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REFUSED = (nats.errors.Error, asyncio.TimeoutError, TimeoutError, CommandFailed)


@pytest.fixture(scope="module")
def bus(infra, tmp_path_factory):
    """An embedded NATS with roles, provisioned, and the services running as their roles."""
    folder = tmp_path_factory.mktemp("roles")
    settings = Settings(data_dir=folder, database_url=infra.database_url)
    stack = prepare_infrastructure(settings, report=False)
    processes = ServiceProcesses(TestInfra(stack.nats_url, infra.database_url, folder), folder)
    for role in ("detector", "pauser"):
        processes.start(role, NATS_URL=stack.service_urls[role])
    port = free_port()
    processes.start("api", NATS_URL=stack.service_urls["api"], YOKEFLOW_API_PORT=str(port))
    stack.api_base = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield stack, folder
    processes.stop_all()
    stack.stop()


async def quiet(error: Exception) -> None:
    """Permission violations arrive as asynchronous errors; the assertions check outcomes."""


def cli(folder, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env["YOKEFLOW_DATA_DIR"] = str(folder)
    return subprocess.run(product_command("cli", *args), capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip


async def test_an_agent_reports_and_is_paused_and_can_do_nothing_else(bus, unique):
    stack, folder = bus
    project, other = unique("shop"), unique("other")
    added = cli(folder, "agents", "add", project)
    assert added.returncode == 0, added.stderr
    agent_url = added.stdout.strip()
    assert agent_url.startswith(f"nats://agent-{project}:") and "admin" not in agent_url
    assert project in cli(folder, "agents", "list").stdout
    stat = (folder / "nats" / "credentials.json").stat()
    assert oct(stat.st_mode & 0o777) == "0o600"

    admin = await nats.connect(stack.nats_url.split(","))
    agent_nc = await connect(agent_url, project, error_cb=quiet)
    try:
        # What an agent may do: report its session, and be stopped before the 4th attempt.
        session = AgentSession(agent_nc, project)
        await session.start()
        with pytest.raises(SessionPaused) as paused:
            for _ in range(6):
                call = await session.tool_call("Bash", {"command": "npm test"})
                await session.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL")
        intervention = paused.value.control.intervention_id
        assert intervention is not None
        js, admin_js = agent_nc.jetstream(timeout=1), admin.jetstream()

        async def refused(attempt) -> None:
            with pytest.raises(REFUSED):
                await attempt

        # Everything else is refused by the server:
        # another project's events, and forged lifecycle messages;
        await refused(js.publish(Subjects.agent_events(other, "s1"), b"{}"))
        await refused(js.publish(Subjects.detected(project), b"{}"))
        await refused(js.publish(Subjects.paused(project), b"{}"))
        # choosing its session's partition (the stream appends it), or taking a detector
        # partition over: pulling from it, unpinning its owner;
        await refused(js.publish(f"{Subjects.agent_events(project, 'chosen')}.3", b"{}"))
        # ticking the watchdog's clock, or a waiting notice (a human told without a stop);
        await refused(js.publish(Subjects.clock(3), b""))
        await refused(js.publish(Subjects.waiting(project), b"{}"))
        await refused(agent_nc.request("$JS.API.CONSUMER.UNPIN.AGENT_EVENTS.detector-3",
                                       b'{"group": "detector"}', timeout=1))  # fmt: skip
        await refused(agent_nc.request("$JS.API.CONSUMER.MSG.NEXT.AGENT_EVENTS.detector-3",
                                       b'{"batch": 1, "group": "detector"}', timeout=1))  # fmt: skip
        for subject in (Subjects.agent_events_stored(other, "s1"), Subjects.detected(project),
                        Subjects.paused(project), f"{Subjects.agent_events(project, 'chosen')}.3"):  # fmt: skip
            stream = "AGENT_EVENTS" if subject.startswith("agent.") else "INTERVENTIONS"
            try:
                stored = await admin_js.get_last_msg(stream, subject)
            except NotFoundError:
                continue
            assert stored.data != b"{}", f"a forged message was stored on {subject}"
        # the pauser's commands (resuming itself);
        await refused(PauserClient(agent_nc, timeout=1).resume_session(intervention, "me", "x"))
        # writing its own control state (unpausing itself), and reading another project's;
        kv = await js.key_value(CONTROL_BUCKET)
        own = ControlKeys.session(project, session.session_id)
        await refused(kv.put(own, b'{"state": "running"}'))
        await refused(kv.get(ControlKeys.session(other, "s1")))
        await refused(kv.get(ControlKeys.brief(other)))
        # listening to the interventions of everyone.
        heard: list[bytes] = []

        async def overhear(msg) -> None:
            heard.append(msg.data)

        await agent_nc.subscribe("intervention.>", cb=overhear)
        await admin.publish(Subjects.notified(project), b"{}")
        # ...nor another project's verdicts; and it may not forge verdicts or warnings.
        await agent_nc.subscribe(Subjects.verdicts(other, "s1"), cb=overhear)
        await admin.publish(Subjects.verdicts(other, "s1"), b'{"decision": "continue"}')
        await refused(js.publish(Subjects.warned(project), b"{}"))
        forged: list[bytes] = []

        async def forged_verdict(msg) -> None:
            forged.append(msg.data)

        await admin.subscribe(Subjects.verdicts(project, "s1"), cb=forged_verdict)
        await agent_nc.publish(Subjects.verdicts(project, "s1"), b'{"decision": "continue"}')
        await asyncio.sleep(1)
        assert heard == [] and forged == []

        admin_kv = await admin_js.key_value(CONTROL_BUCKET)
        assert json.loads((await admin_kv.get(own)).value)["state"] == "paused"
        row = await PauserClient(admin).get_intervention(intervention)
        assert row["resolved"] is False

        # Revoked: the same credentials are refused from now on.
        assert cli(folder, "agents", "revoke", project).returncode == 0
        with pytest.raises(nats.errors.Error):
            await connect(agent_url, project, max_reconnect_attempts=0, allow_reconnect=False)
    finally:
        await agent_nc.close()
        await admin.close()


async def test_the_fleet_view_works_as_the_roles_and_an_agent_can_neither_read_nor_forge_it(
    bus, unique
):
    """The detector (as its role) puts session summaries, the API (as its role) watches them; an
    agent's credentials reach neither its own summary nor another project's."""
    stack, folder = bus
    project = unique("fleetrole")
    added = cli(folder, "agents", "add", project)
    assert added.returncode == 0, added.stderr
    agent_nc = await connect(added.stdout.strip(), project, error_cb=quiet)
    try:
        session = AgentSession(agent_nc, project)
        await session.start()
        call = await session.tool_call("Bash", {"command": "make"})
        await session.tool_result(call, "Bash", ok=False, exit_code=2, error="make: *** Error 2")

        async def seen():
            try:
                async with httpx.AsyncClient(base_url=stack.api_base) as api:
                    body = (await api.get("/api/fleet", params={"project_id": project})).json()
            except httpx.TransportError:
                return None
            found = [s for s in body["sessions"] if s["session_id"] == session.session_id]
            return found and found[0]["retry_streak"] == 1

        await eventually(seen, timeout=30, what="the agent's session in the fleet view")
        js = agent_nc.jetstream(timeout=1)
        forged = f"$KV.{SESSION_SUMMARY_BUCKET}.{project}.{session.session_id}"
        with pytest.raises(REFUSED):
            await js.publish(forged, b'{"risk": 0}')
        with pytest.raises(REFUSED):
            kv = await js.key_value(SESSION_SUMMARY_BUCKET)
            await kv.get(f"{project}.{session.session_id}")
    finally:
        await agent_nc.close()


async def test_a_downstream_consumer_reads_the_interventions_and_nothing_more(bus, unique):
    """The documented sample subscriber, with credentials from `consumers add`."""
    stack, folder = bus
    name = unique("bot")
    added = cli(folder, "consumers", "add", name)
    assert added.returncode == 0, added.stderr
    url = added.stdout.strip()
    follow = runpy.run_path(str(ROOT / "docs" / "examples" / "downstream_subscriber.py"))["follow"]
    admin = await nats.connect(stack.nats_url.split(","))
    bot = await nats.connect(url.split(","), error_cb=quiet, inbox_prefix=f"_INBOX.consumer-{name}")
    try:
        project = unique("seen")
        reader = asyncio.create_task(
            follow(url, durable=name, subject=f"intervention.*.{project}", limit=1)
        )
        await asyncio.sleep(1.0)
        event = {"intervention_id": "i-1", "project_id": project, "session_id": "s-1"}
        await admin.jetstream().publish(Subjects.notified(project), json.dumps(event).encode())
        seen = await asyncio.wait_for(reader, 30)
        assert [e["intervention_id"] for e in seen] == ["i-1"]
        js = bot.jetstream(timeout=1)
        with pytest.raises(REFUSED):
            await js.publish(Subjects.detected(project), b"{}")
        with pytest.raises(REFUSED):
            await js.add_consumer("AGENT_EVENTS", durable_name=f"{name}-agents")
    finally:
        await bot.close()
        await admin.close()


def test_hook_check_reads_the_projects_claude_settings_and_its_agent_credentials(
    bus, unique, tmp_path
):
    """`yokeflow-hook --check` run by a user in the project, as Claude Code would run the hook:
    the URL comes from `.claude/settings.json`, the credentials are the project's agent's."""
    _, folder = bus
    project = unique("shop")
    agent_url = cli(folder, "agents", "add", project).stdout.strip()
    root = tmp_path / project
    (root / ".claude").mkdir(parents=True)
    hook = [{"type": "command", "command": "yokeflow-hook"}]
    settings = {"env": {"NATS_URL": agent_url},
                "hooks": {"PreToolUse": [{"matcher": "*", "hooks": hook}],
                          "PostToolUse": [{"matcher": "*", "hooks": hook}],
                          "SessionEnd": [{"hooks": hook}]}}  # fmt: skip
    (root / ".claude" / "settings.json").write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env["HOME"] = str(tmp_path)  # no user-level settings

    def check(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "yokeflow-hook"), "--check"],
                              cwd=root, env={**env, **extra}, capture_output=True, text=True,
                              timeout=30)  # fmt: skip

    wired = check()
    assert wired.returncode == 0, wired.stdout
    assert f"may publish on agent.events.{project}.*" in wired.stdout
    assert "PostToolUseFailure (missing)" in wired.stdout  # failures would go unseen
    assert '"timeout": 10' in wired.stdout  # SessionEnd would be cancelled
    assert agent_url.split("@")[0].split(":")[-1] not in wired.stdout  # the password is masked
    # Another project's id with these credentials: refused, and said so.
    other = check(YOKEFLOW_PROJECT_ID=unique("other"))
    assert other.returncode == 1 and "permissions    refused" in other.stdout, other.stdout
