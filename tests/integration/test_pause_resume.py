"""Pause and resume against real NATS and PostgreSQL, with the services as real processes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from yokeflow_agent.client import AgentSession, SessionPaused
from yokeflow_agent.contract import (
    CONTROL_BUCKET,
    ControlKeys,
    Intervention,
    RetryStats,
    Subjects,
    Task,
)

from yokeflow_intervention.shared.commands import (
    AlreadyResolvedError,
    InvalidRequestError,
    NotFoundError,
    PauserClient,
)

from ..helpers import collect, eventually, stream_count

pytestmark = pytest.mark.integration


def intervention(project: str, session: str, n: int = 1) -> Intervention:
    return Intervention(
        intervention_id=f"{session}-int-{n}",
        project_id=project,
        session_id=session,
        trigger="retry_limit",
        reason="Command attempted 4 times: npm start",
        error_excerpt="Error: boom",
        event_seq=10,
        retry_stats=RetryStats(total_retries=3, max_retries_on_single_command=3, unique_errors=1),
        task=Task(id="42", description="Add checkout API"),
        detected_at=datetime.now(UTC),
        workspace="/tmp/ws",
    )


async def publish_detected(nc, item: Intervention, msg_id: str | None = None) -> None:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await nc.jetstream().publish(
        Subjects.detected(item.project_id), item.model_dump_json().encode(), headers=headers
    )


async def wait_for_pauser(nc) -> PauserClient:
    client = PauserClient(nc, timeout=2)

    async def ready():
        try:
            return await client.ready()
        except Exception:
            return False

    await eventually(ready, what="the pauser to answer")
    return client


async def test_agent_is_paused_blocked_documented_and_resumed(nc, db, services, unique, tmp_path):
    project = unique("proj")
    paused_events = await collect(nc, f"intervention.paused.{project}")
    resumed_events = await collect(nc, f"intervention.resumed.{project}")
    services.start("detector")
    services.start("pauser")
    client = await wait_for_pauser(nc)

    agent = AgentSession(
        nc, project, workspace=tmp_path / "ws", task=Task(id="7", description="build")
    )
    await agent.start()
    with pytest.raises(SessionPaused) as stopped:
        for _ in range(6):
            call = await agent.tool_call("Bash", {"command": "npm start"})
            await agent.tool_result(call, "Bash", ok=False, error="Error: boom", exit_code=1)
    control = stopped.value.control
    assert control.trigger == "retry_limit" and control.state == "paused"
    blocker_doc = await agent.stop_for_pause(stopped.value)
    text = blocker_doc.read_text()
    assert text.startswith(f"\n## BLOCKER - Session {agent.session_id} - ")
    for heading in (
        "**Task**: 7 - build",
        "**Issue**: Command attempted 4 times: npm start",
        "**Root Cause**",
        "**Retry Statistics**",
        "**Requires**",
        "**Impact**",
    ):
        assert heading in text

    # The row, its audit trail and the public event. The agent was stopped by the detector's
    # verdict, which comes before the pauser has written the pause: it follows in milliseconds.
    row = await eventually(
        lambda: db.fetchrow(
            "SELECT * FROM paused_sessions WHERE session_id = $1", agent.session_id
        ),
        what="the paused row",
    )
    assert row["id"] == control.intervention_id and not row["resolved"]
    assert row["pause_type"] == "retry_limit" and row["current_task_id"] == "7"
    await eventually(lambda: paused_events.messages, what="intervention.paused")
    assert paused_events.messages[0]["intervention_id"] == row["id"]
    session = await eventually(
        lambda: db.fetchrow(
            "SELECT * FROM sessions WHERE id = $1 AND status = 'paused'", agent.session_id
        ),
        what="the session row marked paused",
    )
    assert session["workspace"] == str(tmp_path / "ws")

    active = await client.get_active_pauses(project)
    assert [a["id"] for a in active] == [row["id"]]
    assert await client.can_auto_resume(row["id"]) is False

    resumed = await client.resume_session(row["id"], "ana", "Fixed the config; use PORT=4000.")
    assert resumed["resolved"] and resumed["resolved_by"] == "ana"
    assert "use PORT=4000" in resumed["resume_context"]
    assert "Command attempted 4 times" in resumed["resume_context"]
    await eventually(lambda: resumed_events.messages, what="intervention.resumed")
    assert resumed_events.messages[0]["resume_context"] == resumed["resume_context"]
    assert await agent.control() is not None and (await agent.control()).state == "running"
    assert await client.get_active_pauses(project) == []
    history = await client.get_intervention_history(project)
    assert history[0]["id"] == row["id"]
    detail = await client.get_intervention(row["id"])
    assert [a["action_type"] for a in detail["actions"]] == ["paused", "resumed"]

    with pytest.raises(AlreadyResolvedError, match="already resolved"):
        await client.resume_session(row["id"], "bob", "again")
    with pytest.raises(NotFoundError):
        await client.resume_session("no-such-intervention", "bob", "")
    with pytest.raises(InvalidRequestError, match="resolved_by"):
        await client.resume_session(row["id"], "  ", "")


async def test_redelivered_and_duplicated_interventions_change_nothing(nc, db, services, unique):
    project, session = unique("proj"), unique("sess")
    paused_events = await collect(nc, f"intervention.paused.{project}")
    services.start("pauser")
    await wait_for_pauser(nc)
    item = intervention(project, session)
    # The same intervention three times, without a message id: the stream keeps all three.
    for _ in range(3):
        await publish_detected(nc, item)
    await eventually(lambda: paused_events.messages, what="intervention.paused")
    await asyncio.sleep(1.0)
    assert (
        await db.fetchval("SELECT count(*) FROM paused_sessions WHERE session_id = $1", session)
        == 1
    )
    actions = await db.fetch(
        "SELECT action_type FROM intervention_actions WHERE paused_session_id = $1",
        item.intervention_id,
    )
    assert [a["action_type"] for a in actions] == ["paused"]
    # Core subscribers see each publish; the stream, which consumers read, keeps one.
    assert await stream_count(nc, "INTERVENTIONS", f"intervention.paused.{project}") == 1


async def test_concurrent_resumes_one_wins(nc, services, unique):
    project, session = unique("proj"), unique("sess")
    services.start("pauser")
    services.start("pauser")  # two replicas share the command queue group
    client = await wait_for_pauser(nc)
    item = intervention(project, session)
    await publish_detected(nc, item, item.intervention_id)
    await eventually(lambda: client.get_active_pauses(project), what="the pause")

    results = await asyncio.gather(
        *(client.resume_session(item.intervention_id, f"human-{i}", "notes") for i in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, AlreadyResolvedError)]
    assert len(winners) == 1 and len(losers) == 7, results


async def test_killed_pauser_loses_nothing_and_duplicates_nothing(nc, db, services, unique):
    project = unique("proj")
    paused_events = await collect(nc, f"intervention.paused.{project}")
    items = [intervention(project, unique(f"s{i}"), i) for i in range(30)]
    pauser = services.start("pauser")
    await wait_for_pauser(nc)
    for item in items:
        await publish_detected(nc, item, item.intervention_id)
    await asyncio.sleep(0.15)  # mid-batch
    services.kill9(pauser)
    services.start("pauser")
    ids = [i.intervention_id for i in items]

    async def all_paused():
        count = await db.fetchval("SELECT count(*) FROM paused_sessions WHERE id = ANY($1)", ids)
        return count == len(ids)

    await eventually(all_paused, timeout=40, what="all 30 interventions paused")
    per_id = await db.fetch(
        """SELECT paused_session_id, count(*) AS n FROM intervention_actions
           WHERE paused_session_id = ANY($1) AND action_type = 'paused' GROUP BY 1""",
        ids,
    )
    assert sorted(r["n"] for r in per_id) == [1] * len(ids)
    kv = await nc.jetstream().key_value(CONTROL_BUCKET)
    for item in items:
        state = json.loads(
            (await kv.get(ControlKeys.session(item.project_id, item.session_id))).value
        )
        assert state["state"] == "paused" and state["intervention_id"] == item.intervention_id
    # A pause committed just before the kill is announced when its message comes back, after
    # the consumer's ack_wait (30 s): the rows above can be complete well before that.
    await eventually(
        lambda: len({m["intervention_id"] for m in paused_events.messages}) == 30,
        timeout=45,
        what="30 paused events",
    )
    assert await stream_count(nc, "INTERVENTIONS", f"intervention.paused.{project}") == 30


async def test_manual_pause_of_a_known_session(nc, services, unique, tmp_path):
    project = unique("proj")
    services.start("pauser")
    client = await wait_for_pauser(nc)
    agent = AgentSession(nc, project, workspace=tmp_path)
    await agent.start()

    async def paused():
        try:
            return await client.pause_session(
                project, agent.session_id, "reviewing the schema change", "ana"
            )
        except NotFoundError:
            return None  # the session_started is still on its way to the sessions table

    row = await eventually(paused, what="a manual pause")
    assert row["pause_type"] == "manual" and "reviewing the schema change" in row["pause_reason"]
    with pytest.raises(SessionPaused):
        await agent.tool_call("Bash", {"command": "ls"})
    with pytest.raises(NotFoundError, match="unknown session"):
        await client.pause_session(project, "no-such-session", "x")
    # The same session id in another project is another session: not found there.
    with pytest.raises(NotFoundError, match="unknown session"):
        await client.pause_session(unique("other"), agent.session_id, "x")


async def test_a_resume_committed_but_never_announced_is_announced_by_the_outbox(
    nc, db, services, unique
):
    """NATS failing over (or the pauser dying) between the resume's commit and its publish."""
    project, session = unique("outbox"), unique("s")
    resumed_events = await collect(nc, f"intervention.resumed.{project}")
    services.start("pauser")
    await wait_for_pauser(nc)
    item = intervention(project, session)
    await publish_detected(nc, item, msg_id=item.intervention_id)
    await eventually(
        lambda: db.fetchval("SELECT 1 FROM paused_sessions WHERE id = $1", item.intervention_id),
        what="the pause",
    )
    # What a resume that committed and then lost its publish leaves behind.
    await db.execute(
        """UPDATE paused_sessions SET resolved = true, resolved_at = now(), resolved_by = 'ops',
           resolution_notes = 'freed the port' WHERE id = $1""",
        item.intervention_id,
    )
    await eventually(lambda: resumed_events.messages, timeout=20, what="the resume announced")
    assert resumed_events.messages[0]["resolved_by"] == "ops"
    # The announcement is marked, and the control state written, once the publish is acked:
    # just after the message arrives, not before it.
    await eventually(
        lambda: db.fetchval(
            "SELECT resume_announced_at IS NOT NULL FROM paused_sessions WHERE id = $1",
            item.intervention_id,
        ),
        what="the announcement marked",
    )
    kv = await nc.jetstream().key_value(CONTROL_BUCKET)

    async def running() -> bool:
        entry = await kv.get(ControlKeys.session(item.project_id, session))
        return bool(json.loads(entry.value or b"{}").get("state") == "running")

    await eventually(running, what="the control state running")
    await asyncio.sleep(3)  # another round of the outbox announces nothing more
    assert len(resumed_events.messages) == 1
