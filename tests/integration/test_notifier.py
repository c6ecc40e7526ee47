"""The notifier against real protocol peers on loopback, with real pauser/notifier processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from datetime import UTC, datetime

import pytest
from yokeflow_agent.contract import Intervention, RetryStats, Subjects, Task

from tests.peers import HttpPeer, ScriptedReply, SmtpPeer
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences

from ..helpers import eventually
from .test_recovery import registered

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
SID, TOKEN, FROM = "AC" + "1" * 32, "twilio-token-not-logged", "+15550001111"


@pytest.fixture
def peers():
    with (
        HttpPeer(twilio_sid=SID, twilio_token=TOKEN, webhook_secret=SECRET) as http,
        SmtpPeer() as smtp,
    ):
        yield http, smtp


def notifier_env(http: HttpPeer, smtp: SmtpPeer, **extra: str) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "YOKEFLOW_SMTP_SECURITY": "none",
        "SMTP_USERNAME": "",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        "YOKEFLOW_TWILIO_API_BASE_URL": http.base_url,
        "YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS": "true",
        "YOKEFLOW_WEBHOOK_SECRET": SECRET,
        "YOKEFLOW_DASHBOARD_URL": "http://127.0.0.1:8765",
        "YOKEFLOW_NOTIFICATION_TIMEOUT": "5",
        **extra,
    }


def mine(received: list, project: str) -> list:
    """This test's messages: a shared durable consumer may also deliver earlier tests' backlog."""
    return [r for r in received if project in json.dumps(r.body)]


def intervention(project: str, session: str, trigger: str = "retry_limit") -> Intervention:
    return Intervention(
        intervention_id=f"{session}-i",
        project_id=project,
        session_id=session,
        trigger=trigger,  # type: ignore[arg-type]
        blocker_type="port_conflict" if trigger == "critical_error" else None,
        reason="Command attempted 4 times: npm start",
        error_excerpt="Error: listen EADDRINUSE: address already in use :::3000",
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


async def ledger(db, intervention_id: str) -> list[dict]:
    rows = await db.fetch(
        "SELECT channel, recipient, status, detail, attempts FROM notification_deliveries "
        "WHERE intervention_id = $1 ORDER BY channel, recipient",
        intervention_id,
    )
    return [dict(r) for r in rows]


async def decisions_for(db, project: str, count: int) -> list[str]:
    """The project's notification decisions, once all `count` of them are taken."""

    async def taken():
        rows = await db.fetch(
            "SELECT decision FROM notification_decisions WHERE project_id = $1", project
        )
        return [r["decision"] for r in rows] if len(rows) == count else None

    return await eventually(taken, timeout=30, what=f"{count} decisions")


async def settled(db, intervention_id: str, count: int) -> list[dict]:
    async def check():
        rows = await ledger(db, intervention_id)
        return rows if len(rows) >= count and all(r["status"] != "sending" for r in rows) else None

    return await eventually(check, timeout=30, what=f"{count} settled deliveries")


async def test_every_channel_is_delivered_in_its_own_format(nc, db, services, unique, peers):
    http, smtp = peers
    services.start("pauser")
    services.start("notifier", **notifier_env(http, smtp))
    slack_project, discord_project, generic_project = (
        unique("slack"),
        unique("discord"),
        unique("hook"),
    )
    await save_preferences(
        db,
        slack_project,
        NotificationPreferences(
            webhook_enabled=True,
            webhook_url=http.slack_url(),
            email_enabled=True,
            email_addresses=["ana@example.com", "bob@example.com"],
            sms_enabled=True,
            sms_numbers=["+15557654321"],
        ),
    )
    await save_preferences(
        db,
        discord_project,
        NotificationPreferences(webhook_enabled=True, webhook_url=http.discord_url()),
    )
    await save_preferences(
        db,
        generic_project,
        NotificationPreferences(webhook_enabled=True, webhook_url=http.webhook_url()),
    )
    items = [
        intervention(p, unique(f"s{i}"), "critical_error")
        for i, p in enumerate((slack_project, discord_project, generic_project))
    ]
    for item in items:
        await detect(nc, item)

    rows = await settled(db, items[0].intervention_id, 4)
    assert {(r["channel"], r["status"]) for r in rows} == {
        ("slack", "sent"),
        ("email", "sent"),
        ("sms", "sent"),
    }
    assert all(r["status"] == "sent" for r in rows), rows
    assert [r["status"] for r in await settled(db, items[1].intervention_id, 1)] == ["sent"]
    assert [r["status"] for r in await settled(db, items[2].intervention_id, 1)] == ["sent"]

    slack = mine(http.accepted("slack"), slack_project)[0].body
    assert "YokeFlow Session Blocked" in slack["text"]
    fields = {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]}
    assert fields["Project"] == slack_project and fields["Blocker Type"] == "port_conflict"
    assert "Where to Look" in fields and slack["attachments"][0]["color"] == "#d92d20"
    embed = mine(http.accepted("discord"), discord_project)[0].body["embeds"][0]
    assert embed["title"] == "YokeFlow Session Blocked" and embed["color"] == 0xD92D20
    generic = mine(http.accepted("webhook"), generic_project)[0]
    assert generic.body["intervention"]["intervention_id"] == items[2].intervention_id
    assert generic.headers["webhook-signature"].startswith("v1,")  # verified by the peer
    sms = mine(http.accepted("twilio"), slack_project)[0].body
    assert (
        sms["To"] == "+15557654321" and sms["From"] == FROM and sms["Body"].startswith("YokeFlow:")
    )
    assert len(smtp.messages) == 2
    mail = smtp.messages[0]
    assert mail.is_multipart() and "Session Blocked" in mail["Subject"]
    kinds = [part.get_content_type() for part in mail.walk()]
    assert "text/plain" in kinds and "text/html" in kinds

    # The audit trail (written once every channel has an outcome) and the public event.
    async def notification_actions() -> list[str]:
        rows = await db.fetch(
            "SELECT action_status FROM intervention_actions"
            " WHERE paused_session_id = $1 AND action_type = 'notification'",
            items[0].intervention_id,
        )
        return [a["action_status"] for a in rows]

    assert await eventually(notification_actions, what="the notification action") == ["sent"]
    # No secret reaches the ledger or a log.
    stored = " ".join([str(await ledger(db, item.intervention_id)) for item in items])
    assert TOKEN not in stored and SECRET not in stored and "/services/T0001" not in stored
    assert TOKEN not in services.logs() and SECRET not in services.logs()


