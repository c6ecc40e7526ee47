"""Consuming a pull consumer that has JetStream's pinned-client policy: one owner at a time.

The server pins one client of the consumer's priority group and delivers every message to it;
a client that stops pulling for the consumer's priority_timeout loses the pin and a standby's
waiting pull takes over. nats-py 2.16 has no client for priority groups, so this speaks the
documented protocol (ADR-42): pull requests carry `group` and, once pinned, the `id` the server
sent in the `Nats-Pin-Id` header; a pull with a stale id is answered 423, the sign that another
client owns the consumer now.

Pulling runs apart from handling: the client's read loop hands each delivery over as it is
parsed (`nats_internals.deliveries`), which keeps pulls outstanding (so a long handler does not
cost the pin) and queues the delivery; one task handles them in order. The consumer's
max_ack_pending bounds the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from yokeflow_agent.contract import ConsumerSpec

from .metrics import CONSUMER_PINNED
from .nats_internals import deliveries

__all__ = ["PinnedConsumer"]

log = logging.getLogger(__name__)

_PIN = b"\r\nNats-Pin-Id:"
_LOST = object()  # queued when the pin is lost, so handling learns it in delivery order
_WATCH_EVERY_S = 1.0  # how often a replica not owning a consumer asks who does
_CONTESTED_S = 60.0  # lost again this soon after taking it back: another replica prefers it


class PinnedConsumer:
    """Own `spec` whenever the server pins this client; `on_message` gets its messages one at a
    time, in order; `on_lost` is called (in the same order) when another client took it over.

    The server pins whichever waiting pull it serves first. A `preferred` owner pulls at once
    and takes its consumer back (asks the server to unpin; its own waiting pull is served
    next) at start and whenever it finds another client pinned (a replica that stood in while
    it was away). Any other replica pulls only while someone owns the consumer (to take over
    when the owner stops) or when messages wait unowned; it waits `standby_s` first, and
    again after losing the pin. A preferred owner that loses the consumer again soon after
    taking it back shares the preference with another replica (a configuration mistake): it
    stops taking the consumer back and says so, instead of the two taking it from each other.
    """

    def __init__(
        self,
        nc: Client,
        spec: ConsumerSpec,
        on_message: Callable[[Msg], Awaitable[None]],
        on_lost: Callable[[], None],
        preferred: bool,
        batch: int = 128,
        expires_s: float = 1.0,
        standby_s: float = 2.0,
    ) -> None:
        if spec.priority_group is None:
            raise ValueError(f"consumer {spec.durable} has no priority group")
        self.spec = spec
        self.group = spec.priority_group
        self.pin: str | None = None
        self._nc = nc
        self._on_message = on_message
        self._on_lost = on_lost
        self._preferred = preferred
        self._batch = batch
        self._expires_s = expires_s
        self._standby_s = standby_s
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._owed = 0  # messages requested and not yet delivered or expired
        self._pull_after = 0.0
        self._last_heard = 0.0
        self._reclaimed_at = -_CONTESTED_S
        self._contested = False
        self._standing_by = False  # a non-preferred replica pulls only while this is true
        self._waited = False
        self._inbox = ""
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def owned(self) -> bool:
        return self.pin is not None

    async def start(self) -> None:
        CONSUMER_PINNED.labels(self.spec.durable).set(0)
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox)
        deliveries(self._nc)[self._sub._id] = self._on_delivery
        if self._preferred:
            await self._unpin()
        else:
            self._pull_after = time.monotonic() + self._standby_s
        self._last_heard = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._handle(), name=f"handle {self.spec.durable}"),
            asyncio.create_task(self._keep_pulling(), name=f"pull {self.spec.durable}"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sub is not None:
            deliveries(self._nc).pop(self._sub._id, None)
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _unpin(self) -> None:
        subject = f"$JS.API.CONSUMER.UNPIN.{self.spec.stream}.{self.spec.durable}"
        with contextlib.suppress(Exception):  # nobody pinned, or the server is away: pull anyway
            await self._nc.request(subject, json.dumps({"group": self.group}).encode(), 2.0)

    async def _watch(self) -> None:
        """While another client may own the consumer: a preferred owner takes it back from
        whoever holds it; any other replica stands by (pulls) only once someone owns it, or once
        messages have waited unowned for a round (its preferred owner is away). The server pins
        whichever waiting pull it serves first, so a standby that pulled before anyone owned
        the consumer could win it from the replica that prefers it."""
        subject = f"$JS.API.CONSUMER.INFO.{self.spec.stream}.{self.spec.durable}"
        info = json.loads((await self._nc.request(subject, b"", 2.0)).data)
        pinned = next(
            (
                group.get("pinned_client_id")
                for group in info.get("priority_groups") or ()
                if group.get("group") == self.group
            ),
            None,
        )
        waiting = bool(info.get("num_pending")) and not pinned
        if self._preferred:
            if pinned and pinned != self.pin and not self._contested:
                log.info("%s: taking it back from the replica standing in", self.spec.durable)
                self._reclaimed_at = time.monotonic()
                await self._unpin()
        else:
            self._standing_by = bool(pinned) or (waiting and self._waited)
        self._waited = waiting

    async def _pull(self) -> None:
        request: dict[str, object] = {
            "batch": self._batch,
            "expires": int(self._expires_s * 1e9),
            "group": self.group,
        }
        if self.pin is not None:
            request["id"] = self.pin
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.spec.stream}.{self.spec.durable}"
        self._owed += self._batch
        try:
            await self._nc.publish(subject, json.dumps(request).encode(), reply=self._inbox)
        except Exception as exc:  # disconnected: the watchdog asks again
            self._owed -= self._batch
            log.debug("%s: pull not sent: %r", self.spec.durable, exc)

    async def _maybe_pull(self) -> None:
        if self.pin is None and not self._preferred and not self._standing_by:
            return
        if self._owed <= self._batch // 2 and time.monotonic() >= self._pull_after:
            await self._pull()

    async def _on_delivery(self, subject: bytes, reply: bytes, data: bytes, raw: bytes) -> None:
        self._last_heard = time.monotonic()
        if raw[8:9] != b" ":  # no status: a message (`NATS/1.0 408 ...` is a status)
            self._owed -= 1
            pin = None
            start = raw.find(_PIN) + len(_PIN)
            if start >= len(_PIN):  # the header is there: its value runs to the line's end
                pin = raw[start : raw.find(b"\r\n", start)].strip().decode()
            if pin is not None and pin != self.pin:
                if self.pin is not None:  # re-pinned under a new id: what it held is stale
                    self._queue.put_nowait(_LOST)
                self.pin = pin
                CONSUMER_PINNED.labels(self.spec.durable).set(1)
                log.info("%s: pinned here", self.spec.durable)
            self._queue.put_nowait(Msg(self._nc, subject.decode(), reply.decode(), data))
        else:
            headers = await self._nc._process_headers(raw) or {}
            status = headers.get("Status")
            undelivered = headers.get("Nats-Pending-Messages")
            self._owed = max(self._owed - int(undelivered), 0) if undelivered else 0
            if status == "423":  # another client holds the pin now
                if self.pin is not None:
                    self.pin = None
                    CONSUMER_PINNED.labels(self.spec.durable).set(0)
                    self._queue.put_nowait(_LOST)
                    log.info("%s: taken over by another replica", self.spec.durable)
                    if (
                        self._preferred
                        and not self._contested
                        and (time.monotonic() - self._reclaimed_at < _CONTESTED_S)
                    ):
                        self._contested = True
                        log.warning(
                            "%s: another replica prefers it too (check each replica's "
                            "detector_replica and detector_replicas); no longer taking it back",
                            self.spec.durable,
                        )
                self._pull_after = time.monotonic() + self._standby_s
            elif status not in ("408", "100"):  # 408: the pull expired, as pulls do
                description = headers.get("Description", "")
                log.warning("%s: pull answered %s %s", self.spec.durable, status, description)
                self._pull_after = time.monotonic() + 1.0
        await self._maybe_pull()

    async def _keep_pulling(self) -> None:
        """Pull when a standby's wait is over, and again if the answers stopped (a reconnect
        loses the server's pending pulls); a preferred owner takes its consumer back."""
        checked = 0.0
        while True:
            now = time.monotonic()
            if now - self._last_heard > self._expires_s + 2.0:
                self._owed = 0
                self._last_heard = now
            if self.pin is None and now - checked >= _WATCH_EVERY_S:
                checked = now
                try:
                    await self._watch()
                except Exception as exc:  # the server is away: next round
                    log.debug("%s: not watched: %r", self.spec.durable, exc)
            await self._maybe_pull()
            await asyncio.sleep(0.25)

    async def _handle(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is _LOST:
                    self._on_lost()
                else:
                    assert isinstance(item, Msg)
                    await self._on_message(item)
            except Exception:  # the handler settles its own messages; never stop consuming
                log.exception("%s: handler failed", self.spec.durable)
