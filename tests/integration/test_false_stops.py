"""False stops as a human marks them, through the API and the CLI as real processes against real
NATS and PostgreSQL, and counted per trigger and project on the overview."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ..helpers import cli, collect, eventually, service_env, start_api
from .test_api import detect, stuck

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(services):
    services.start("pauser")
    base, _ = await start_api(services)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def test_a_stop_is_marked_false_at_resume_or_later_and_counted(api, nc, infra, unique):
    project = unique("judged")
    resumed = await collect(nc, f"intervention.resumed.{project}")
    made = [stuck(project, unique(f"s{i}")) for i in range(4)]
    observed = stuck(project, unique("watched")).model_copy(update={"mode": "observe"})
    for item in (*made, observed):
        await detect(nc, item)

    async def recorded():
        history = await api.get("/api/interventions/history", params={"project_id": project})
        active = await api.get("/api/interventions/active", params={"project_id": project})
        return history.json()["total"] == 1 and active.json()["count"] == 4

    await eventually(recorded, what="four stops and one observed")
    row = (await api.get(f"/api/interventions/{observed.intervention_id}")).json()
    assert row["mode"] == "observe" and row["resolved_by"] == "observe-mode"

    # At resume, through the API: who and when are the resume's, why is the note.
    first = made[0].intervention_id
    body = {
        "resolved_by": "ana",
        "resolution_notes": "Carry on.",
        "false_stop": True,
        "false_stop_note": "the suite was converging",
    }
    done = (await api.post(f"/api/interventions/{first}/resume", json=body)).json()
    assert done["false_stop"] and done["false_stop_by"] == "ana" and done["false_stop_at"]
    assert done["false_stop_note"] == "the suite was converging"
    await eventually(lambda: resumed.messages, what="intervention.resumed")
    assert resumed.messages[0]["false_stop"] is True

    # Later, through the API: a stop resumed as a true one, then judged false after all.
    second = made[1].intervention_id
    plain = {"resolved_by": "bob", "resolution_notes": "Fixed the port."}
    assert (await api.post(f"/api/interventions/{second}/resume", json=plain)).status_code == 200
    marked = await api.post(f"/api/interventions/{second}/false-stop", json={"marked_by": "cy"})
    assert marked.status_code == 200
    assert marked.json() | {"false_stop_at": None} == {
        "intervention_id": second,
        "project_id": project,
        "trigger": "retry_limit",
        "mode": "enforce",
        "false_stop": True,
        "false_stop_by": "cy",
        "false_stop_at": None,
        "false_stop_note": "",
    }
    again = await api.post(f"/api/interventions/{second}/false-stop", json={"marked_by": "dee"})
    assert again.json()["false_stop_by"] == "cy"  # the first mark stands
    missing = await api.post("/api/interventions/nope/false-stop", json={"marked_by": "cy"})
    assert missing.status_code == 404
    blank = await api.post(f"/api/interventions/{second}/false-stop", json={"marked_by": ""})
    assert blank.status_code == 422

    # Through the CLI: a resume marked false, and an observed stop judged false.
    env = service_env(infra)
    third = made[2].intervention_id
    out = await asyncio.to_thread(
        cli, "interventions", "resume", third, "--by", "eve", "--false-stop", env=env
    )
    assert out.returncode == 0 and "marked a false stop" in out.stdout, out.stderr
    out = await asyncio.to_thread(
        cli,
        "interventions",
        "mark-false-stop",
        observed.intervention_id,
        "--by",
        "eve",
        "--note",
        "a long build",
        env=env,
    )
    assert out.returncode == 0 and "is a false stop, marked by eve" in out.stdout, out.stderr
    out = await asyncio.to_thread(
        cli, "interventions", "mark-false-stop", "nope", "--by", "eve", env=env
    )
    assert out.returncode == 1 and "unknown intervention" in out.stderr
    listing = await asyncio.to_thread(
        cli, "interventions", "list", "--history", "--project", project, env=env
    )
    assert "WOULD HAVE STOPPED (observe mode), false stop (marked by eve)" in listing.stdout

    # Marked while still paused: a plain resume afterwards keeps the mark.
    fourth = made[3].intervention_id
    await api.post(f"/api/interventions/{fourth}/false-stop", json={"marked_by": "fay"})
    done = (await api.post(f"/api/interventions/{fourth}/resume", json=plain)).json()
    assert done["false_stop"] and done["false_stop_by"] == "fay"

    overview = (await api.get("/api/overview", params={"project_id": project})).json()
    assert overview["judgement"] == [
        {
            "project_id": project,
            "trigger": "retry_limit",
            "stops": 4,
            "observed": 1,
            "false_stops": 5,
        }
    ]
    totals = overview["totals"]
    assert (totals["interventions"], totals["observed"], totals["false_stops"]) == (4, 1, 5)
    detail = (await api.get(f"/api/interventions/{third}")).json()
    assert [a["action_type"] for a in detail["actions"]] == ["paused", "resumed", "false_stop"]
