"""An email notice's action link, clicked in headless Chromium (Debian's, driven by Playwright):
the email's HTML as a mail client shows it, the confirmation page, the confirmed act. Needs no
built dashboard: the pages are the API's own.

Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from yokeflow_agent.contract import Subjects

from tests.integration.test_incidents import noticed, peers, prefs, row_of, stack, text_of
from tests.integration.test_notifier import detect, intervention

from ..helpers import collect, eventually

pytestmark = pytest.mark.integration
__all__ = ["peers", "stack"]  # fixtures shared with the integration tests

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium", allow_module_level=True)


async def test_an_email_link_acknowledges_through_its_confirmation_page(
    nc, db, stack, peers, unique
):
    from playwright.async_api import async_playwright

    project = unique("mail")
    await prefs(db, project)
    acknowledged = await collect(nc, Subjects.acknowledged(project))
    item = intervention(project, unique("s"))
    await detect(nc, item)
    await noticed(db, project, peers, item.intervention_id)
    mail = next(
        m for m in peers[1].messages if m["X-YokeFlow-Intervention"] == item.intervention_id
    )

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 900, "height": 900})
        await page.set_content(text_of(mail, "html"))  # the email, as a mail client shows it
        await page.screenshot(path=str(SHOTS / "20-email-with-actions.png"))
        await page.get_by_role("link", name="Acknowledge").click()
        await page.get_by_role("button", name="Acknowledge").wait_for(timeout=10_000)
        assert "ana@example.com" in await page.content()
        assert (await row_of(db, item.intervention_id))["acknowledged_at"] is None  # a GET only
        await page.screenshot(path=str(SHOTS / "21-confirm-acknowledge.png"))
        await page.get_by_role("button", name="Acknowledge").click()
        result = page.locator("#result")
        await result.wait_for(timeout=10_000)
        assert await result.inner_text() == "Acknowledged by ana@example.com."
        await page.screenshot(path=str(SHOTS / "22-acknowledged.png"))
        # Back and submit again: the link is spent.
        await page.go_back()
        await page.reload()
        assert "already used" in await page.locator("#reason").inner_text()
        await browser.close()
    await eventually(lambda: acknowledged.messages, what="intervention.acknowledged")
    assert acknowledged.messages[0]["via"] == "email"
