"""Fan-out of intervention.> to every open server-sent-events stream."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["EventHub"]

_QUEUE_LIMIT = 1000


class EventHub:
    """One NATS subscription, many listeners; a slow listener loses old events, not the API."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.listeners: set[asyncio.Queue[tuple[str, str]]] = set()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe("intervention.>", cb=self._fan_out)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _fan_out(self, msg: Msg) -> None:
        if msg.subject.startswith("intervention.cmd."):
            return  # commands are not events
        for queue in list(self.listeners):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((msg.subject, msg.data.decode(errors="replace")))

    def listen(self) -> asyncio.Queue[tuple[str, str]]:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(_QUEUE_LIMIT)
        self.listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[tuple[str, str]]) -> None:
        self.listeners.discard(queue)
