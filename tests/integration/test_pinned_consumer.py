"""The pinned-client consumer (shared/pinned.py) against a real NATS server: one owner at a
time, in order, a standby that takes over, and an owner told when it lost the consumer."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from yokeflow_agent.contract import ConsumerSpec

from yokeflow_intervention.shared.bus import create_consumer
from yokeflow_intervention.shared.pinned import PinnedConsumer

from ..helpers import eventually

pytestmark = pytest.mark.integration


class Replica:
    """What one replica received, and when it heard it lost the consumer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[int] = []
        self.lost = 0

    async def on_message(self, msg: Msg) -> None:
        assert msg.subject.endswith(".job") and msg.reply.startswith("$JS.ACK."), msg
        self.received.append(int(msg.data))
        await msg.ack()

    def on_lost(self) -> None:
        self.lost += 1


async def test_one_owner_in_order_a_standby_takes_over_and_the_owner_hears_it_lost(nc, unique):
    stream, subjects = unique("PINNED").upper(), f"{unique('pinned')}.>"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[subjects]))
    spec = ConsumerSpec(
        stream, "work", subjects, ack_wait_s=5.0, priority_group="workers", priority_timeout_s=1.0
    )
    await create_consumer(nc, spec, replicas=1)
    subject = subjects.replace(">", "job")

    first, second = Replica("first"), Replica("second")
    owner = PinnedConsumer(
        nc, spec, first.on_message, first.on_lost, preferred=True, expires_s=0.5, standby_s=0.5
    )
    standby = PinnedConsumer(
        nc, spec, second.on_message, second.on_lost, preferred=False, expires_s=0.5, standby_s=0.5
    )
    await owner.start()
    await standby.start()
    await asyncio.sleep(1.0)  # both pulls wait: the server pins whichever it serves first
    sent = 0

    async def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):  # every other one with headers of its own beside the pin's
            headers = {"Nats-Msg-Id": f"job-{sent}", "X-Note": "a: b"} if sent % 2 else None
            await js.publish(subject, str(sent).encode(), headers=headers)
            sent += 1

    await send(100)
    await eventually(lambda: len(first.received) + len(second.received) == 100, what="100")
    # Whoever held it, one replica at a time and in order; and the preferred one takes it back.
    assert sorted(first.received + second.received) == list(range(100))
    assert first.received == sorted(first.received) and second.received == sorted(second.received)

    async def preferred_owns() -> bool:
        await send(1)
        await asyncio.sleep(0.2)
        return owner.owned and not standby.owned

    await eventually(preferred_owns, timeout=15, interval=0.3, what="the preferred owner")
    before, lost = len(first.received), first.lost
    await send(100)
    await eventually(lambda: len(first.received) == before + 100, what="100 more at the owner")
    assert first.received[before:] == list(range(sent - 100, sent))  # all of it, in order
    assert first.lost == lost  # the pin read from each delivery's headers stayed the same

    # The owner stops pulling (as a dead process does): after priority_timeout the standby is
    # pinned and gets what follows, in order.
    await owner.stop()
    held = len(second.received)
    await send(100)
    await eventually(lambda: len(second.received) == held + 100, what="the standby taking over")
    assert second.received[held:] == list(range(sent - 100, sent)) and standby.owned

    # A replica back with a preference unpins the consumer: the stand-in hears it lost it.
    back = Replica("back")
    again = PinnedConsumer(nc, spec, back.on_message, back.on_lost, preferred=True, expires_s=0.5)
    await again.start()
    await send(1)
    await eventually(lambda: back.received == [sent - 1], what="the preferred replica owning it")
    await eventually(lambda: second.lost >= 1, what="the stand-in told it lost the consumer")
    assert not standby.owned and again.owned
    await asyncio.gather(standby.stop(), again.stop())
