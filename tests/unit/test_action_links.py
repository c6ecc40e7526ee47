"""Signed action links (no servers): what verifies, what is refused and why, and how each
notice format carries them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from yokeflow_agent.contract import InterventionPaused

from yokeflow_intervention.services.notifier.messages import (
    DISCORD_LIMITS,
    SMS_SEGMENTS,
    Notice,
    discord_payload,
    email_message,
    sms_segments,
    sms_text,
)
from yokeflow_intervention.shared.action_links import (
    ActionLink,
    LinkRefused,
    sign_link,
    verify_link,
)

SECRET, OLD = "s3cret-current", "s3cret-previous"
LINK = ActionLink("i-1", "shop", "acknowledge", "email", "ana@example.com", 2_000_000_000)


def test_a_signed_link_verifies_and_says_what_it_was_signed_with():
    token = sign_link(SECRET, LINK)
    link, signature = verify_link(token, [SECRET])
    assert link == LINK and token.endswith("." + signature)
    assert len(token) < 200  # short enough for a text message


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "bad signature"),
        (lambda t: "x" + t, "bad signature"),
        (lambda t: t.replace(".", ""), "malformed link"),
        (lambda t: t + "." + t, "malformed link"),
        (lambda t: "a" * 2000, "malformed link"),
        (lambda t: "!!.??", "malformed link"),
    ],
)
def test_tampered_or_malformed_links_are_refused(mangle, reason):
    with pytest.raises(LinkRefused, match=reason):
        verify_link(mangle(sign_link(SECRET, LINK)), [SECRET])


def test_a_payload_cannot_be_altered_under_the_same_signature():
    other = ActionLink("i-1", "shop", "resume", "email", "ana@example.com", LINK.expires)
    forged = (
        sign_link("attacker", other).split(".")[0] + "." + sign_link(SECRET, LINK).split(".")[1]
    )
    with pytest.raises(LinkRefused, match="bad signature"):
        verify_link(forged, [SECRET])


def test_expiry_and_rotation():
    stale = ActionLink("i-1", "shop", "snooze", "sms", "+15551234567", int(time.time()) - 1)
    with pytest.raises(LinkRefused, match="expired") as refused:
        verify_link(sign_link(SECRET, stale), [SECRET])
    assert refused.value.status == 410
    # During a rotation the previous secret still verifies; once dropped, its links do not.
    assert verify_link(sign_link(OLD, LINK), [SECRET, OLD])[0] == LINK
    with pytest.raises(LinkRefused, match="bad signature"):
        verify_link(sign_link(OLD, LINK), [SECRET])
    with pytest.raises(LinkRefused, match="not configured"):
        verify_link(sign_link(SECRET, LINK), [])


def notice(**extra: object) -> Notice:
    paused = InterventionPaused(
        intervention_id="i-1",
        project_id="shop",
        session_id="s-1",
        trigger="retry_limit",
        reason="Command attempted 4 times: npm start " + "x" * 400,
        detected_at=datetime.now(UTC),
        paused_at=datetime.now(UTC),
    )
    return Notice(paused, **extra)  # type: ignore[arg-type]


URLS = tuple(
    (label, f"https://yf.example.com/actions/{'a' * 140}.{label[:4]}{'b' * 18}")
    for label in ("Acknowledge", "Resume", "Snooze 1 h")
)


def test_every_person_facing_format_carries_the_links_whole():
    with_links = notice(actions=URLS)
    text = sms_text(with_links)
    assert text.endswith(f" Acknowledge: {URLS[0][1]}") and URLS[1][1] not in text
    assert sms_segments(text) <= SMS_SEGMENTS  # billed segments, not characters
    discord = discord_payload(with_links)
    buttons = discord["components"][0]["components"]
    assert [(b["style"], b["label"], b["url"]) for b in buttons] == [(5, *pair) for pair in URLS]
    act = discord["embeds"][0]["fields"][0]
    assert act["name"] == "Act" and all(f"[{label}]({url})" in act["value"] for label, url in URLS)
    assert len(act["value"]) <= DISCORD_LIMITS["field_value"]
    mail = email_message(with_links, "yf@example.com", ["ana@example.com"])
    plain, rich = (part.get_content() for part in mail.iter_parts())
    assert all(url in plain and f"href='{url}'" in rich for _, url in URLS)
    # Without links (no secret configured) nothing changes.
    assert "Act on it" not in notice().text() and " Acknowledge:" not in sms_text(notice())
    assert "components" not in discord_payload(notice())
