"""The Slack app against a strict local Slack (tests/peers.py SlackPeer): notices posted with
buttons, every change edits the message, clicks signed as Slack signs them, the notes modal, and
every refused click audited with nothing changed. Real pauser, notifier and API processes."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.peers import SlackPeer, SmtpPeer
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences

from ..helpers import eventually, start_api
from .test_incidents import LINK, LINK_SECRET, audit_of, row_of, text_of
from .test_notifier import detect, intervention

pytestmark = pytest.mark.integration

TOKEN, SIGNING = "xoxb-1-test-token", "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL, OTHER_CHANNEL = "C0INCIDENT", "C0OTHER"
PATH = "/api/integrations/slack/interactions"


@pytest.fixture
async def slack(services):
    with SlackPeer(TOKEN, SIGNING, (CHANNEL, OTHER_CHANNEL)) as peer, SmtpPeer() as smtp:
        env = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING,
            "YOKEFLOW_SLACK_API_BASE_URL": peer.api_url,
            "API_TOKEN": "not-used-by-slack",
            "YOKEFLOW_ACTION_LINK_SECRET": LINK_SECRET,
        }
        services.start("pauser")
        base, _ = await start_api(services, **env)
        mail = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "YOKEFLOW_SMTP_SECURITY": "none",
            "SMTP_USERNAME": "",
        }
        services.start("notifier", YOKEFLOW_DASHBOARD_URL=base, **env, **mail)
        yield peer, base, smtp


def message_of(peer: SlackPeer, project: str) -> tuple[str, str] | None:
    """The (channel, ts) of the project's incident message, once posted."""
    for (channel, ts), message in list(peer.messages.items()):
        if project in message["text"]:
            return channel, ts
    return None


def replied(peer: SlackPeer, text: str) -> bool:
    return any(text in c.body.get("text", "") for c in peer.ok_calls("response_url"))


def context_of(peer: SlackPeer, channel: str, ts: str) -> str:
    blocks = peer.messages[(channel, ts)]["blocks"]
    return next(b["elements"][0]["text"] for b in blocks if b["type"] == "context")


