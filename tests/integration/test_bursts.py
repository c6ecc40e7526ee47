"""The session registry's consumer (shared/bursts.py) against a real NATS server: a plain pull
consumer read in bursts, whose skipped messages are acked from the read loop and whose kept
ones reach the callback in order, shared by replicas, with nothing lost or delivered twice; and
the upgrade from the push consumer it replaces."""

from __future__ import annotations

import asyncio
import json
import logging

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from yokeflow_agent.contract import CONSUMERS, ConsumerSpec, Subjects

from yokeflow_intervention.shared.bursts import BurstConsumer
from yokeflow_intervention.shared.bus import create_consumer, provision
from yokeflow_intervention.shared.embedded import EmbeddedNats
from yokeflow_intervention.shared.nats_internals import taken

from ..helpers import eventually

pytestmark = pytest.mark.integration


def _skip(data: bytes) -> bool:
    return b"session_started" not in data


async def _stream(nc, unique, events: int, durable: str) -> tuple[str, ConsumerSpec]:
    stream = unique("BURSTS").upper()
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"]))
    spec = ConsumerSpec(stream, durable, f"{stream.lower()}.>", ack_wait_s=1.0, pulled=True)
    await create_consumer(nc, spec, replicas=1)
    for n in range(events):
        kind = "session_started" if n % 10 == 0 else "tool_call"
        body = f'{{"type":"{kind}","n":{n}}}'.encode()
        await js.publish(f"{stream.lower()}.s{n}", body, headers={"Nats-Msg-Id": f"e-{n}"})
    return stream, spec


async def _settled(nc, spec: ConsumerSpec) -> bool:
    info = await nc.jetstream().consumer_info(spec.stream, spec.durable)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_skipped_messages_are_acked_and_kept_ones_reach_the_callback_in_order(nc, unique):
    """Pulls smaller than the backlog: each full one is followed at once by the next. What the
    taker skips is acked and never reaches the callback; what it keeps arrives as nats-py
    delivers it (headers parsed), in order; nothing comes back after ack_wait."""
    stream, spec = await _stream(nc, unique, 45, "registry")
    handled: list[Msg] = []

    async def callback(msg: Msg) -> None:
        handled.append(msg)
        await msg.ack()

    consumer = BurstConsumer(nc, spec, callback, _skip, every_s=0.05, size=8)
    await consumer.start()
    await eventually(lambda: _settled(nc, spec), what="every message acked")
    assert [json.loads(m.data)["n"] for m in handled] == [0, 10, 20, 30, 40]
    assert handled[0].headers == {"Nats-Msg-Id": "e-0"}
    await asyncio.sleep(1.5)  # past ack_wait: nothing comes back, to the taker or the callback
    assert len(handled) == 5
    info = await nc.jetstream().consumer_info(stream, "registry")
    assert info.num_redelivered == 0

    await nc.jetstream().publish(f"{stream.lower()}.late", b'{"type":"session_started","n":99}')
    await eventually(lambda: len(handled) == 6, what="a message stored later, in a later pull")
    sid = consumer._sub._id if consumer._sub else -1
    await consumer.stop()
    assert sid not in taken(nc)
    await nc.jetstream().delete_stream(stream)


async def test_replicas_share_the_consumer_and_each_kept_message_is_handled_once(infra, nc, unique):
    """Two replicas, each on its own connection, pull the same backlog: every kept message is
    handled by one of them, once; one not acked (a replica that died holding it) comes back
    after ack_wait in a later pull."""
    stream, spec = await _stream(nc, unique, 400, "registry")
    handled: list[int] = []
    dropped: list[int] = []

    async def callback(msg: Msg) -> None:
        n = json.loads(msg.data)["n"]
        if n == 10 and not dropped:
            dropped.append(n)  # held and never acked, as by a replica that died
            return
        handled.append(n)
        await msg.ack()

    other = await nats.connect(infra.nats_url)
    replicas = [
        BurstConsumer(nc, spec, callback, _skip, every_s=0.05, size=50),
        BurstConsumer(other, spec, callback, _skip, every_s=0.05, size=50),
    ]
    for replica in replicas:
        await replica.start()
    await eventually(lambda: _settled(nc, spec), what="every message acked", timeout=15)
    assert sorted(handled) == list(range(0, 400, 10))
    assert dropped == [10]
    for replica in replicas:
        await replica.stop()
    await other.close()
    await nc.jetstream().delete_stream(stream)


async def test_a_pull_the_server_refuses_is_said_and_asked_again(nc, unique, caplog):
    """A consumer that is not there (deleted under the service): each pull is answered with a
    status, which the log names; the consumer keeps asking, and reads again once it exists."""
    stream, spec = await _stream(nc, unique, 1, "registry")
    await nc.jetstream().delete_consumer(stream, "registry")
    handled: list[Msg] = []

    async def callback(msg: Msg) -> None:
        handled.append(msg)
        await msg.ack()

    consumer = BurstConsumer(nc, spec, callback, _skip, every_s=0.05, size=8)
    with caplog.at_level(logging.WARNING, logger="yokeflow_intervention.shared.bursts"):
        await consumer.start()
        await eventually(
            lambda: "registry: pull answered" in caplog.text, what="the refusal in the log"
        )
    await create_consumer(nc, spec, replicas=1)
    await eventually(lambda: len(handled) == 1, what="the message, once the consumer exists")
    await consumer.stop()
    await nc.jetstream().delete_stream(stream)


async def test_an_upgrade_retires_the_push_consumer_and_the_new_one_reads_from_the_start(
    tmp_path,
):
    """A bus provisioned by a release whose registry was a push consumer (`pauser-sessions`):
    provisioning deletes it (the server cannot turn it into a pull consumer) and the registry's
    new pull consumer reads every event the stream holds."""
    server = EmbeddedNats(tmp_path / "nats").start(reuse=False)
    try:
        nc = await nats.connect(server.url)
        await provision(nc)
        registry = CONSUMERS.pauser_sessions
        js = nc.jetstream()
        await js.delete_consumer(registry.stream, registry.durable)
        old = ConsumerSpec(registry.stream, "pauser-sessions", registry.filter_subject)
        await create_consumer(nc, old, replicas=1)  # as the earlier release created it
        for n in range(3):
            await js.publish(
                Subjects.agent_events("upgrade", f"s{n}"), b"{}", headers={"Nats-Msg-Id": str(n)}
            )

        await provision(nc)
        names = [info.name for info in await js.consumers_info(registry.stream)]
        assert "pauser-sessions" not in names
        info = await js.consumer_info(registry.stream, registry.durable)
        assert info.config.deliver_subject is None  # a pull consumer
        assert info.num_pending == 3
        await nc.close()
    finally:
        server.stop()
