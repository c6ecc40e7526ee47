"""The hot consumers' way past nats-py (shared/nats_internals.py) against a real NATS server:
what `sent` publishes arrives as `Client.publish` would have published it, an ack by `acked`
settles the delivery, and a client that cannot take it says so instead of losing it. What a
consumer's taker skips (`taken`) is held by test_bursts.py."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from yokeflow_intervention.shared.nats_internals import acked, sent

from ..helpers import eventually

pytestmark = pytest.mark.integration


async def test_what_is_sent_by_hand_arrives_and_an_ack_settles_its_delivery(nc, unique):
    subject = f"{unique('internals')}.verdict"
    heard: list[Msg] = []

    async def hear(msg: Msg) -> None:
        heard.append(msg)

    sub = await nc.subscribe(subject, cb=hear)
    await nc.flush()
    assert sent(nc, subject, b'{"v":1,"seq":1,"decision":"continue"}')
    assert sent(nc, subject)  # an empty payload, as an ack is
    await eventually(lambda: len(heard) == 2, what="both messages")
    assert [m.data for m in heard] == [b'{"v":1,"seq":1,"decision":"continue"}', b""]
    assert heard[0].headers is None and heard[0].reply == ""
    await sub.unsubscribe()

    stream = unique("INTERNALS").upper()
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"]))
    await js.publish(f"{stream.lower()}.job", b"work")
    pull = await js.pull_subscribe(
        f"{stream.lower()}.>",
        durable="internals",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0),
    )
    (delivered,) = await pull.fetch(1, timeout=5)
    assert acked(delivered)
    assert not acked(delivered)  # once: Msg.ack would now raise, as it always does

    async def settled() -> bool:
        info = await js.consumer_info(stream, "internals")
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(settled, what="the ack to settle the delivery")
    await asyncio.sleep(1.5)  # past ack_wait: nothing comes back
    with pytest.raises(nats.errors.TimeoutError):
        await pull.fetch(1, timeout=0.5)
    await js.delete_stream(stream)


async def test_a_client_that_is_not_connected_is_left_to_nats_py(infra, unique):
    client = await nats.connect(infra.nats_url)
    await client.close()
    assert not sent(client, f"{unique('internals')}.closed", b"x")  # publish raises for it instead
    with pytest.raises(nats.errors.ConnectionClosedError):
        await client.publish(f"{unique('internals')}.closed", b"x")