async def test_preferences_decide_which_triggers_are_told(nc, db, services, unique, peers):
    http, smtp = peers
    services.start("pauser")
    services.start("notifier", **notifier_env(http, smtp))
    project = unique("prefs")
    await save_preferences(
        db,
        project,
        NotificationPreferences(
            webhook_enabled=True,
            webhook_url=http.slack_url(),
            notify_on_retry_limit=False,
            min_notification_interval=0,
        ),
    )
    quiet, loud = (
        intervention(project, unique("a")),
        intervention(project, unique("b"), "critical_error"),
    )
    await detect(nc, quiet)
    await detect(nc, loud)
    await settled(db, loud.intervention_id, 1)
    decisions = dict(
        await db.fetch(
            "SELECT intervention_id, decision FROM notification_decisions WHERE project_id = $1",
            project,
        )
    )
    assert decisions == {quiet.intervention_id: "muted", loud.intervention_id: "notify"}
    assert len(mine(http.accepted("slack"), project)) == 1


async def test_rate_limit_holds_across_three_replicas(nc, db, services, unique, peers):
    http, smtp = peers
    services.start("pauser")
    for _ in range(3):
        services.start("notifier", **notifier_env(http, smtp))
    project = unique("storm")
    url = http.slack_url()
    await save_preferences(
        db,
        project,
        NotificationPreferences(
            webhook_enabled=True,
            webhook_url=url,
            min_notification_interval=4,
            notification_group_window=0,
        ),
    )
    storm = [intervention(project, unique(f"s{i}")) for i in range(9)]
    await asyncio.sleep(1.0)  # all three replicas bound
    for item in storm:
        await detect(nc, item)

    decisions = await decisions_for(db, project, len(storm))
    assert decisions.count("notify") == 1 and decisions.count("suppressed") == 8
    await eventually(
        lambda: len(mine(http.accepted("slack"), project)) == 1, what="one notification"
    )
    await asyncio.sleep(4.2)
    late = intervention(project, unique("late"))
    await detect(nc, late)
    await settled(db, late.intervention_id, 1)
    assert len(mine(http.accepted("slack"), project)) == 2
    fields = {
        f["title"]: f["value"]
        for f in mine(http.accepted("slack"), project)[1].body["attachments"][0]["fields"]
    }
    assert fields["Suppressed"].startswith("8 more")


async def test_transient_failures_are_retried_and_permanent_ones_are_not(
    nc, db, services, unique, peers
):
    http, smtp = peers
    services.start("pauser")
    services.start("notifier", **notifier_env(http, smtp))
    http.script("slack", ScriptedReply(429, "rate_limited", retry_after="1"))
    http.script("discord", ScriptedReply(500, "boom"), ScriptedReply(502, "bad gateway"))
    http.script("webhook", ScriptedReply(400, "no such hook"))
    cases = {}
    for kind, url in (
        ("slack", http.slack_url()),
        ("discord", http.discord_url()),
        ("webhook", http.webhook_url()),
    ):
        project = unique(kind)
        await save_preferences(
            db, project, NotificationPreferences(webhook_enabled=True, webhook_url=url)
        )
        cases[kind] = intervention(project, unique(kind), "critical_error")
    bad_sms = unique("sms")
    await save_preferences(
        db, bad_sms, NotificationPreferences(sms_enabled=True, sms_numbers=["+1555000"])
    )
    cases["sms"] = intervention(bad_sms, unique("sms"), "critical_error")
    started = asyncio.get_running_loop().time()
    for item in cases.values():
        await detect(nc, item)

    slack = (await settled(db, cases["slack"].intervention_id, 1))[0]
    assert (slack["status"], slack["attempts"]) == ("sent", 2), slack
    assert asyncio.get_running_loop().time() - started >= 1.0  # Retry-After honoured
    discord = (await settled(db, cases["discord"].intervention_id, 1))[0]
    assert (discord["status"], discord["attempts"]) == ("sent", 3)
    webhook = (await settled(db, cases["webhook"].intervention_id, 1))[0]
    assert (webhook["status"], webhook["attempts"]) == ("failed", 1) and "HTTP 400" in webhook[
        "detail"
    ]
    sms = (await settled(db, cases["sms"].intervention_id, 1))[0]
    assert (sms["status"], sms["attempts"]) == ("failed", 1) and "21211" in sms["detail"]


