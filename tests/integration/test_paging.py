"""Repeat, escalate, group and inhibit, with real pauser and notifier processes, NATS,
PostgreSQL and the SMTP, SMS and Slack-webhook peers; short intervals stand in for the
defaults."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.peers import HttpPeer, SmtpPeer
from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences

from ..helpers import eventually
from .test_incidents import detect_once
from .test_notifier import SID, TOKEN, detect, intervention, notifier_env

pytestmark = pytest.mark.integration


@pytest.fixture
def peers():
    with HttpPeer(twilio_sid=SID, twilio_token=TOKEN) as http, SmtpPeer() as smtp:
        yield http, smtp


def every_channel(http: HttpPeer, **more: object) -> NotificationPreferences:
    """A Slack webhook, one email address and one phone number (and `more`)."""
    return NotificationPreferences(
        webhook_enabled=True,
        webhook_url=http.slack_url(),
        email_enabled=True,
        email_addresses=["ana@example.com"],
        sms_enabled=True,
        sms_numbers=["+15557654321"],
        **more,  # type: ignore[arg-type]
    )


def mails_to(smtp: SmtpPeer, address: str, ident: str) -> list[str]:
    return [
        str(m["Subject"])
        for m in smtp.messages
        if m["To"] == address and m["X-YokeFlow-Intervention"] == ident
    ]


async def test_unacknowledged_stops_repeat_then_escalate_until_acknowledged(
    nc, db, services, unique, peers
):
    http, smtp = peers
    services.start("pauser")
    services.start(
        "notifier", **notifier_env(http, smtp, YOKEFLOW_NOTIFICATION_SWEEP_INTERVAL="0.3")
    )
    project = unique("page")
    preferences = NotificationPreferences(
        email_enabled=True,
        email_addresses=["ana@example.com"],
        notification_repeat_interval=2,
        notification_escalate_after=5,
        escalation_email_addresses=["lead@example.com"],
    )
    await save_preferences(db, project, preferences)
    item = intervention(project, unique("s"))
    detected = time.monotonic()
    await detect(nc, item)
    ident = item.intervention_id
    await eventually(
        lambda: mails_to(smtp, "ana@example.com", ident), timeout=30, what="the notice"
    )
    first = time.monotonic() - detected
    await eventually(
        lambda: len(mails_to(smtp, "ana@example.com", ident)) >= 2, timeout=10, what="a repeat"
    )
    repeated = time.monotonic() - detected
    assert "Still Blocked (reminder 1)" in mails_to(smtp, "ana@example.com", ident)[1]
    await eventually(
        lambda: mails_to(smtp, "lead@example.com", ident), timeout=15, what="the escalation"
    )
    escalated = time.monotonic() - detected
    assert "Escalated" in mails_to(smtp, "lead@example.com", ident)[0]
    print(
        f"\nfirst notice {first:.1f} s, first repeat {repeated:.1f} s, escalation {escalated:.1f} s"
    )

    client = PauserClient(nc, timeout=5)
    await client.acknowledge(ident, "ana", "api")
    await asyncio.sleep(0.5)  # a page already claimed may still be on its way
    seen = len(smtp.messages)
    await asyncio.sleep(4.5)  # two repeat intervals
    assert len(smtp.messages) == seen, "paged after the acknowledgement"
    assert len(mails_to(smtp, "lead@example.com", ident)) == 1


async def test_one_outage_pages_once_and_a_different_incident_still_pages(
    nc, db, services, unique, peers
):
    http, smtp = peers
    services.start("pauser")
    services.start("notifier", **notifier_env(http, smtp))
    project = unique("outage")
    await save_preferences(db, project, every_channel(http))
    outage = [intervention(project, unique(f"o{i}"), "critical_error") for i in range(20)]
    for item in outage:
        await detect(nc, item)

    async def decided(count: int) -> list[dict] | None:
        rows = await db.fetch(
            "SELECT intervention_id, decision, reason FROM notification_decisions"
            " WHERE project_id = $1 ORDER BY decided_at",
            project,
        )
        return [dict(r) for r in rows] if len(rows) >= count else None

    rows = await eventually(lambda: decided(20), timeout=60, what="twenty decisions")
    assert [r["decision"] for r in rows].count("notify") == 1
    (first,) = [r["intervention_id"] for r in rows if r["decision"] == "notify"]
    assert all(
        r["reason"] == f"grouped into {first}" for r in rows if r["intervention_id"] != first
    )
    await eventually(lambda: mails_to(smtp, "ana@example.com", first), what="the email")

    # A stuck loop the outage caused is inhibited; a different incident is still paged.
    loop = intervention(project, unique("loop"))
    other = intervention(project, unique("slow"), "session_duration")
    await detect(nc, loop)
    await detect(nc, other)
    rows = await eventually(lambda: decided(22), timeout=30, what="two more decisions")
    by_id = {r["intervention_id"]: r for r in rows}
    assert by_id[loop.intervention_id]["reason"] == f"inhibited by {first}"
    assert by_id[other.intervention_id]["decision"] == "notify"
    await detect_once(db, other.intervention_id)
    await eventually(
        lambda: mails_to(smtp, "ana@example.com", other.intervention_id), what="the other email"
    )
    await asyncio.sleep(1.0)
    mine = [m for m in smtp.messages if project in str(m.get_payload(0))]
    assert len(mine) == 2  # the outage once, the other incident once
    sms = [r for r in http.accepted("twilio") if project in r.body["Body"]]
    slack = [r for r in http.accepted("slack") if project in str(r.body)]
    assert len(sms) == 2 and len(slack) == 2


async def test_pagerduty_follows_the_incident_and_a_resume_is_told_where_paged(
    nc, db, services, unique, peers
):
    http, smtp = peers
    env = notifier_env(http, smtp, YOKEFLOW_PAGERDUTY_EVENTS_URL=f"{http.base_url}/v2/enqueue")
    services.start("pauser")
    services.start("notifier", **env)
    project = unique("pd")
    await save_preferences(db, project, every_channel(http, pagerduty_routing_key="R" * 32))
    item = intervention(project, unique("s"), "critical_error")
    await detect(nc, item)
    ident = item.intervention_id
    key = f"yokeflow/{project}/{ident}"
    await eventually(lambda: http.pagerduty.get(key) == "trigger", timeout=30, what="a trigger")
    trigger = next(r.body for r in http.accepted("pagerduty") if r.body["dedup_key"] == key)
    assert trigger["payload"]["severity"] == "critical" and project in trigger["payload"]["summary"]

    client = PauserClient(nc, timeout=5)
    await client.acknowledge(ident, "ana", "cli")
    await eventually(lambda: http.pagerduty.get(key) == "acknowledge", what="an acknowledge")
    await client.resume_session(ident, "ana", "Freed the port.")
    await eventually(lambda: http.pagerduty.get(key) == "resolve", what="a resolve")

    def told(kind: str) -> list:
        return [
            r for r in http.accepted(kind) if project in str(r.body) and "Resolved" in str(r.body)
        ]

    await eventually(lambda: told("slack") and told("twilio"), what="the resolved follow-ups")
    await eventually(
        lambda: [m for m in mails_to(smtp, "ana@example.com", ident) if "Resolved" in m],
        what="the resolved email",
    )
    await asyncio.sleep(1.0)
    assert len(told("slack")) == 1 and len(told("twilio")) == 1
    assert len([m for m in mails_to(smtp, "ana@example.com", ident) if "Resolved" in m]) == 1
    events = [
        r.body["event_action"] for r in http.accepted("pagerduty") if r.body["dedup_key"] == key
    ]
    assert events == ["trigger", "acknowledge", "resolve"]
