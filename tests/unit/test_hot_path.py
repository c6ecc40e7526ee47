"""What the detector's hot path does cheaply must mean exactly what the slow way meant."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import weakref
from pathlib import Path
from typing import Any, cast

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from nats.js import JetStreamContext
from nats.protocol import command as prot_command
from prometheus_client import REGISTRY, generate_latest
from yokeflow_agent.contract import (
    ConsumerSpec,
    ContractError,
    Verdict,
    _agent_event_adapter,
    parse_agent_event,
)

from yokeflow_intervention.services.detector.service import _CONTINUE
from yokeflow_intervention.services.detector.watchdog import KeptDict
from yokeflow_intervention.shared.collector import freeze_survivors
from yokeflow_intervention.shared.handling import AckSoon, delivery, handle_durably
from yokeflow_intervention.shared.metrics import (
    HANDLED,
    LOOP_STALL,
    probe_loop_stalls,
)
from yokeflow_intervention.shared.nats_internals import acked, deliveries, sent, taken
from yokeflow_intervention.shared.pinned import PinnedConsumer

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "events"


def test_the_continue_verdict_is_the_models_own_json() -> None:
    for seq in (1, 42, 10**9):
        dumped = Verdict(seq=seq, decision="continue").model_dump_json(exclude_none=True)
        assert _CONTINUE % seq == dumped.encode()
        assert Verdict.model_validate_json(_CONTINUE % seq).decision == "continue"


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _frozen_in_all() -> float:
    return REGISTRY.get_sample_value("yokeflow_gc_frozen_objects_total") or 0.0


def test_freezing_collects_garbage_first_and_keeps_survivors_out_of_the_walk() -> None:
    cycle_a, cycle_b = _Node(), _Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a
    gone = weakref.ref(cycle_a)
    del cycle_a, cycle_b  # garbage only a collection finds: it must not be frozen with the rest
    kept = [_Node() for _ in range(1000)]
    counted = _frozen_in_all()
    try:
        asyncio.run(freeze_survivors())
        assert gone() is None
        assert gc.get_freeze_count() >= len(kept)
        # The round's survivors are counted (without walking what earlier rounds froze).
        assert _frozen_in_all() - counted >= len(kept)
        assert not any(obj is kept[0] for obj in gc.get_objects())  # no collection walks it
    finally:
        gc.unfreeze()
    assert any(obj is kept[0] for obj in gc.get_objects())


@pytest.mark.parametrize("table_type", [dict, KeptDict])
def test_a_partitions_deadlines_stay_frozen_when_a_session_comes(table_type: type) -> None:
    """A plain dict of atomic entries leaves the frozen generation for the youngest one when a
    new entry comes (every young collection then walks all of it); the detector's tables do
    not."""
    table = table_type((("p", f"s{n}"), (float(n), "call", n)) for n in range(1000))
    gc.collect()
    gc.freeze()
    try:
        n = len(table)
        table[("p", f"s{n}")] = (float(n), "call", n)  # built at run time, as a session's are
        walked = any(obj is table for obj in gc.get_objects(generation=0))
    finally:
        gc.unfreeze()
    assert walked is (table_type is dict)


def test_one_pass_parsing_accepts_and_refuses_as_parsing_the_objects_does() -> None:
    """`parse_agent_event` validates the bytes in one pass; what it returns must be what
    validating `json.loads` of them returns, and a refusal must give the same reason."""
    lines = [
        line.encode()
        for path in sorted(CORPUS.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    assert len(lines) > 1000
    for line in lines:
        assert parse_agent_event(line) == _agent_event_adapter.validate_python(json.loads(line))
    good = lines[0].decode()
    refused = {
        good[:-1]: "not valid JSON",
        good + " x": "not valid JSON",
        good.replace('"v": 1', '"v": 2'): "unsupported contract version",
        good.replace('"seq": ', '"seq": -'): "seq",
        "[1, 2]": "an event must be a JSON object",
        "[" * 70 + "]" * 70: "nested deeper",
    }
    for text, reason in refused.items():
        with pytest.raises(ContractError, match=reason):
            parse_agent_event(text.encode())
    surrogate = good.replace('"type"', '"note": "\\ud800", "type"', 1)  # cleaned, not refused
    assert parse_agent_event(surrogate.encode()) == parse_agent_event(good)


def test_a_deliverys_reply_subject_reads_as_nats_py_reads_it() -> None:
    for reply in (
        "$JS.ACK.AGENT_EVENTS.detector-3.2.1234.17.1764000000123456789.55",
        "$JS.ACK.hub.ACCHASH.AGENT_EVENTS.detector-3.2.1234.17.1764000000123456789.55.tok",
    ):
        msg = Msg(None, subject="agent.events.p.s.3", reply=reply)  # type: ignore[arg-type]
        meta = msg.metadata
        assert delivery(msg) == (
            meta.stream,
            meta.consumer,
            meta.num_delivered,
            meta.sequence.stream,
            pytest.approx(meta.timestamp.timestamp(), abs=1e-6),
        )
    with pytest.raises(NotJSMessageError):
        delivery(Msg(None, subject="a", reply="_INBOX.x"))  # type: ignore[arg-type]


async def test_a_publish_sent_by_hand_is_the_command_nats_py_sends() -> None:
    """`sent` appends the very bytes `Client.publish` would, wakes the flusher once a step, and
    leaves to nats-py every state it would treat otherwise; `acked` acks once, as `Msg.ack`."""
    nc = Client()
    assert not sent(nc, "agent.verdicts.p.s", b"{}")  # not connected: publish buffers or raises
    flusher = asyncio.get_running_loop().create_future()  # a flusher task that sleeps
    nc._status, nc._flush_queue, nc._flusher_task = Client.CONNECTED, asyncio.Queue(), flusher  # type: ignore[assignment]
    nc._max_payload, nc._max_pending_size = 64, 1 << 20
    assert sent(nc, "agent.verdicts.p.s", b'{"v":1}') and sent(nc, "$JS.ACK.S.c.1.2.3.4.5")
    assert nc._pending == [
        prot_command.pub_cmd("agent.verdicts.p.s", "", b'{"v":1}'),
        prot_command.pub_cmd("$JS.ACK.S.c.1.2.3.4.5", "", b""),
    ]
    assert nc._pending_data_size == sum(len(c) for c in nc._pending)
    assert nc._flush_queue.qsize() == 1 and nc.stats["out_msgs"] == 2
    assert not sent(nc, "a", b"x" * 65)  # over the server's limit: publish raises for it
    nc._max_pending_size = 1
    assert not sent(nc, "a", b"x")  # a full buffer: publish flushes it first
    assert len(nc._pending) == 2

    nc._max_pending_size = 1 << 20
    msg = Msg(nc, subject="agent.events.p.s.3", reply="$JS.ACK.S.c.1.9.9.9.0")
    assert acked(msg) and msg._ackd
    assert not acked(msg)  # Msg.ack raises for a second ack
    assert not acked(Msg(nc, subject="core.subject", reply=""))  # no reply: Msg.ack raises
    assert nc._pending[-1] == prot_command.pub_cmd("$JS.ACK.S.c.1.9.9.9.0", "", b"")
    flusher.cancel()


def test_handled_messages_are_exposed_as_the_counter_and_histogram_they_were() -> None:
    HANDLED.record("hot-path-test", "acked", 0.0007)
    HANDLED.record("hot-path-test", "acked", 0.0005)
    HANDLED.record("hot-path-test", "retried", 50.0)
    text = generate_latest().decode()
    for line in (
        'yokeflow_messages_handled_total{consumer="hot-path-test",outcome="acked"} 2.0',
        'yokeflow_messages_handled_total{consumer="hot-path-test",outcome="retried"} 1.0',
        'yokeflow_handler_seconds_bucket{consumer="hot-path-test",le="0.0005"} 1.0',
        'yokeflow_handler_seconds_bucket{consumer="hot-path-test",le="0.001"} 2.0',
        'yokeflow_handler_seconds_bucket{consumer="hot-path-test",le="30.0"} 2.0',
        'yokeflow_handler_seconds_bucket{consumer="hot-path-test",le="+Inf"} 3.0',
        'yokeflow_handler_seconds_count{consumer="hot-path-test"} 3.0',
        'yokeflow_handler_seconds_sum{consumer="hot-path-test"} 50.0012',
    ):
        assert line in text


async def test_a_blocked_event_loop_is_measured_as_a_stall() -> None:
    probe = asyncio.create_task(probe_loop_stalls())
    await asyncio.sleep(0)  # the probe's timer starts
    before = LOOP_STALL.collect()[0]
    time.sleep(0.12)  # what a long synchronous round does to every task waiting
    await asyncio.sleep(0.1)
    probe.cancel()
    after = LOOP_STALL.collect()[0]

    def over(family: Any, bound: str) -> float:
        counts = {s.labels.get("le"): s.value for s in family.samples if s.name.endswith("_bucket")}
        return counts["+Inf"] - counts[bound]

    assert over(after, "0.05") - over(before, "0.05") >= 1


class _Delivered:
    """A message as handle_durably sees one, recording how it was settled."""

    subject, data, reply = "agent.events.p.s.0", b"{}", ""

    def __init__(self) -> None:
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append("nak")


@pytest.mark.parametrize("write_fails", [False, True])
async def test_a_message_is_settled_once_what_its_work_left_running_is_done(
    write_fails: bool,
) -> None:
    """The detector's handling goes on to the next event while a new session's deadline is
    written; the event is acked only once it is, and comes back if it failed."""
    msg = _Delivered()
    unfinished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def work() -> asyncio.Future[None]:
        return unfinished

    await handle_durably(cast(Msg, msg), cast(JetStreamContext, None), "agent.dlq", work)
    assert msg.settled == []  # handled, not yet acked
    if write_fails:
        unfinished.set_exception(ConnectionError("the bucket is away"))
    else:
        unfinished.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert msg.settled == (["nak"] if write_fails else ["ack"])


class _Publisher:
    """A client `sent` leaves to `publish` (not connected), which records what it publishes."""

    _flush_queue = None
    _status = Client.DISCONNECTED

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, subject: str, payload: bytes = b"") -> None:
        if subject == "$JS.ACK.refused":
            raise ConnectionError("the connection is away")
        self.published.append(subject)


async def test_skipped_messages_are_acked_together_once_the_window_has_passed() -> None:
    """The pauser's registry skips most agent events: their acks go out together (one socket
    write), a little later, every one of them, even when another's ack is refused."""
    client = _Publisher()
    acks = AckSoon(cast(Client, client), within=0.02)
    for reply in ("$JS.ACK.a", "$JS.ACK.refused", "$JS.ACK.b", "$JS.ACK.c"):
        acks.add(reply)
    await asyncio.sleep(0)
    assert client.published == []  # not yet: gathered first
    await asyncio.sleep(0.05)
    assert client.published == ["$JS.ACK.a", "$JS.ACK.b", "$JS.ACK.c"]
    acks.add("$JS.ACK.d")  # a new window
    await asyncio.sleep(0.05)
    assert client.published[-1] == "$JS.ACK.d"


