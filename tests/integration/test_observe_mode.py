"""Observe mode end to end, on real NATS and PostgreSQL with the services as real processes: a
stuck session of an observe-mode project is recorded as would-have-stopped and runs on, nobody
is paged and recovery does nothing; the same session in an enforce project is paused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nats.js.errors import KeyNotFoundError
from yokeflow_agent.client import AgentSession, SessionPaused
from yokeflow_agent.contract import SESSION_SUMMARY_BUCKET, Task

from tests.peers import HttpPeer, SmtpPeer
from yokeflow_intervention.shared.embedded import free_port
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences

from ..helpers import collect, eventually
from .test_notifier import mine, notifier_env
from .test_recovery import listener

pytestmark = pytest.mark.integration


async def observed_summary(nc, project: str, session: str) -> dict | None:
    """The fleet view's summary of a session, once it names the stop it would have had."""
    summaries = await nc.jetstream().key_value(SESSION_SUMMARY_BUCKET)
    try:
        entry = await summaries.get(f"{project}.{session}")
    except KeyNotFoundError:
        return None
    body: dict = json.loads(entry.value or b"{}")
    return body if body.get("intervention_id") else None


async def stuck_session(nc, project: str, workspace: Path, port: int) -> AgentSession:
    """A session that keeps failing on a port another process holds: a critical error that
    recovery could fix (free_port is allowed for the observe project)."""
    agent = AgentSession(nc, project, workspace=workspace, task=Task(id="7", description="serve"))
    await agent.start()
    for _ in range(4):
        call = await agent.tool_call("Bash", {"command": "npm run dev"})
        error = f"Error: listen EADDRINUSE: address already in use 127.0.0.1:{port}"
        await agent.tool_result(call, "Bash", ok=False, error=error, exit_code=1)
    return agent


async def test_observe_records_would_have_stopped_and_never_pauses_pages_or_recovers(
    nc, db, services, unique, tmp_path
):
    observed, enforced, port = unique("trial"), unique("live"), free_port()
    registration = {"workspace_root": str(tmp_path), "detection_mode": "observe"}
    fixes = {"dev_ports": [port], "recovery_actions": ["free_port"]}
    projects = {observed: {**registration, **fixes}}
    env = {"YOKEFLOW_PROJECTS": json.dumps(projects)}
    detected = await collect(nc, f"intervention.detected.{observed}")
    paused = await collect(nc, f"intervention.paused.{observed}")
    holder = listener(port, cwd=tmp_path)  # what recovery would stop, were it allowed to act
    with HttpPeer() as http, SmtpPeer() as smtp:
        for project in (observed, enforced):
            slack = NotificationPreferences(webhook_enabled=True, webhook_url=http.slack_url())
            await save_preferences(db, project, slack)
        services.start("detector", **env)
        services.start("pauser", **env)
        services.start("notifier", **notifier_env(http, smtp), **env)
        services.start("recovery", **env)
        try:
            # Observe: every call is let through, the agent runs on to its end.
            agent = await stuck_session(nc, observed, tmp_path / "ws", port)
            call = await agent.tool_call("Bash", {"command": "npm test"})
            await agent.tool_result(call, "Bash", ok=True, output="ok")
            query = "SELECT * FROM paused_sessions WHERE project_id = $1 AND session_id = $2"
            row = await eventually(
                lambda: db.fetchrow(query, observed, agent.session_id),
                timeout=30,
                what="the observed stop recorded",
            )
            assert row["mode"] == "observe" and row["pause_type"] == "critical_error"
            assert row["resolved"] and row["resolved_by"] == "observe-mode"
            assert await agent.control() is None  # never paused
            summary = await eventually(
                lambda: observed_summary(nc, observed, agent.session_id), what="its summary"
            )
            assert summary["state"] == "running" and summary["intervention_id"] == row["id"]
            await agent.end()
            assert [m["mode"] for m in detected.messages] == ["observe"]  # once, as enforce

            # Enforce: the same session is stopped, and its stop is notified.
            with pytest.raises(SessionPaused):
                await stuck_session(nc, enforced, tmp_path / "ws2", port)
            notice = "the enforce project's notice"
            await eventually(lambda: mine(http.accepted("slack"), enforced), 30, what=notice)
            await asyncio.sleep(1.0)  # what would follow the observed stop has had its time
            assert mine(http.accepted("slack"), observed) == []
            assert paused.messages == []
            actions = await db.fetch(
                "SELECT action_type FROM intervention_actions WHERE paused_session_id = $1",
                row["id"],
            )
            assert [a["action_type"] for a in actions] == ["observed"]  # no recovery, no notice
            assert holder.poll() is None  # the port's holder was left alone
            active = await db.fetchval(
                "SELECT count(*) FROM active_interventions WHERE project_id = $1", enforced
            )
            assert active == 1
        finally:
            holder.kill()
            holder.wait(5)
