"""Incidents a human acts on from where they are: acknowledgement over the API and the CLI, and
signed action links read from the real SMTP and SMS peers' captured notices and followed over
HTTP, against real pauser, notifier and API processes, NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from email.message import Message

import httpx
import pytest
from yokeflow_agent.contract import Subjects

from tests.peers import HttpPeer, SmtpPeer
from yokeflow_intervention.shared.action_links import ActionLink, sign_link
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences

from ..helpers import cli, collect, eventually, service_env, start_api
from .test_notifier import SID, TOKEN, detect, intervention, notifier_env

pytestmark = pytest.mark.integration

LINK_SECRET = "link-secret-for-tests-only-0123456789"
API_TOKEN = "api-token-for-tests"
LINK = re.compile(r"https?://\S+/actions/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture
def peers():
    with HttpPeer(twilio_sid=SID, twilio_token=TOKEN) as http, SmtpPeer() as smtp:
        yield http, smtp


@pytest.fixture
async def stack(services, peers):
    """Pauser, API (its URL is the notices' base) and notifier, sharing the link secret."""
    http, smtp = peers
    services.start("pauser")
    secret = {"YOKEFLOW_ACTION_LINK_SECRET": LINK_SECRET}
    base, _ = await start_api(services, API_TOKEN=API_TOKEN, **secret)
    env = notifier_env(http, smtp, YOKEFLOW_DASHBOARD_URL=base, **secret)
    services.start("notifier", **env)
    return base


def text_of(mail: Message, subtype: str) -> str:
    for part in mail.walk():
        if part.get_content_type() == f"text/{subtype}":
            return str(part.get_payload(decode=True).decode())
    raise AssertionError(f"no text/{subtype} part")


async def noticed(db, project: str, peers, ident: str) -> tuple[list[str], list[str], str]:
    """The links in the email's text part, in its HTML part, and the SMS's one link."""
    http, smtp = peers
    await detect_once(db, ident)
    mail = await eventually(
        lambda: [m for m in smtp.messages if m["X-YokeFlow-Intervention"] == ident],
        timeout=30,
        what="the email",
    )
    sms = await eventually(
        lambda: [r.body["Body"] for r in http.accepted("twilio") if project in r.body["Body"]],
        timeout=30,
        what="the SMS",
    )
    text_links = LINK.findall(text_of(mail[0], "plain"))
    html_links = LINK.findall(text_of(mail[0], "html"))
    (sms_link,) = LINK.findall(sms[0])
    return text_links, html_links, sms_link


async def detect_once(db, ident: str) -> None:
    await eventually(
        lambda: db.fetchval("SELECT 1 FROM paused_sessions WHERE id = $1", ident),
        timeout=30,
        what="the pause",
    )


async def row_of(db, ident: str) -> dict:
    return dict(await db.fetchrow("SELECT * FROM paused_sessions WHERE id = $1", ident))


async def audit_of(db, ident: str | None) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT outcome, reason FROM action_link_audit"
        " WHERE intervention_id IS NOT DISTINCT FROM $1 ORDER BY id",
        ident,
    )
    return [(r["outcome"], r["reason"]) for r in rows]


async def prefs(db, project: str) -> None:
    preferences = NotificationPreferences(
        email_enabled=True,
        email_addresses=["ana@example.com"],
        sms_enabled=True,
        sms_numbers=["+15557654321"],
        min_notification_interval=0,
    )
    await save_preferences(db, project, preferences)