async def test_buttons_acknowledge_once_resume_with_notes_and_refuse_the_rest(
    slack, db, nc, unique
):
    peer, base, _ = slack
    project, other = unique("slack"), unique("elsewhere")
    allowed = NotificationPreferences(
        slack_channel=CHANNEL, slack_allowed_user_ids=["U0ANA", "U0BOB"]
    )
    await save_preferences(db, project, allowed)
    await save_preferences(db, other, NotificationPreferences(slack_channel=OTHER_CHANNEL))
    item, theirs = intervention(project, unique("s")), intervention(other, unique("t"))
    await detect(nc, item)
    await detect(nc, theirs)
    ident = item.intervention_id
    channel, ts = await eventually(
        lambda: message_of(peer, project), timeout=30, what="the Slack message"
    )
    message = peer.messages[(channel, ts)]
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    labels = [e["text"]["text"] for e in actions["elements"]]
    assert labels == ["Acknowledge", "Resume", "Resume with notes", "Snooze 1 h", "Open"]
    assert "Not acknowledged yet" in context_of(peer, channel, ts)

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:

        async def post(payload, **signing):
            body, headers = peer.signed(payload, **signing)
            return await http.post(PATH, content=body, headers=headers)

        # Acknowledge: answered at once, the message edited, the clicker told.
        updates_before = len(peer.ok_calls("chat.update"))
        clicked = time.perf_counter()
        answer = await post(peer.block_actions("acknowledge", channel, ts))
        answered = time.perf_counter() - clicked
        assert answer.status_code == 200
        update = await eventually(
            lambda: peer.ok_calls("chat.update")[updates_before:], what="chat.update"
        )
        edited = (update[0].at - clicked) * 1000
        print(f"\nanswered in {answered * 1000:.0f} ms; message edited after {edited:.0f} ms")
        assert "Acknowledged by u0ana (U0ANA) (slack)" in context_of(peer, channel, ts)
        await eventually(lambda: replied(peer, "Acknowledged."), what="the ephemeral answer")

        # A double click by someone else: one transition, and they are told who was first.
        again = await post(peer.block_actions("acknowledge", channel, ts, user="U0BOB"))
        assert again.status_code == 200
        await eventually(
            lambda: replied(peer, "Already acknowledged by u0ana"), what="who was first"
        )

        # Refused, audited, nothing changed: a replay, a bad and a stale signature, a user the
        # project does not allow, another project's intervention clicked from this channel.
        body, headers = peer.signed(peer.block_actions("snooze", channel, ts))
        assert (await http.post(PATH, content=body, headers=headers)).status_code == 200
        assert (await http.post(PATH, content=body, headers=headers)).status_code == 401
        forged = await post(peer.block_actions("resume", channel, ts), secret="not-the-secret")
        old = int(time.time()) - 301
        stale = await post(peer.block_actions("resume", channel, ts), timestamp=old)
        assert forged.status_code == 401 and stale.status_code == 401
        stranger = await post(peer.block_actions("resume", channel, ts, user="U0EVE"))
        assert stranger.status_code == 403
        await eventually(lambda: replied(peer, "You may not act"), what="the explanation")
        sneaky = peer.block_actions("resume", channel, ts)
        sneaky["actions"][0]["value"] = theirs.intervention_id
        assert (await post(sneaky)).status_code == 403
        assert (await http.post(PATH, content=b"x" * 70_000)).status_code == 413
        row = await row_of(db, ident)
        assert not row["resolved"] and row["acknowledged_by"] == "u0ana (U0ANA)"
        assert not (await row_of(db, theirs.intervention_id))["resolved"]
        reasons = {reason for outcome, reason in await audit_of(db, ident) if outcome == "refused"}
        assert {"replayed request", "user not allowed"} <= reasons
        assert "the intervention is not of the channel's project" in {
            r for o, r in await audit_of(db, theirs.intervention_id)
        }
        unsigned = {r for _, r in await audit_of(db, None)}
        assert {"bad signature", "stale or missing timestamp"} <= unsigned

        # Resume with notes: the modal, then its submission; the brief carries the notes and
        # the message says resolved, without buttons.
        opened_before = len(peer.ok_calls("views.open"))
        notes_click = await post(peer.block_actions("resume_with_notes", channel, ts))
        assert notes_click.status_code == 200
        opened = peer.ok_calls("views.open")[opened_before:]
        assert len(opened) == 1, [c.error for c in peer.calls if c.method == "views.open"]
        view = opened[0].body["view"]
        submitted = await post(peer.view_submission(view, {"notes": "Freed port 3000; PORT=4000."}))
        assert submitted.status_code == 200
        resolved = await eventually(
            lambda: db.fetchrow("SELECT * FROM paused_sessions WHERE id = $1 AND resolved", ident),
            what="the resume",
        )
        assert resolved["resolved_by"] == "u0ana (U0ANA)"
        assert "PORT=4000" in resolved["resume_context"]
        await eventually(
            lambda: "Resolved by u0ana" in context_of(peer, channel, ts),
            what="the resolved message",
        )
        assert not [b for b in peer.messages[(channel, ts)]["blocks"] if b["type"] == "actions"]
        assert not [c for c in peer.calls if c.method != "response_url" and not c.ok]


async def test_an_email_link_edits_the_slack_message_too(slack, db, nc, unique):
    """Every change of the incident, wherever it was made, shows in its Slack message."""
    peer, _, smtp = slack
    project = unique("both")
    both = NotificationPreferences(
        slack_channel=CHANNEL, email_enabled=True, email_addresses=["ana@example.com"]
    )
    await save_preferences(db, project, both)
    item = intervention(project, unique("s"))
    await detect(nc, item)
    channel, ts = await eventually(
        lambda: message_of(peer, project), timeout=30, what="the Slack message"
    )
    mail = await eventually(
        lambda: [m for m in smtp.messages if m["X-YokeFlow-Intervention"] == item.intervention_id],
        what="the email",
    )
    acknowledge = LINK.findall(text_of(mail[0], "plain"))[0]
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(acknowledge)).status_code == 200
    await eventually(
        lambda: "Acknowledged by ana@example.com (email)" in context_of(peer, channel, ts),
        what="the Slack message edited",
    )
