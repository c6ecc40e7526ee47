"""Property-based fuzzing of the real detector and pauser with generated agent events.

Hypothesis generates batches of events (every type and bogus ones, deep nesting, huge strings,
NUL and lone surrogates, numeric extremes, wrong subjects, duplicates, bytes that are not JSON).
After each batch: no consumer holds an unacknowledged backlog, every message the contract
refuses was dead-lettered once with a reason, nothing failed downstream in the pauser, both
services still answer, and an ordinary stuck session sent afterwards is paused within seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import nats
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yokeflow_agent.contract import (
    CONSUMERS,
    MAX_EVENT_BYTES,
    ContractError,
    Subjects,
    parse_agent_event,
)

from yokeflow_intervention.shared.commands import PauserClient

pytestmark = pytest.mark.integration
TYPES = ["session_started", "tool_call", "tool_result", "error", "heartbeat", "session_ended"]
# Nats-Msg-Ids published so far: the stream drops a repeat for two minutes, across batches.
PUBLISHED_IDS: set[str] = set()
COUNTS: dict[str, int] = {"batches": 0, "messages": 0, "dead_lettered": 0}


def _nested(depth: int) -> str:
    """JSON text nested `depth` deep (built as text: encoding it would exhaust recursion)."""
    opening = "".join('{"k": ' if n % 2 else "[" for n in range(depth))
    closing = "".join("}" if n % 2 else "]" for n in reversed(range(depth)))
    return opening + '"bottom"' + closing


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
hostile_text = st.one_of(
    st.text(max_size=80),
    st.text(
        alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["\x00", "bin\x00ary", "\u202eevil", "<!channel>", "```", "%00", "../../x"]),
    st.integers(1_000, 300_000).map(lambda n: "x" * n),
    st.integers(5, 3_000).map(_nested),
)
CRITICAL = [
    "",
    "",
    "Error: listen EADDRINUSE: address already in use :::3000 ",
    "Error: connect ECONNREFUSED 127.0.0.1:6379 ",
    "ModuleNotFoundError: No module named 'x' ",
]
numbers = st.one_of(
    st.integers(1, 40),
    st.integers(-3, 0),
    st.sampled_from([2**31 - 1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
)


@st.composite
def agent_message(draw: st.DrawFn, project: str) -> tuple[str, bytes, str | None]:
    """(subject, body, Nats-Msg-Id) of one generated message."""
    session = draw(st.sampled_from(["s1", "s2", "s3"]))
    subject = f"agent.events.{project}.{session}"
    if draw(st.integers(0, 19)) == 0:
        return subject, draw(st.binary(max_size=64)), None
    well_formed = draw(st.booleans())
    if well_formed:  # valid in shape, hostile in content: it must be processed
        event: dict[str, Any] = {
            "v": 1,
            "event_id": str(draw(st.uuids())),
            "type": draw(st.sampled_from(TYPES)),
            "project_id": project,
            "session_id": session,
            "seq": draw(st.integers(1, 2**31 - 1)),
            "ts": "2026-11-01T10:00:00Z",
        }
    else:
        event = {
            "v": draw(st.sampled_from([1, 1, 2, "1"])),
            "event_id": draw(st.one_of(st.uuids().map(str), hostile_text)),
            "type": draw(st.sampled_from([*TYPES, "bogus"])),
            "project_id": draw(st.sampled_from([project, project, "other", "bad id"])),
            "session_id": draw(st.sampled_from([session, session, "x" * 200])),
            "seq": draw(numbers),
            "ts": draw(st.sampled_from(["2026-11-01T10:00:00Z", "2026-11-01T10:00:00", "soon"])),
        }
    if draw(st.booleans()):
        event["task"] = {"id": draw(hostile_text), "description": draw(hostile_text)}
    if well_formed:
        event["tool"] = draw(st.sampled_from(["Bash", "Read", "Edit"]))
        event["input"] = draw(st.dictionaries(st.text(max_size=8), json_value, max_size=4))
        event["result"] = {
            "ok": draw(st.booleans()),
            "exit_code": draw(st.integers(-255, 255)),
            "output": draw(hostile_text),
            "error": draw(hostile_text),
            "duration_ms": draw(st.integers(0, 10**9)),
        }
    else:
        event["tool"] = draw(st.sampled_from(["Bash", ""]))
        event["input"] = draw(
            st.one_of(json_value, st.integers(3, 3_000).map(lambda d: f"NESTED:{d}"))
        )
        event["result"] = {
            "ok": draw(st.booleans()),
            "exit_code": draw(numbers),
            "output": draw(hostile_text),
            "error": draw(hostile_text),
            "duration_ms": draw(numbers),
        }
    event["call_id"] = draw(st.sampled_from(["c1", "c2", None]))
    event["message"] = draw(st.sampled_from(CRITICAL)) + draw(hostile_text)
    event["workspace"] = draw(hostile_text)
    body = json.dumps(event, allow_nan=True).encode()
    if isinstance(event["input"], str) and event["input"].startswith("NESTED:"):
        depth = int(event["input"].removeprefix("NESTED:"))
        body = body.replace(json.dumps(event["input"]).encode(), _nested(depth).encode(), 1)
    # A header carries printable ASCII only: other ids go without deduplication.
    usable = isinstance(event["event_id"], str) and event["event_id"].isascii()
    usable = usable and len(event["event_id"]) <= 200  # the server refuses huge headers
    msg_id = event["event_id"] if usable and event["event_id"].isprintable() else None
    return subject, body, msg_id


def _refused(subject: str, body: bytes) -> bool:
    """Whether the contract refuses the message (what the detector must dead-letter), published
    on `subject` (or stored there, with its partition)."""
    try:
        event = parse_agent_event(body)
    except ContractError:
        return True
    published = subject if subject.count(".") == 3 else subject.rpartition(".")[0]
    return published != Subjects.agent_events(event.project_id, event.session_id)


async def _settled(js: Any, durables: tuple[str, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        infos = [await js.consumer_info(stream, name) for stream, name in durables]
        if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"backlog left: {[(i.name, i.num_pending, i.num_ack_pending) for i in infos]}"
            )
        await asyncio.sleep(0.2)


async def _run_batch(
    nats_url: str, database_url: str, project: str, batch: list[tuple[str, bytes, str | None]]
) -> None:
    nc = await nats.connect(nats_url)
    db = await asyncpg.connect(database_url)
    letters: list[dict[str, Any]] = []
    pauser_letters: list[dict[str, Any]] = []

    async def on_letter(msg: Any) -> None:
        letters.append(json.loads(msg.data))

    async def on_pauser_letter(msg: Any) -> None:
        pauser_letters.append(json.loads(msg.data))

    await nc.subscribe("agent.dlq", cb=on_letter)
    await nc.subscribe("intervention.dlq", cb=on_pauser_letter)
    js = nc.jetstream()
    try:
        expected_refused = 0
        for subject, body, msg_id in batch:
            if len(body) + len(msg_id or "") > MAX_EVENT_BYTES - 512:
                continue  # over the largest event the stream stores: the publish is refused
            if msg_id is not None:
                if msg_id in PUBLISHED_IDS:
                    continue  # the stream drops a repeated Nats-Msg-Id
                PUBLISHED_IDS.add(msg_id)
            headers = {"Nats-Msg-Id": msg_id} if msg_id else None
            await js.publish(subject, body, headers=headers)
            expected_refused += _refused(subject, body)
            COUNTS["messages"] += 1
        await _settled(
            js,
            (
                *((c.stream, c.durable) for c in CONSUMERS.detector_events),
                (CONSUMERS.pauser_sessions.stream, CONSUMERS.pauser_sessions.durable),
                ("INTERVENTIONS", "pauser"),
            ),
        )
        await asyncio.sleep(0.3)
        mine = [
            m
            for m in letters
            if str(m.get("consumer")).startswith("detector-")
            and f".{project}." in m["original_subject"]
        ]
        assert len(mine) == expected_refused, (len(mine), expected_refused)
        assert all(m["reason"] for m in mine)
        assert not [m for m in pauser_letters if project in m["original_subject"]], pauser_letters
        COUNTS["dead_lettered"] += len(mine)
        # The pauser's session registry may refuse only what the contract refuses.
        registry = [
            m
            for m in letters
            if m.get("consumer") == CONSUMERS.pauser_sessions.durable
            and f".{project}." in m["original_subject"]
        ]
        assert all(_refused(m["original_subject"], m["payload"].encode()) for m in registry)
        # Both services answer, and an ordinary stuck session is still paused within seconds.
        await PauserClient(nc, timeout=5).get_active_pauses(project)
        session = f"after-{uuid.uuid4().hex[:8]}"
        event = {
            "v": 1,
            "event_id": str(uuid.uuid4()),
            "type": "error",
            "project_id": project,
            "session_id": session,
            "seq": 1,
            "ts": "2026-11-01T10:00:00Z",
            "message": "Error: connect ECONNREFUSED 127.0.0.1:6379",
        }
        await js.publish(Subjects.agent_events(project, session), json.dumps(event).encode())
        deadline = time.monotonic() + 10
        while not await db.fetchval("SELECT 1 FROM paused_sessions WHERE session_id = $1", session):
            assert time.monotonic() < deadline, "the stuck session after the fuzz was not paused"
            await asyncio.sleep(0.1)
    finally:
        await db.close()
        await nc.close()


@pytest.mark.timeout(600)
def test_generated_agent_events_are_all_handled_or_dead_lettered(infra, services, unique):
    services.start("detector")
    services.start("pauser")

    @settings(
        max_examples=4,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def batch(data: st.DataObject) -> None:
        project = unique(f"fuzz{COUNTS['batches']}")
        COUNTS["batches"] += 1
        messages = data.draw(st.lists(agent_message(project), min_size=60, max_size=100))
        asyncio.run(_run_batch(infra.nats_url, infra.database_url, project, messages))

    batch()
    print(
        f"\nfuzz: {COUNTS['batches']} batches, {COUNTS['messages']} messages, "
        f"{COUNTS['dead_lettered']} dead-lettered with a reason, the rest processed"
    )
    assert COUNTS["messages"] >= 200