@pytest.mark.parametrize(
    ("kind", "after_kill"),
    [
        ("slack", {"sent", "unknown"}),  # a person would see a repeat: at most once
        ("webhook", {"sent"}),  # resent under the same webhook-id, which the receiver drops
    ],
)
async def test_killed_replica_never_delivers_twice(
    nc, db, services, unique, peers, kind, after_kill
):
    http, smtp = peers
    http.delay[kind] = 1.0
    services.start("pauser")
    victim = services.start("notifier", **notifier_env(http, smtp))
    items = []
    for i in range(4):
        project = unique(f"k{i}")
        url = http.slack_url() if kind == "slack" else http.webhook_url()
        await save_preferences(
            db, project, NotificationPreferences(webhook_enabled=True, webhook_url=url)
        )
        items.append(intervention(project, unique(f"k{i}")))
    await asyncio.sleep(1.0)
    for item in items:
        await detect(nc, item)
    await eventually(lambda: len(http.received) >= 1, what="the first send to be in flight")
    await asyncio.sleep(0.3)
    services.kill9(victim)
    services.start("notifier", **notifier_env(http, smtp))
    for item in items:
        await settled(db, item.intervention_id, 1)
    await asyncio.sleep(1.5)
    per_project: dict[str, int] = {}
    for received in http.accepted(kind):
        per_project[received.path] = per_project.get(received.path, 0) + 1
    assert sorted(per_project.values()) == [1, 1, 1, 1], per_project
    statuses = [r["status"] for item in items for r in await ledger(db, item.intervention_id)]
    assert len(statuses) == 4 and set(statuses) <= after_kill, statuses
    if kind == "webhook":
        assert {r.headers["webhook-id"] for r in http.repeats()} <= {
            item.intervention_id for item in items
        }


async def test_interval_zero_never_suppresses_even_under_contention(
    nc, db, services, unique, peers
):
    http, smtp = peers
    services.start("pauser")
    for _ in range(2):
        services.start("notifier", **notifier_env(http, smtp))
    project = unique("burst")
    await save_preferences(
        db,
        project,
        NotificationPreferences(
            webhook_enabled=True,
            webhook_url=http.slack_url(),
            min_notification_interval=0,
            notification_group_window=0,
        ),
    )
    await asyncio.sleep(1.0)
    burst = [intervention(project, unique(f"b{i}")) for i in range(40)]
    for item in burst:
        await detect(nc, item)

    decisions = await decisions_for(db, project, len(burst))
    assert set(decisions) == {"notify"}


async def test_recovery_outcomes_are_followed_up_on_the_same_channels(
    nc, db, services, unique, peers, tmp_path
):
    import subprocess
    import sys

    from yokeflow_intervention.shared.embedded import free_port

    http, smtp = peers
    port, project = free_port(), unique("follow")
    services.start("pauser")
    services.start("notifier", **notifier_env(http, smtp))
    services.start(
        "recovery",
        **registered(project, tmp_path, dev_ports=[port], recovery_actions=["free_port"]),
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import socket,time; s=socket.socket(); "
                f"s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(120)"
            ),
        ],
        cwd=tmp_path,
    )
    try:
        await asyncio.sleep(0.5)
        await save_preferences(
            db, project, NotificationPreferences(webhook_enabled=True, webhook_url=http.slack_url())
        )
        item = intervention(project, unique("s"), "critical_error").model_copy(
            update={
                "error_excerpt": (
                    f"Error: listen EADDRINUSE: address already in use 127.0.0.1:{port}"
                )
            }
        )
        await detect(nc, item)
        await eventually(
            lambda: len(mine(http.accepted("slack"), project)) >= 2,
            timeout=30,
            what="two Slack messages",
        )
        texts = [r.body["text"] for r in mine(http.accepted("slack"), project)]
        assert "YokeFlow Session Blocked" in texts[0]
        assert "YokeFlow Session Resumed Automatically" in texts[1]
        assert (
            "succeeded and the session was resumed"
            in mine(http.accepted("slack"), project)[1].body["attachments"][0]["title"]
        )
        rows = await ledger(db, item.intervention_id)
        assert sorted(r["channel"] for r in rows) == ["slack", "slack:recovery"]
    finally:
        holder.kill()