async def test_a_delivery_taken_in_the_read_loop_never_reaches_nats_py() -> None:
    """A delivery its taker deals with is counted and goes no further; one it declines, one
    of another subscription and one whose taker fails are nats-py's, exactly as parsed."""
    nc = Client()
    generic: list[tuple[int, bytes, bytes, bytes, bytes]] = []

    async def process_msg(sid: int, subject: bytes, reply: bytes, data: bytes, hdr: bytes) -> None:
        generic.append((sid, subject, reply, data, hdr))

    nc._process_msg = process_msg  # type: ignore[method-assign]  # as nats-py's own
    took: list[bytes] = []

    def take(reply: bytes, data: bytes) -> bool:
        if data == b"fails":
            raise ValueError("a taker that breaks")
        if data == b"skip":
            took.append(reply)
            return True
        return False

    taken(nc)[3] = take
    headers = b"NATS/1.0\r\nNats-Msg-Id: e-1\r\n\r\n"
    await nc._process_msg(3, b"agent.events.p.s", b"$JS.ACK.1", b"skip", headers)
    await nc._process_msg(3, b"agent.events.p.s", b"$JS.ACK.2", b"keep", headers)
    await nc._process_msg(3, b"agent.events.p.s", b"$JS.ACK.3", b"fails", headers)
    await nc._process_msg(4, b"other", b"", b"skip", b"")
    assert took == [b"$JS.ACK.1"]
    assert nc.stats["in_msgs"] == 1 and nc.stats["in_bytes"] == 4  # nats-py counts its own
    assert generic == [
        (3, b"agent.events.p.s", b"$JS.ACK.2", b"keep", headers),
        (3, b"agent.events.p.s", b"$JS.ACK.3", b"fails", headers),
        (4, b"other", b"", b"skip", b""),
    ]


