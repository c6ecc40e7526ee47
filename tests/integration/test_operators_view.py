"""What operators see, on the real stack: the fleet view from the detector's summaries, the
overview aggregated in PostgreSQL, and the live terminal (`interventions watch`), piped and on a
terminal."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from yokeflow_agent.client import AgentSession, SessionPaused
from yokeflow_agent.contract import Subjects

from yokeflow_intervention.shared.runtime import product_command

from ..helpers import eventually, recorded_intervention, service_env, start_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(services, infra):
    for name in ("detector", "pauser"):
        services.start(name)
    base, _ = await start_api(services)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


def start_watch(infra, **popen) -> subprocess.Popen[bytes]:
    env = service_env(infra)
    env.pop("NO_COLOR", None)
    return subprocess.Popen(product_command("cli", "interventions", "watch"), env=env, **popen)


def read_until(fd: int, needle: str, timeout: float = 20.0) -> str:
    """What the watcher wrote to `fd` until `needle` appeared."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not printed; got:\n{seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"the watcher stopped; got:\n{seen.decode(errors='replace')}")
            seen += chunk
    return seen.decode(errors="replace")


async def fleet_entry(api, project: str, session: str, include: str = "running"):
    body = (await api.get("/api/fleet", params={"project_id": project, "include": include})).json()
    return next((s for s in body["sessions"] if s["session_id"] == session), None)


