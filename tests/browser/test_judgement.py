"""Judging the detector in the dashboard (headless Debian Chromium, the real stack): a stop marked
false at resume, an observed stop shown as would-have-stopped and marked false later, both
counted on the overview for their project and trigger."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from yokeflow_agent.contract import Intervention, Subjects

from .test_dashboard import SHOTS, open_live, page, stack, stuck_session

__all__ = ["page", "stack"]  # the fixtures, shared with the dashboard's tests

pytestmark = pytest.mark.integration


async def test_false_stops_are_marked_and_counted(stack, page, nc, unique):
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

    # An observed stop (observe mode): in the history as would-have-stopped, marked false there.
    observed = Intervention(
        intervention_id=f"{project}-observed",
        project_id=project,
        session_id=unique("s"),
        trigger="loop_pattern",
        reason="The same call 4 times with the same result",
        detected_at=datetime.now(UTC),
        mode="observe",
    )
    await nc.jetstream().publish(
        Subjects.detected(project),
        observed.model_dump_json().encode(),
        headers={"Nats-Msg-Id": observed.intervention_id},
    )
    await page.get_by_test_id("tab-history").click()
    history = page.locator(f"[data-id='{stopped}']")
    await history.get_by_test_id("false-stop-badge").filter(has_text="ana").wait_for(timeout=10_000)
    watched = page.locator(f"[data-id='{observed.intervention_id}']")
    await watched.get_by_test_id("would-have-stopped").wait_for(timeout=10_000)
    assert "not paused" in await watched.get_by_test_id("since").inner_text()
    await watched.get_by_test_id("mark-false-stop").click()
    await watched.get_by_test_id("false-stop-by").fill("bob")
    await watched.get_by_test_id("false-stop-confirm").click()
    await watched.get_by_test_id("false-stop-badge").wait_for(timeout=10_000)
    await page.screenshot(path=str(SHOTS / "10-false-stops.png"), full_page=True)

    # The overview counts them per project and trigger.
    await page.get_by_test_id("tab-overview").click()
    await page.get_by_test_id("project-filter").select_option(project)
    rows = page.get_by_test_id("judgement-row")
    port = rows.and_(page.locator("[data-trigger='critical_error']"))
    loop = rows.and_(page.locator("[data-trigger='loop_pattern']"))
    await port.get_by_test_id("false-stops").filter(has_text="1").wait_for(timeout=10_000)
    assert [c.strip() for c in (await port.inner_text()).split("\t")][1:] == [
        "critical_error",
        "1",
        "0",
        "1",
    ]
    assert [c.strip() for c in (await loop.inner_text()).split("\t")][1:] == [
        "loop_pattern",
        "0",
        "1",
        "1",
    ]
    assert "2" in await page.get_by_test_id("tile-false").inner_text()
    await page.screenshot(path=str(SHOTS / "11-judgement.png"), full_page=True)