async def _never(msg: Msg) -> None:
    raise AssertionError("handled in a test that only delivers")


async def test_a_partitions_delivery_is_read_from_its_raw_headers_as_nats_py_reads_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A partition's deliveries skip nats-py's header parsing: the pin id is read from the raw
    header block among other headers, a status line is parsed as nats-py parses it, and a
    delivery the partition cannot take is dropped (redelivered later), never raised into the
    client's read loop, where it would cost the connection."""
    nc = Client()
    spec = ConsumerSpec("S", "detector-0", "a.>", priority_group="detector")
    partition = PinnedConsumer(nc, spec, _never, lambda: None, preferred=True)
    deliveries(nc)[7] = partition._on_delivery  # as `start` registers its inbox subscription
    partition._owed = 200  # so no pull is asked for: this client is not connected

    headers = b"NATS/1.0\r\nNats-Msg-Id: e-1\r\nNats-Pin-Id: 7Xq2 \r\nX-Note: Pin\r\n\r\n"
    await nc._process_msg(7, b"agent.events.shop.s1.0", b"$JS.ACK.x", b"{}", headers)
    assert partition.pin == "7Xq2" and partition._owed == 199
    queued = partition._queue.get_nowait()
    assert isinstance(queued, Msg) and queued.headers is None
    assert (queued.subject, queued.reply, queued.data) == (
        "agent.events.shop.s1.0",
        "$JS.ACK.x",
        b"{}",
    )

    expired = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n"
    await nc._process_msg(7, b"_INBOX.x", b"", b"", expired)
    assert partition._owed == 194 and partition.pin == "7Xq2"
    await nc._process_msg(7, b"_INBOX.x", b"", b"", b"NATS/1.0 423 Nats-Pin-Id mismatch\r\n\r\n")
    assert partition.pin is None and partition._queue.qsize() == 1  # told it lost the pin

    garbled = b"NATS/1.0 409 Bad\r\nNats-Pending-Messages: many\r\n\r\n"
    await nc._process_msg(7, b"_INBOX.x", b"", b"", garbled)  # logged, not raised
    assert "a delivery on b'_INBOX.x' was dropped" in caplog.text
    await nc._process_msg(8, b"elsewhere", b"", b"", b"")  # not a partition's: nats-py's own way