async def test_a_session_approaching_its_limit_is_seen_in_the_fleet_and_in_the_terminal(
    api, infra, nc, unique
):
    project = unique("fleet")
    watcher = start_watch(infra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert watcher.stdout is not None
        out = watcher.stdout.fileno()
        read_until(out, "watching")
        agent = AgentSession(nc, project)
        await agent.start()
        calm = await eventually(
            lambda: fleet_entry(api, project, agent.session_id),
            what="the session in the fleet view",
        )
        assert calm["state"] == "running" and calm["retry_streak"] == 0

        for _ in range(2):
            call = await agent.tool_call("Bash", {"command": "npm test"})
            await agent.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL src/a.test.ts")

        async def streak_of(n: int):
            entry = await fleet_entry(api, project, agent.session_id)
            return entry if entry and entry["retry_streak"] == n else None

        near = await eventually(lambda: streak_of(2), what="a retry streak of 2")
        assert near["max_retries"] == 3 and near["nearest"] == "retry_limit"
        assert near["risk"] == pytest.approx(2 / 3, abs=1e-3)

        call = await agent.tool_call("Bash", {"command": "npm test"})
        await agent.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL src/a.test.ts")
        warned = await eventually(lambda: streak_of(3), what="a retry streak of 3")
        assert warned["risk"] == pytest.approx(1.0) and "retry" in warned["warnings"]
        with pytest.raises(SessionPaused) as paused:
            await agent.tool_call("Bash", {"command": "npm test"})
        intervention = paused.value.control.intervention_id

        async def stopped():
            entry = await fleet_entry(api, project, agent.session_id, include="all")
            return entry if entry and entry["state"] == "stopped" else None

        assert (await eventually(stopped, what="the stop in the fleet"))["intervention_id"] == (
            intervention
        )
        assert await fleet_entry(api, project, agent.session_id) is None  # not running

        # A malformed event of the project is dead-lettered, and the terminal says so.
        await nc.jetstream().publish(Subjects.agent_events(project, "broken"), b'{"v": 1}')
        resumed = await api.post(
            f"/api/interventions/{intervention}/resume",
            json={"resolved_by": "ana", "resolution_notes": "Fixed the test"},
        )
        assert resumed.status_code == 200
        printed = read_until(out, "by ana: Fixed the test")
        printed += read_until(out, "dead letter") if "dead letter" not in printed else ""
        where = f"{project}/{agent.session_id[:8]}"
        for kind in ("warned", "detected", "paused", "resumed"):
            assert any(line.split()[1:3] == [kind, where] for line in printed.splitlines()), kind
        assert f"agent.events.{project}.broken" in printed
        assert "\x1b" not in printed  # piped: plain text
    finally:
        watcher.terminate()
        watcher.wait(10)

    # History is what is resolved, active what is not.
    history = (await api.get("/api/interventions/history", params={"project_id": project})).json()
    active = (await api.get("/api/interventions/active", params={"project_id": project})).json()
    assert [i["id"] for i in history["interventions"]] == [intervention]
    assert active["interventions"] == []


def test_the_terminal_form_is_coloured(infra):
    master, slave = os.openpty()
    watcher = start_watch(infra, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        read_until(master, "watching")

        async def publish() -> None:
            import nats

            client = await nats.connect(infra.nats_url)
            letter = {
                "v": 1,
                "reason": "seq: must be at least 1",
                "payload": "{}",
                "original_subject": "agent.events.tty.s1",
                "received_at": "2026-12-05T09:00:00Z",
            }
            await client.publish(Subjects.AGENT_DLQ, json.dumps(letter).encode())
            await client.flush()
            await client.close()

        import asyncio

        asyncio.run(publish())
        printed = read_until(master, "must be at least 1")
        assert "\x1b[1;31mdead letter" in printed and "agent.events.tty.s1" in printed
    finally:
        watcher.terminate()
        watcher.wait(10)
        os.close(master)


async def test_the_overview_aggregates_what_interventions_cost(api, db, unique):
    project = unique("costly")
    now = datetime.now(UTC)
    rows = [  # (trigger, blocker, paused minutes ago, resolved after s, resolver)
        ("critical_error", "port_conflict", 50, 60, "auto-recovery"),
        ("critical_error", "port_conflict", 40, 120, "auto-recovery"),
        ("retry_limit", None, 30, 600, "ana"),
        ("critical_error", "prisma_schema_error", 20, None, None),
    ]
    ids = [
        await recorded_intervention(
            db, project, f"s{n}", trigger, blocker, now - timedelta(minutes=ago), after, by
        )
        for n, (trigger, blocker, ago, after, by) in enumerate(rows)
    ]
    actions = [
        (ids[0], "failed"),
        (ids[0], "succeeded"),
        (ids[1], "succeeded"),
        (ids[3], "refused"),
    ]
    for ident, status in actions:
        await db.execute(
            """INSERT INTO intervention_actions (paused_session_id, action_type,
                            action_status) VALUES ($1, 'recovery', $2)""",
            ident,
            status,
        )
    for channel, status in (("slack", "sent"), ("email", "sent"), ("sms", "failed")):
        await db.execute(
            """INSERT INTO notification_deliveries (intervention_id, project_id,
                            channel, recipient, status) VALUES ($1, $2, $3, 'x', $4)""",
            ids[2],
            project,
            channel,
            status,
        )

    await db.execute(
        """UPDATE paused_sessions SET blocker_info = '{"client": "gemini"}'
                        WHERE id = $1""",
        ids[3],
    )
    body = (await api.get("/api/overview", params={"project_id": project, "days": 1})).json()
    assert body["bucket"] == "hour"
    assert body["totals"] == {
        "interventions": 4,
        "active": 1,
        "resolved": 3,
        "warnings": 0,
        "observed": 0,
        "false_stops": 0,
    }
    by_trigger: dict[str, int] = {}
    for point in body["over_time"]:
        by_trigger[point["trigger"]] = by_trigger.get(point["trigger"], 0) + point["count"]
    assert by_trigger == {"critical_error": 3, "retry_limit": 1}
    times = {t["kind"]: t for t in body["time_to_resume"]}
    assert times["automatic"]["count"] == 2 and times["automatic"]["p50_s"] == pytest.approx(90)
    assert times["human"]["count"] == 1 and times["human"]["p50_s"] == pytest.approx(600)
    # Per intervention, its best attempt: two fixed (one after a failed try), one refused.
    assert body["recovery"] == {
        "succeeded": 2,
        "failed": 0,
        "refused": 1,
        "nothing_to_do": 0,
        "attempted": 0,
        "success_rate": 1.0,
    }
    # The still-paused Prisma error has cost the most: 20 minutes and counting.
    assert body["blockers"][0]["name"] == "prisma_schema_error"
    assert body["blockers"][0]["paused_s"] == pytest.approx(1200, abs=30)
    assert [p["name"] for p in body["projects"]] == [project]
    # Which agent CLI the paused sessions ran: the Gemini session, still paused, costs the most.
    assert [(c["name"], c["interventions"]) for c in body["clients"]] == [
        ("gemini", 1),
        ("not named", 3),
    ]
    assert {(n["channel"], n["status"], n["count"]) for n in body["notifications"]} == {
        ("slack", "sent", 1),
        ("email", "sent", 1),
        ("sms", "failed", 1),
    }
    assert (await api.get("/api/overview", params={"days": 0})).status_code == 422
