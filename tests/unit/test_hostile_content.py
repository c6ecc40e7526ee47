"""Hostile agent text at the contract and in every notification format."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from yokeflow_agent.contract import (
    MAX_EVENT_DEPTH,
    ContractError,
    Intervention,
    InterventionPaused,
    Task,
    parse_agent_event,
)

from yokeflow_intervention.services.notifier.messages import (
    DISCORD_LIMITS,
    Notice,
    discord_payload,
    email_message,
    slack_payload,
    sms_text,
)

NOW = "2026-11-01T10:00:00Z"


def event(**fields: object) -> bytes:
    base = {"event_id": "e1", "project_id": "p", "session_id": "s", "seq": 1, "ts": NOW}
    return json.dumps({**base, **fields}).encode()


def test_deep_nesting_is_refused_with_a_reason_not_a_recursion_error():
    for depth in (MAX_EVENT_DEPTH + 1, 2_000, 100_000):
        nested = "[" * depth + "]" * depth
        raw = event(type="tool_call", tool="x").replace(
            b'"tool": "x"', b'"tool": "x", "input": {"a": ' + nested.encode() + b"}"
        )
        with pytest.raises(ContractError, match="nested deeper than"):
            parse_agent_event(raw)
    ok = "[" * 10 + "]" * 10
    raw = event(type="tool_call", tool="x").replace(
        b'"tool": "x"', b'"tool": "x", "input": {"a": ' + ok.encode() + b"}"
    )
    assert parse_agent_event(raw).type == "tool_call"


def test_seq_beyond_what_is_stored_is_refused_at_the_contract():
    with pytest.raises(ContractError, match=r"seq: .*2147483647"):
        parse_agent_event(event(type="heartbeat", seq=2**31))
    assert parse_agent_event(event(type="heartbeat", seq=2**31 - 1)).seq == 2**31 - 1


def test_nul_and_lone_surrogates_become_replacement_characters():
    raw = b'{"event_id":"e","project_id":"p","session_id":"s","seq":1,"ts":"' + NOW.encode()
    raw += b'","type":"error","message":"bin\\u0000ary \\ud800 text"}'
    message = parse_agent_event(raw).message  # type: ignore[union-attr]
    assert message == "bin\ufffdary \ufffd text"
    message.encode("utf-8")  # storable


def test_intervention_fields_are_clipped_so_every_intervention_fits():
    huge = "x" * 2_000_000
    item = Intervention(intervention_id="i", project_id="p", session_id="s", trigger="manual",
                        reason=huge, error_excerpt=huge, suggested_recovery=huge, workspace=huge,
                        task=Task(id=huge, description=huge), detected_at=NOW)  # fmt: skip
    assert len(item.model_dump_json()) < 64 * 1024
    assert item.reason.endswith("characters clipped]")


def notice(text: str, task: str = "t") -> Notice:
    paused = InterventionPaused(
        intervention_id="i-1", project_id="p", session_id="s", trigger="retry_limit",
        reason=text, error_excerpt=text, task=Task(id="T1", description=task),
        detected_at=NOW, paused_at=datetime.now(UTC),
    )  # fmt: skip
    return Notice(paused, dashboard_url="https://dash.example.com")


def test_slack_gets_agent_text_escaped():
    payload = json.dumps(
        slack_payload(notice("<!channel> <@U123> <https://evil.example|click> & co"))
    )
    for raw in ("<!channel>", "<@U123>", "<https://evil.example|click>", " & "):
        assert raw not in payload
    assert "&lt;!channel&gt;" in payload and "&amp; co" in payload


def test_discord_gets_no_mentions_and_no_masked_links():
    payload = discord_payload(notice("@everyone [click](https://evil.example) ```"))
    assert payload["allowed_mentions"] == {"parse": []}
    text = json.dumps(payload)
    assert "[click](https" not in text and "```" not in text
    embed = payload["embeds"][0]
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= DISCORD_LIMITS["total"]
    link = next(f["value"] for f in embed["fields"] if f["name"] == "Where to Look")
    assert link == "https://dash.example.com/#/interventions/i-1"  # our own link, unescaped


def test_every_format_stays_small_whatever_the_task_text():
    big = notice("e" * 500_000, task="t" * 1_000_000)
    assert len(json.dumps(slack_payload(big))) < 40_000
    assert len(json.dumps(discord_payload(big))) < 8_000
    assert len(email_message(big, "yf@example.com", ["a@example.com"]).as_bytes()) < 64 * 1024
    assert len(sms_text(big)) <= 300