async def test_links_from_email_and_sms_acknowledge_once_and_refuse_misuse(
    nc, db, stack, peers, unique
):
    project, other = unique("links"), unique("other")
    await prefs(db, project)
    acknowledged = await collect(nc, Subjects.acknowledged(project))
    item = intervention(project, unique("s"))
    await detect(nc, item)
    ident = item.intervention_id
    text_links, html_links, sms_link = await noticed(db, project, peers, ident)
    assert len(text_links) == 3 and text_links == html_links  # acknowledge, resume, snooze
    ack, resume, snooze = text_links

    async with httpx.AsyncClient(timeout=10) as http:
        # A GET only shows what the link would do (a mail scanner fetching it acts on nothing).
        page = await http.get(ack)
        assert (
            page.status_code == 200
            and "Acknowledge" in page.text
            and "ana@example.com" in page.text
        )
        assert page.headers["x-frame-options"] == "DENY"
        assert (await row_of(db, ident))["acknowledged_at"] is None

        started = time.perf_counter()
        done = await http.post(ack)
        assert done.status_code == 200 and "Acknowledged by ana@example.com" in done.text
        await eventually(lambda: acknowledged.messages, what="intervention.acknowledged")
        print(f"\nclick to acknowledged event: {(time.perf_counter() - started) * 1000:.0f} ms")
        row = await row_of(db, ident)
        assert (row["acknowledged_by"], row["acknowledged_via"]) == ("ana@example.com", "email")

        # The same link again: refused, audited, nothing changed.
        again = await http.post(ack)
        assert again.status_code == 409 and "already used" in again.text
        # The SMS's link (another channel, another link): one transition, the second is told.
        from_sms = await http.post(sms_link)
        assert from_sms.status_code == 200
        assert "Already acknowledged by ana@example.com (email)" in from_sms.text

        # Forged, expired, and another project's link naming this intervention: each refused.
        forged = ack[:-3] + ("AAA" if not ack.endswith("AAA") else "BBB")
        assert (await http.post(forged)).status_code == 403
        base = ack.split("/actions/")[0]

        def signed(project_id: str, expires: int, secret: str = LINK_SECRET) -> str:
            link = ActionLink(ident, project_id, "resume", "email", "eve@example.com", expires)
            return f"{base}/actions/{sign_link(secret, link)}"

        expired = await http.post(signed(project, int(time.time()) - 1))
        assert expired.status_code == 410 and "expired" in expired.text
        elsewhere = await http.post(signed(other, int(time.time()) + 600))
        assert elsewhere.status_code == 404
        wrong_key = await http.post(signed(project, int(time.time()) + 600, "not-the-secret"))
        assert wrong_key.status_code == 403
        form_type = {"content-type": "application/x-www-form-urlencoded"}
        too_big = await http.post(resume, content=b"notes=" + b"x" * 70_000, headers=form_type)
        assert too_big.status_code == 413

        row = await row_of(db, ident)
        assert not row["resolved"] and row["acknowledged_by"] == "ana@example.com"
        kinds = await db.fetch(
            "SELECT action_type FROM intervention_actions WHERE paused_session_id = $1", ident
        )
        assert [k["action_type"] for k in kinds].count("acknowledged") == 1
        assert len(acknowledged.messages) == 1
        reasons = [reason for outcome, reason in await audit_of(db, ident) if outcome == "refused"]
        assert any("already used" in r for r in reasons)
        assert "link expired" in reasons
        assert "the intervention is not one of the link's project" in reasons
        refused_unsigned = await audit_of(db, None)
        assert ("refused", "bad signature") in refused_unsigned

        # Snooze, then resume with notes from the confirmation form: the brief carries them.
        snoozed = await http.post(snooze)
        assert snoozed.status_code == 200 and "Snoozed until" in snoozed.text
        form = await http.get(resume)
        assert "textarea" in form.text
        resumed = await http.post(resume, data={"notes": "Freed port 3000; use PORT=4000."})
        assert resumed.status_code == 200, resumed.text
        row = await row_of(db, ident)
        assert row["resolved"] and row["resolved_by"] == "ana@example.com (via email link)"
        assert "use PORT=4000" in row["resume_context"]
        # A link of a resolved incident: refused, nothing changed.
        late = await http.post(sms_link)
        assert late.status_code in (404, 409)
        accepted = [o for o, _ in await audit_of(db, ident) if o == "accepted"]
        assert len(accepted) == 4  # ack, the SMS's ack (told who was first), snooze, resume


async def test_api_and_cli_acknowledge_idempotently(nc, db, stack, services, unique):
    project = unique("ackapi")
    acknowledged = await collect(nc, Subjects.acknowledged(project))
    item = intervention(project, unique("s"))
    await detect(nc, item)
    ident = item.intervention_id
    await detect_once(db, ident)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=stack, headers=headers, timeout=10) as http:
        anonymous = await httpx.AsyncClient(base_url=stack).post(
            f"/api/interventions/{ident}/acknowledge", json={"acknowledged_by": "ana"}
        )
        assert anonymous.status_code == 401
        first = await http.post(
            f"/api/interventions/{ident}/acknowledge", json={"acknowledged_by": "ana"}
        )
        assert first.status_code == 200 and first.json()["changed"] is True
        second = await http.post(
            f"/api/interventions/{ident}/acknowledge", json={"acknowledged_by": "bob"}
        )
        assert second.json()["changed"] is False and second.json()["acknowledged_by"] == "ana"
        missing = await http.post(
            "/api/interventions/nope/acknowledge", json={"acknowledged_by": "ana"}
        )
        assert missing.status_code == 404
    env = service_env(services.infra)
    result = await asyncio.to_thread(cli, "interventions", "ack", ident, "--by", "carol", env=env)
    assert result.returncode == 0 and "already acknowledged by ana (api)" in result.stdout
    await eventually(lambda: acknowledged.messages, what="intervention.acknowledged")
    assert len(acknowledged.messages) == 1 and acknowledged.messages[0]["via"] == "api"


async def test_a_discord_link_button_acknowledges_as_the_channel(nc, db, stack, peers, unique):
    http, _ = peers
    project = unique("discord")
    hook = NotificationPreferences(webhook_enabled=True, webhook_url=http.discord_url())
    await save_preferences(db, project, hook)
    item = intervention(project, unique("s"))
    await detect(nc, item)
    posted = await eventually(
        lambda: [r.body for r in http.accepted("discord") if project in str(r.body)],
        timeout=30,
        what="the Discord message",
    )
    buttons = posted[0]["components"][0]["components"]  # kept: sent with_components=true
    assert [b["label"] for b in buttons] == ["Acknowledge", "Resume", "Snooze 1 h"]
    async with httpx.AsyncClient(timeout=10) as client:
        done = await client.post(buttons[0]["url"])
    assert done.status_code == 200 and "Acknowledged by http://127.0.0.1" in done.text
    row = await row_of(db, item.intervention_id)
    assert row["acknowledged_via"] == "discord" and "/…#" in row["acknowledged_by"]
