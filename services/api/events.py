"""Fan-out of intervention.> to every open server-sent-events stream."""

from __future__ import annotations

import asyncio
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["EventHub", "Listener"]

# What one live stream may hold unread; past either bound the client is dropped (its
# EventSource reconnects and the dashboard reloads), so a reader that stalls costs at most this.
MAX_QUEUED_EVENTS = 1000
MAX_QUEUED_BYTES = 4 * 1024 * 1024


class Listener:
    """One live stream's queue, bounded in events and in bytes."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, str]] = deque()
        self.size = 0
        self.dropped = False
        self._ready = asyncio.Event()

    def offer(self, subject: str, data: str) -> bool:
        """Queue an event; False (and the queue emptied) when the reader has fallen behind."""
        if self.dropped:
            return False
        if len(self.items) >= MAX_QUEUED_EVENTS or self.size + len(data) > MAX_QUEUED_BYTES:
            self.dropped = True
            self.items.clear()
            self.size = 0
        else:
            self.items.append((subject, data))
            self.size += len(data)
        self._ready.set()
        return not self.dropped

    async def next(self, timeout: float) -> tuple[str, str] | None:
        """The next event, or None after `timeout` seconds without one (or once dropped)."""
        if not self.items and not self.dropped:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        if self.dropped or not self.items:
            return None
        subject, data = self.items.popleft()
        self.size -= len(data)
        return subject, data


class EventHub:
    """One NATS subscription, many listeners; a listener that falls behind is dropped."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.listeners: set[Listener] = set()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe("intervention.>", cb=self._fan_out)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _fan_out(self, msg: Msg) -> None:
        if msg.subject.startswith("intervention.cmd."):
            return  # commands are not events
        self.broadcast(msg.subject, msg.data.decode(errors="replace"))

    def broadcast(self, subject: str, data: str) -> None:
        """Offer one event to every stream; its SSE event name is the subject's second token."""
        for listener in list(self.listeners):
            if not listener.offer(subject, data):
                self.listeners.discard(listener)

    def listen(self) -> Listener:
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self.listeners.discard(listener)
