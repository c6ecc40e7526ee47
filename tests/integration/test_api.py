"""The API as a real process against real PostgreSQL and NATS, with the pauser running."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from yokeflow_agent.contract import Intervention, RetryStats, Subjects, Task

from yokeflow_intervention.services.api.app import create_api
from yokeflow_intervention.shared.preferences import load_preferences
from yokeflow_intervention.shared.settings import Settings

from ..helpers import eventually, start_api

pytestmark = pytest.mark.integration
TOKEN = "api-token-for-tests"
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@pytest.fixture
async def api(services):
    services.start("pauser")
    base, _ = await start_api(services, API_TOKEN=TOKEN)
    # A token holder's client: every /api request carries the token.
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
        yield client


def stuck(project: str, session: str) -> Intervention:
    return Intervention(
        intervention_id=f"{session}-i",
        project_id=project,
        session_id=session,
        trigger="retry_limit",
        reason="Command attempted 4 times: npm start",
        error_excerpt="Error: boom",
        retry_stats=RetryStats(total_retries=3, max_retries_on_single_command=3, unique_errors=1),
        task=Task(id="42", description="Add checkout API"),
        detected_at=datetime.now(UTC),
    )


async def detect(nc, item: Intervention) -> None:
    await nc.jetstream().publish(
        Subjects.detected(item.project_id),
        item.model_dump_json().encode(),
        headers={"Nats-Msg-Id": item.intervention_id},
    )


async def test_interventions_resume_and_errors(api, nc, unique):
    project = unique("apiproj")
    items = [stuck(project, unique(f"s{i}")) for i in range(3)]
    for item in items:
        await detect(nc, item)

    async def all_active():
        body = (await api.get("/api/interventions/active", params={"project_id": project})).json()
        return body if body["count"] == 3 else None

    body = await eventually(all_active, what="three active interventions")
    assert {i["id"] for i in body["interventions"]} == {i.intervention_id for i in items}
    target = items[0].intervention_id
    detail = (await api.get(f"/api/interventions/{target}")).json()
    assert detail["pause_type"] == "retry_limit" and detail["actions"][0]["action_type"] == "paused"

    resume = {"resolved_by": "ana", "resolution_notes": "Fixed the config"}
    no_token = {"Authorization": ""}
    refused = await api.post(f"/api/interventions/{target}/resume", json=resume, headers=no_token)
    assert refused.status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    done = await api.post(f"/api/interventions/{target}/resume", json=resume, headers=auth)
    assert done.status_code == 200 and done.json()["resolved_by"] == "ana"
    again = await api.post(f"/api/interventions/{target}/resume", json=resume, headers=auth)
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    missing = await api.post("/api/interventions/nope/resume", json=resume, headers=auth)
    assert missing.status_code == 404
    assert (await api.get("/api/interventions/nope")).status_code == 404
    bad = await api.post(
        f"/api/interventions/{items[1].intervention_id}/resume",
        json={"resolved_by": "ana", "resolution_notes": ""},
        headers=auth,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "resolution_notes"

    # History is what is resolved (one of three), active what is not (the other two).
    page = (
        await api.get("/api/interventions/history", params={"project_id": project, "limit": 1})
    ).json()
    assert page["total"] == 1 and [i["id"] for i in page["interventions"]] == [target]
    rest = (
        await api.get(
            "/api/interventions/history", params={"project_id": project, "limit": 1, "offset": 1}
        )
    ).json()
    assert rest["interventions"] == []
    assert (await api.get("/api/interventions/active", params={"project_id": project})).json()[
        "count"
    ] == 2
    projects = (await api.get("/api/projects")).json()["projects"]
    assert any(p["id"] == project and p["active"] == 2 for p in projects)
    unknown = await api.post(
        f"/api/projects/{project}/sessions/{unique('ghost')}/pause",
        json={"reason": "x"},
        headers=auth,
    )
    assert unknown.status_code == 404


async def test_preferences_round_trip_and_validation(api, db, unique):
    project = unique("prefs")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    defaults = (await api.get(f"/api/projects/{project}/notifications/preferences")).json()
    assert defaults["source"] == "defaults"
    bad = await api.post(
        f"/api/projects/{project}/notifications/preferences",
        json={"sms_enabled": True, "sms_numbers": ["12345"]},
        headers=auth,
    )
    problem = bad.json()["detail"][0]
    assert (
        bad.status_code == 422 and problem["loc"][-1] == "sms_numbers" and "E.164" in problem["msg"]
    )
    chosen = {
        "webhook_enabled": True,
        "webhook_url": "https://hooks.slack.com/services/T/B/x",
        "email_enabled": True,
        "email_addresses": ["ana@example.com"],
        "min_notification_interval": 60,
        "notify_on_manual_pause": True,
    }
    saved = await api.post(
        f"/api/projects/{project}/notifications/preferences", json=chosen, headers=auth
    )
    assert saved.status_code == 200
    read = (await api.get(f"/api/projects/{project}/notifications/preferences")).json()
    assert read["source"] == "project"
    shown = read["preferences"]
    assert {k: shown[k] for k in chosen if k != "webhook_url"} == {
        k: v for k, v in chosen.items() if k != "webhook_url"
    }
    # The webhook URL is a secret: shown masked, and sending the masked value back keeps it.
    assert shown["webhook_url"].startswith("https://hooks.slack.com/…#")
    assert "/services/T/B/x" not in json.dumps(read)
    again = await api.post(
        f"/api/projects/{project}/notifications/preferences",
        json={**shown, "email_addresses": ["bo@example.com"]},
    )
    assert again.status_code == 200
    stored = await load_preferences(db, project)
    assert stored is not None and stored.webhook_url == chosen["webhook_url"]
    assert stored.email_addresses == ["bo@example.com"]


async def test_with_a_token_every_read_and_the_stream_need_it(api, unique):
    """Reads return agent output, addresses and phone numbers: no token, no data."""
    plain = httpx.AsyncClient(base_url=str(api.base_url), timeout=10)
    async with plain:
        for path in (
            "/api/interventions/active",
            "/api/interventions/history",
            f"/api/interventions/{unique('i')}",
            "/api/projects",
            f"/api/projects/{unique('p')}/notifications/preferences",
            "/api/events",
        ):
            response = await plain.get(path)
            assert response.status_code == 401, path
        wrong = await plain.get("/api/projects", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await plain.get("/api/events?ticket=made-up")).status_code == 401
        assert (await plain.get("/healthz")).status_code == 200  # probes stay open
    ticket = (await api.post("/api/events/ticket")).json()["ticket"]
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        async with browser.stream("GET", f"/api/events?ticket={ticket}") as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                assert line == ": connected"
                break
        # Single use: the same ticket does not open a second stream.
        assert (await browser.get(f"/api/events?ticket={ticket}")).status_code == 401


async def test_live_events_stream(api, nc, unique):
    project = unique("live")
    received: list[str] = []

    async def listen():
        async with api.stream("GET", "/api/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data:") and project in line:
                    received.append(line)
                    if len(received) >= 2:
                        return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.5)
    await detect(nc, stuck(project, unique("s")))
    await asyncio.wait_for(listener, 20)
    kinds = [json.loads(line[5:])["project_id"] for line in received]
    assert kinds == [project, project]  # detected, then paused


async def test_health_readiness_and_metrics(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = (await api.get("/readyz")).json()
    assert ready["checks"] == {"nats": True, "postgres": True}
    metrics = (await api.get("/metrics")).text
    assert "yokeflow_api_requests_total" in metrics


def test_committed_openapi_document_is_current():
    document = create_api(Settings(), "nats://unused", "postgresql://unused").openapi()
    committed = json.loads(OPENAPI.read_text()) if OPENAPI.exists() else None
    assert committed == json.loads(json.dumps(document)), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


WEB = OPENAPI.parents[1] / "web"
OPENAPI_TS = WEB / "node_modules" / ".bin" / "openapi-ts"


@pytest.mark.skipif(
    not OPENAPI_TS.exists(), reason="web/node_modules is not installed (make web-client)"
)
def test_committed_web_client_is_current(tmp_path):
    """The dashboard's client is generated from docs/openapi.json: regenerated here into a
    temporary folder, it must be what is committed under web/src/client."""
    output = tmp_path / "client"
    subprocess.run(
        [str(OPENAPI_TS)],
        cwd=WEB,
        env={**os.environ, "CLIENT_OUTPUT": str(output)},
        check=True,
        capture_output=True,
        timeout=300,
    )
    committed = WEB / "src" / "client"

    def files(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}

    assert files(committed) == files(output), (
        "web/src/client is stale: run `make web-client` (after `make openapi`) and commit it"
    )
