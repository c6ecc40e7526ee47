"""Reading a consumer that sees every agent event and keeps few of them: in bursts.

The pauser's session registry reads every agent event to keep the sessions' starts and ends.
Delivered as each event was stored (a push consumer), every event woke the pauser on its own:
at 2,000 events a second it spent about 70 µs of CPU an event, where the same events drained
from a backlog cost it 5 µs. A plain pull consumer asked every `every_s` for what waits
(`no_wait`) answers with a burst instead: the client reads many messages a socket read and the
process wakes ten times a second. The registry is a view (the fleet's sessions, for people and
the API), so a tenth of a second later costs nobody anything; no stop depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from yokeflow_agent.contract import ConsumerSpec

from .handling import AckSoon
from .nats_internals import taken

__all__ = ["BurstConsumer"]

log = logging.getLogger(__name__)

BURST_EVERY_S = 0.1
# What one pull asks for: two replicas' pulls stay within the consumer's max_ack_pending.
BURST_SIZE = 500
# A pull is answered at once (`no_wait`: what waits, then a 404 if that was less than asked),
# except at the consumer's max_ack_pending, where it waits for acks until it expires (408). One
# lost with a reconnect is asked again after a second more.
_PULL_EXPIRES_S = 2.0
_EXPECTED_STATUSES = ("404", "408")  # nothing waits; a pull that ended


class BurstConsumer:
    """Pull `spec`'s waiting messages every `every_s`, `size` at a time, and again at once while
    a pull came back full. `skip` says (by payload) which messages nothing is done with: those
    are acked soon (`AckSoon`) as the client's read loop parses them, without nats-py building
    a message of each; the rest reach `callback` one at a time, in order, as nats-py delivers a
    subscription's messages. Replicas share the consumer: the server serves each pull from the
    messages no replica holds, and one not acked within ack_wait comes back in a later pull."""

    def __init__(
        self,
        nc: Client,
        spec: ConsumerSpec,
        callback: Callable[[Msg], Awaitable[None]],
        skip: Callable[[bytes], bool] | None = None,
        every_s: float = BURST_EVERY_S,
        size: int = BURST_SIZE,
    ) -> None:
        if not spec.pulled:
            raise ValueError(f"consumer {spec.durable} is not a plain pull consumer")
        self.spec = spec
        self._nc = nc
        self._callback = callback
        self._skip = skip
        self._every_s = every_s
        self._size = size
        self._acks = AckSoon(nc)
        self._received = 0  # messages of the current pull
        self._answered = asyncio.Event()
        self._refused: str | None = None  # the status the last pulls were refused with, said once
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._nc.new_inbox(), cb=self._deliver)
        taken(self._nc)[self._sub._id] = self._take
        pulling = self._keep_pulling(self._sub.subject)
        self._task = asyncio.create_task(pulling, name=f"pull {self.spec.durable}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            taken(self._nc).pop(self._sub._id, None)
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def _take(self, reply: bytes, data: bytes) -> bool:
        """In the read loop: count the pull's messages, ack the skipped ones."""
        if not reply:  # a status: the pull is over (and `_deliver` reads which)
            self._answered.set()
            return False
        self._received += 1
        if self._received >= self._size:
            self._answered.set()
        if self._skip is not None and self._skip(data):
            self._acks.add(reply.decode())
            return True
        return False

    async def _deliver(self, msg: Msg) -> None:
        if msg.reply:
            self._refused = None
            await self._callback(msg)
            # nats-py hands a subscription's queued messages over without returning to the
            # loop: a burst's kept messages would hold the pauser's stops behind all of them.
            await asyncio.sleep(0)
            return
        headers = msg.headers or {}
        status = headers.get("Status")
        if status in _EXPECTED_STATUSES:
            self._refused = None
        elif status != self._refused:  # said once, not on every pull
            self._refused = status
            description = headers.get("Description", "")
            log.warning("%s: pull answered %s %s", self.spec.durable, status, description)

    async def _keep_pulling(self, inbox: str) -> None:
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.spec.stream}.{self.spec.durable}"
        expires = int(_PULL_EXPIRES_S * 1e9)
        request = json.dumps({"batch": self._size, "no_wait": True, "expires": expires}).encode()
        while True:
            self._received = 0
            self._answered.clear()
            try:
                await self._nc.publish(subject, request, reply=inbox)
                async with asyncio.timeout(_PULL_EXPIRES_S + 1.0):  # not wait_for: in 3.11
                    await self._answered.wait()  # it can swallow a cancellation
            except Exception as exc:  # disconnected, or the answer lost: asked again
                log.debug("%s: pull not answered: %r", self.spec.durable, exc)
            if self._received < self._size:
                await asyncio.sleep(self._every_s)
