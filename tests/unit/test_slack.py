"""The Slack app without servers: Slack's documented signature test vector, reproduced by the
local peer's signer and accepted by slack-sdk's verifier the API uses; the incident message
within Block Kit's limits, with agent text that can neither mention nor link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slack_sdk.signature import Clock, SignatureVerifier
from yokeflow_agent.contract import InterventionPaused

from tests.peers import block_kit_problems, slack_signature
from yokeflow_intervention.services.notifier.messages import Notice
from yokeflow_intervention.services.notifier.slack_app import IncidentState, incident_blocks

# From Slack's documentation, "Verifying requests from Slack".
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    b"collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977008"
    b"85554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c4"
    b"47fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


class At(Clock):
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


def test_slacks_documented_signature_vector():
    assert slack_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE
    inside = SignatureVerifier(DOC_SECRET, clock=At(int(DOC_TIMESTAMP) + 299))
    assert inside.is_valid(DOC_BODY, DOC_TIMESTAMP, DOC_SIGNATURE)
    assert not inside.is_valid(DOC_BODY + b"&", DOC_TIMESTAMP, DOC_SIGNATURE)
    assert not inside.is_valid(DOC_BODY, DOC_TIMESTAMP, DOC_SIGNATURE[:-1] + "0")
    stale = SignatureVerifier(DOC_SECRET, clock=At(int(DOC_TIMESTAMP) + 301))
    assert not stale.is_valid(DOC_BODY, DOC_TIMESTAMP, DOC_SIGNATURE)


def paused(reason: str) -> InterventionPaused:
    now = datetime.now(UTC)
    return InterventionPaused(
        intervention_id="i-1",
        project_id="shop",
        session_id="s-1",
        trigger="critical_error",
        blocker_type="port_conflict",
        reason=reason,
        error_excerpt="x" * 4000,
        detected_at=now,
        paused_at=now,
    )


def test_the_incident_message_stays_within_block_kit_and_keeps_agent_text_inert():
    now = datetime.now(UTC)
    notice = Notice(
        paused("<!channel> see <https://evil.example|here> " + "y" * 3000),
        0,
        "https://yf.example.com",
    )
    for state in (
        IncidentState(),
        IncidentState("ana (U1)", "slack", now + timedelta(hours=1)),
        IncidentState("ana (U1)", "email", None, "bob"),
    ):
        blocks = incident_blocks(notice, state, now)
        assert block_kit_problems(blocks) == []
        text = str(blocks)
        assert "<!channel>" not in text and "<https://evil" not in text
    open_blocks = incident_blocks(notice, IncidentState(), now)
    assert [b["type"] for b in open_blocks][-1] == "actions"
    resolved = incident_blocks(notice, IncidentState(resolved_by="bob"), now)
    assert "actions" not in [b["type"] for b in resolved]
    assert "Snoozed until" in str(
        incident_blocks(notice, IncidentState("a", "sms", now + timedelta(hours=1)), now)
    )
