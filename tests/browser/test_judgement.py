"""Judging the detector in the dashboard (headless Debian Chromium, the real stack): a stop marked
false at resume; an observe-mode project's stuck session running on, shown as would-have-stopped
in the fleet and the history and marked false there; both counted on the overview."""

from __future__ import annotations

import json

import pytest
from yokeflow_agent.client import AgentSession

from ..helpers import start_api
from .test_dashboard import SHOTS, open_live, page, stuck_session

__all__ = ["page"]  # the browser fixture, shared with the dashboard's tests

pytestmark = pytest.mark.integration


@pytest.fixture
async def trial(services, unique):
    """The stack with one project in observe mode: (the dashboard's URL, that project)."""
    project = unique("trial")
    registered = {project: {"workspace_root": "/srv/trial", "detection_mode": "observe"}}
    for name in ("detector", "pauser"):
        services.start(name, YOKEFLOW_PROJECTS=json.dumps(registered))
    base, _ = await start_api(services)
    return base, project


async def judged_row(page, project: str, trigger: str) -> list[str]:
    """The overview's judgement row of one project and trigger: stops, observed, false stops."""
    await page.get_by_test_id("project-filter").select_option(project)
    row = page.locator(f"[data-testid=judgement-row][data-project='{project}']")
    row = row.and_(page.locator(f"[data-trigger='{trigger}']"))
    await row.wait_for(timeout=10_000)
    cells = await row.locator("td").all_inner_texts()
    return [c.strip() for c in cells[2:]]


async def test_false_stops_are_marked_and_counted(trial, page, nc, unique):
    stack, observed = trial
    project = unique("judged")
    await open_live(page, stack, "active")
    stopped = await stuck_session(nc, project)
    card = page.locator(f"[data-id='{stopped}']")
    await card.wait_for(timeout=10_000)

    # At resume: the checkbox marks it a false stop.
    await card.get_by_test_id("resume").click()
    await page.get_by_test_id("resolved-by").fill("ana")
    await page.get_by_test_id("notes").fill("Nothing was wrong; carry on.")
    await page.get_by_test_id("false-stop").check()
    await page.get_by_test_id("false-stop-note").fill("the dev server was restarting")
    await page.get_by_test_id("resume-submit").click()
    await page.get_by_test_id("resume-confirm").filter(has_text="false stop").click()
    await card.wait_for(state="detached", timeout=10_000)

    # Observe mode: the same stuck session runs on; the fleet says it would have been stopped.
    agent = AgentSession(nc, observed)
    await agent.start()
    for _ in range(3):  # never raises SessionPaused
        call = await agent.tool_call("Bash", {"command": "npm run dev"})
        await agent.tool_result(call, "Bash", ok=False, error="Error: listen EADDRINUSE :::5173")
    await page.get_by_test_id("tab-fleet").click()
    row = page.locator(f"[data-testid=fleet-row][data-session='{agent.session_id}']")
    await row.get_by_test_id("fleet-would-have-stopped").wait_for(timeout=15_000)

    # History: the stop marked at resume, and the observed one, marked false here.
    await page.get_by_test_id("tab-history").click()
    history = page.locator(f"[data-id='{stopped}']")
    await history.get_by_test_id("false-stop-badge").filter(has_text="ana").wait_for(timeout=10_000)
    watched = page.locator("[data-testid=card]").filter(has_text=agent.session_id)
    await watched.get_by_test_id("would-have-stopped").wait_for(timeout=10_000)
    assert "not paused" in await watched.get_by_test_id("since").inner_text()
    await watched.get_by_test_id("mark-false-stop").click()
    await watched.get_by_test_id("false-stop-by").fill("bob")
    await watched.get_by_test_id("false-stop-confirm").click()
    await watched.get_by_test_id("false-stop-badge").wait_for(timeout=10_000)
    await page.screenshot(path=str(SHOTS / "10-false-stops.png"), full_page=True)
    await agent.end()

    # The overview counts them per project and trigger: stops, would have stopped, false stops.
    await page.get_by_test_id("tab-overview").click()
    assert await judged_row(page, project, "critical_error") == ["1", "0", "1"]
    assert await judged_row(page, observed, "critical_error") == ["0", "1", "1"]
    tile = page.get_by_test_id("tile-would").locator("strong")
    assert await tile.inner_text() == "1"
    await page.screenshot(path=str(SHOTS / "11-judgement.png"), full_page=True)
