"""The dashboard in headless Chromium (Debian's, driven by Playwright), against the real stack.

Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
from yokeflow_agent.client import AgentSession, SessionPaused

from yokeflow_intervention.services.api.app import DASHBOARD
from yokeflow_intervention.shared.embedded import free_port

from ..helpers import collect, eventually

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]  # fmt: skip

if not Path(CHROMIUM).exists() or not (DASHBOARD / "index.html").exists():
    pytest.skip(
        "needs Debian's chromium and a built dashboard (make test provides both)",
        allow_module_level=True,
    )


@pytest.fixture
async def stack(services, nc):
    port = free_port()
    for name in ("detector", "pauser"):
        services.start(name)
    services.start("api", YOKEFLOW_API_PORT=str(port))
    base = f"http://127.0.0.1:{port}"

    async def ready():
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{base}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=30, what="the API")
    yield base


@pytest.fixture
async def page():
    from playwright.async_api import async_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        yield await context.new_page()
        await browser.close()


async def stuck_session(nc, project: str) -> str:
    agent = AgentSession(nc, project)
    await agent.start()
    try:
        call = await agent.tool_call("Bash", {"command": "npm run dev"})
        await agent.tool_result(call, "Bash", ok=False, error="Error: listen EADDRINUSE :::5173")
        await agent.tool_call("Bash", {"command": "npm run dev"})
    except SessionPaused as paused:
        return str(paused.control.intervention_id)
    raise AssertionError("the session was not paused")


async def test_cards_appear_live_filter_resume_and_preferences(stack, page, nc, unique):
    project, other = unique("web"), unique("other")
    await page.goto(stack)
    await page.get_by_test_id("live").filter(has_text="live").wait_for(timeout=10_000)
    await page.screenshot(path=str(SHOTS / "01-empty.png"))

    # An agent gets stuck: its card appears without a reload.
    intervention_id = await stuck_session(nc, project)
    card = page.locator(f"[data-id='{intervention_id}']")
    await card.wait_for(timeout=10_000)
    assert "port_conflict" in await card.inner_text()
    assert "paused" in await card.get_by_test_id("since").inner_text()
    await stuck_session(nc, other)
    await page.locator("[data-testid=card]").nth(1).wait_for(timeout=10_000)
    await page.screenshot(path=str(SHOTS / "02-two-cards.png"))

    # The project filter.
    await page.get_by_test_id("project-filter").select_option(project)
    await eventually(lambda: page.locator("[data-testid=card]").count(), what="filtered cards")
    await asyncio.sleep(0.5)
    assert await page.locator("[data-testid=card]").count() == 1

    # Resume with notes: the card leaves Active and the resume event is published.
    resumed = await collect(nc, f"intervention.resumed.{project}")
    await card.get_by_test_id("resume").click()
    await page.get_by_test_id("resolved-by").fill("ana")
    await page.get_by_test_id("notes").fill("Stopped the old dev server; port 5173 is free.")
    await page.get_by_test_id("resume-submit").click()
    await page.screenshot(path=str(SHOTS / "03-resume-dialog.png"))
    await page.get_by_test_id("resume-confirm").click()
    await card.wait_for(state="detached", timeout=10_000)
    await eventually(lambda: resumed.messages, what="intervention.resumed")
    assert "port 5173 is free" in resumed.messages[0]["resume_context"]
    await page.get_by_test_id("tab-history").click()
    await (
        page.locator(f"[data-id='{intervention_id}']")
        .filter(has_text="resolved by ana")
        .wait_for(timeout=10_000)
    )
    # No orchestrator with an agent_command runs here: the card says the brief is waiting.
    note = page.locator(f"[data-id='{intervention_id}'] [data-testid='next-session']")
    assert "brief waits for the agent's next session" in await note.inner_text()
    await page.screenshot(path=str(SHOTS / "04-history.png"))

    # Preferences: a bad value is refused with the field named, a good one is read back by the API.
    await page.get_by_test_id("tab-preferences").click()
    await page.get_by_test_id("preferences-project").select_option(project)
    await page.get_by_test_id("sms_enabled").check()
    await page.get_by_test_id("sms_numbers").fill("555-0100")
    await page.get_by_test_id("save-preferences").click()
    await page.get_by_text("E.164").wait_for(timeout=10_000)
    await page.screenshot(path=str(SHOTS / "05-preferences-error.png"))
    await page.get_by_test_id("sms_numbers").fill("+15550100200")
    await page.get_by_test_id("min_notification_interval").fill("120")
    await page.get_by_test_id("save-preferences").click()
    await (
        page.get_by_test_id("preferences-message").filter(has_text="Saved").wait_for(timeout=10_000)
    )
    async with httpx.AsyncClient() as client:
        stored = (
            await client.get(f"{stack}/api/projects/{project}/notifications/preferences")
        ).json()
    assert stored["source"] == "project"
    assert stored["preferences"]["sms_numbers"] == ["+15550100200"]
    assert stored["preferences"]["min_notification_interval"] == 120
    await page.screenshot(path=str(SHOTS / "06-preferences-saved.png"))


async def test_warnings_show_who_was_told_and_whether_it_was_stopped_anyway(
    stack, page, nc, unique
):
    project = unique("warned")
    await page.goto(stack)
    await page.get_by_test_id("tab-warnings").click()
    await page.get_by_test_id("live").filter(has_text="live").wait_for(timeout=10_000)
    agent = AgentSession(nc, project)
    await agent.start()
    for _ in range(3):  # the 3rd identical failure is one step from a stop: a warning
        call = await agent.tool_call("Bash", {"command": "npm test"})
        await agent.tool_result(call, "Bash", ok=False, exit_code=1, error="FAIL src/app.test.ts")
    row = page.get_by_test_id("warning").filter(has_text=project)
    await row.wait_for(timeout=10_000)
    assert "retry_limit" in await row.inner_text()
    assert await row.get_by_test_id("warning-outcome").inner_text() == "not stopped"
    await page.screenshot(path=str(SHOTS / "06-warnings.png"))
    with pytest.raises(SessionPaused):  # it did not change course: the 4th attempt is stopped
        await agent.tool_call("Bash", {"command": "npm test"})
    await (
        row.get_by_test_id("warning-outcome")
        .filter(has_text="stopped anyway")
        .wait_for(timeout=10_000)
    )
    summary = await page.get_by_test_id("warnings-summary").inner_text()
    assert "0 not stopped since and 1 stopped anyway" in summary
