"""Sessions' starts and ends, written to PostgreSQL in batches.

The pauser records every session of the fleet (the dashboard and the API list them), so it
sees a start and an end for each: hundreds a second for a large fleet. Written one commit
each, they took the pauser and PostgreSQL more than half a core between them at 100,000
sessions, on the machine the detectors and the pauses share. Each event joins the batch being
gathered; the batch is written in one transaction a moment later, and each event's message
is acknowledged once its batch is committed (the handler hands `handle_durably` the future),
so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from yokeflow_agent.contract import SessionEnded, SessionStarted

from yokeflow_intervention.shared.handling import TRANSIENT_ERRORS

__all__ = ["LifecycleWriter"]

log = logging.getLogger(__name__)

Lifecycle = SessionStarted | SessionEnded

# How long a batch gathers (the first event waits at most this much more) and its largest
# size (under the consumer's max_ack_pending, so a batch never waits for its own messages).
LINGER_S = 0.02
MAX_BATCH = 500


class LifecycleWriter:
    """Gathers lifecycle events and writes them with `write`, one batch at a time, in order.

    A batch that fails for a reason other than the database being away is written again one
    event at a time, so one event the database refuses fails alone, not its neighbours."""

    def __init__(
        self,
        write: Callable[[Sequence[Lifecycle]], Awaitable[None]],
        linger_s: float = LINGER_S,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._pending: list[tuple[Lifecycle, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, event: Lifecycle) -> asyncio.Future[None]:
        """The future is done when the event is committed, or failed with why it was not."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="lifecycle writer")
        return done

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(self._linger_s)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Lifecycle, asyncio.Future[None]]]) -> None:
        try:
            await self._write([event for event, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, TRANSIENT_ERRORS):
                for _, done in batch:
                    _settle(done, exc)
                return
            log.warning("a batch of %d sessions failed, writing each alone: %r", len(batch), exc)
            for one in batch:
                await self._commit([one])
            return
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():  # its handler was cancelled (the service stopping)
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
