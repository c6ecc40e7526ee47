"""How every JetStream handler treats a message: the acknowledgement policy, in one place.

Ack only after the work is durable. A message that breaks the contract goes to a dead-letter
subject with the reason and is acked. A transient failure (NATS or PostgreSQL unreachable) is
redelivered with backoff, for as long as it takes. Waiting on another consumer (NotReadyYet)
is retried for about ten minutes. Any other failure is retried a few times and then
dead-lettered, so one poison message never blocks a consumer or crashes a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar, cast

import asyncpg
import nats.errors
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel
from yokeflow_agent.contract import ConsumerSpec, ContractError, Subjects, parse_message

from .bus import dead_letter
from .metrics import HANDLED
from .nats_internals import acked, sent

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_WAITS",
    "TRANSIENT_ERRORS",
    "AckSoon",
    "Delivery",
    "NotReadyYet",
    "contract_handler",
    "delivery",
    "durable_subscriber",
    "handle_durably",
    "received",
]

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[], Awaitable[None]]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_WAITS = 50  # about ten minutes of backoff for NotReadyYet


class NotReadyYet(Exception):
    """Another consumer has not done its part yet (say, decided the notice a follow-up refers
    to, while the replica holding it died): retried with backoff for about ten minutes, not
    dead-lettered after a handful of quick attempts."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    nats.errors.Error,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
)


class Delivery(NamedTuple):
    """What a JetStream delivery's reply subject says about it (`delivery`)."""

    stream: str
    consumer: str
    attempt: int  # 1 for the first delivery
    stream_seq: int
    stored_at: float  # when the stream stored it, epoch seconds


def delivery(msg: Msg) -> Delivery:
    """The delivery's stream, consumer, attempt, stream sequence and store time, read from its
    reply subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`, or
    the form with domain and account hash after `ACK`). nats-py's `Msg.metadata` builds frozen
    dataclasses and a datetime for this: about 4 µs a message, a few per cent of a hot
    consumer. Raises NotJSMessageError for a message JetStream did not deliver."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        fields = tokens[2:]
    elif len(tokens) >= 11 and tokens[0] == "$JS" and tokens[1] == "ACK":
        fields = tokens[4:]
    else:
        raise nats.errors.NotJSMessageError
    return Delivery(fields[0], fields[1], int(fields[2]), int(fields[3]), int(fields[5]) / 1e9)


class AckSoon:
    """Acks for deliveries a consumer only skips (by their reply subjects), sent together at
    most `within` seconds later.

    An ack sent as its message is handled is a socket write of its own when messages arrive
    one at a time: at 2,000 agent events a second, the pauser's session registry (which keeps
    one event in several) spent a quarter of its CPU writing acks, and the server as many
    reads. Gathered, they go out in one write. Only for messages whose handling is done and
    changes nothing: an ack lost with the process (or refused) means the message comes back
    after the consumer's ack_wait and is skipped again; the consumer's max_ack_pending must
    allow a window's worth."""

    def __init__(self, nc: Client, within: float = 0.005) -> None:
        self._nc = nc
        self._within = within
        self._due: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()  # held until done

    def add(self, reply: str) -> None:
        self._due.append(reply)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._within, self._send)

    def _send(self) -> None:
        self._timer, due, self._due = None, self._due, []
        task = asyncio.create_task(self._ack(due))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _ack(self, due: list[str]) -> None:
        nc = self._nc
        for reply in due:  # one step: nats-py writes what was published in it at once
            with contextlib.suppress(Exception):  # redelivered after ack_wait, skipped again
                if not sent(nc, reply):
                    await nc.publish(reply)


def _backoff(attempt: int) -> float:
    return float(min(0.25 * 2 ** max(attempt - 1, 0), 15.0))


async def handle_durably(
    msg: Msg,
    js: JetStreamContext,
    dlq_subject: str,
    work: Callable[[], Awaitable[object]],
    on_failure: Callable[[], None] | None = None,
    keepalive: float | None = None,
    delivered: Delivery | None = None,
) -> None:
    """`keepalive` (seconds): tell the server the message is still in progress, for work that
    can outlast the consumer's ack_wait. `delivered`: the message's `delivery`, when the caller
    read it already for its work (the detector's hot path reads it once).

    `work` may return a future: what must still finish before the message is acked. The
    consumer goes on to its next messages at once; this message is settled (acked, or
    retried if the future fails) when it is done, by the same rules, without `on_failure`
    (the work itself was done)."""
    beat = asyncio.create_task(_keep_alive(msg, keepalive)) if keepalive else None
    if delivered is None and msg.reply:
        delivered = delivery(msg)
    durable = delivered.consumer if delivered else None
    consumer = durable or msg.subject
    started = time.perf_counter()
    outcome = "acked"
    attempt = (delivered.attempt or 1) if delivered else 1
    reason = ""
    try:
        try:
            unfinished = await work()
            if isinstance(unfinished, asyncio.Future):
                outcome = ""
                _settle_later(msg, js, dlq_subject, unfinished, delivered)
                return
        except ContractError as exc:
            reason = exc.reason
            outcome = "dead_lettered"
        except Exception as exc:
            if on_failure is not None:
                on_failure()
            waiting = isinstance(exc, NotReadyYet) and attempt < MAX_WAITS
            if isinstance(exc, TRANSIENT_ERRORS) or attempt < MAX_ATTEMPTS or waiting:
                log.warning(
                    "%s: attempt %d failed, will retry: %s", msg.subject, attempt, _say(exc)
                )
                await msg.nak(delay=_backoff(attempt))
                outcome = "retried"
                return
            log.error("%s: giving up after %d attempts: %s", msg.subject, attempt, _say(exc))
            reason = f"failed {attempt} times: {_say(exc)}"
            outcome = "dead_lettered"
        if outcome == "dead_lettered":
            # This consumer's copy of this stored message: a redelivery parks it only once.
            letter_id = (
                f"{durable}:{delivered.stream}:{delivered.stream_seq}" if delivered else None
            )
            await dead_letter(js, dlq_subject, msg.subject, msg.data, reason, durable, letter_id)
        if not acked(msg):
            await msg.ack()
    except Exception as exc:
        # Whatever went wrong while failing (the dead-letter publish, the ack, a callback), the
        # message must neither stall unacknowledged nor be lost: it comes back after a backoff
        # (and after MAX_ATTEMPTS is dead-lettered by the branch above).
        outcome = "retried"
        log.warning("%s: could not settle the message, will retry: %s", msg.subject, _say(exc))
        with contextlib.suppress(Exception):
            await msg.nak(delay=_backoff(attempt))
    finally:
        if beat is not None:
            beat.cancel()
        if outcome:
            HANDLED.record(consumer, outcome, time.perf_counter() - started)


_settling: set[asyncio.Task[None]] = set()  # held, so that none is collected before it is done


def _settle_later(
    msg: Msg,
    js: JetStreamContext,
    dlq_subject: str,
    unfinished: asyncio.Future[Any],
    delivered: Delivery | None,
) -> None:
    async def settle() -> None:
        await handle_durably(msg, js, dlq_subject, lambda: unfinished, delivered=delivered)

    task = asyncio.create_task(settle())
    _settling.add(task)
    task.add_done_callback(_settling.discard)


def _say(exc: BaseException) -> str:
    """An exception in one bounded line: its type and the start of its message (a hostile
    message can make an exception's text, or its traceback, enormous)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:500] + " …"


async def _keep_alive(msg: Msg, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await msg.in_progress()


def durable_subscriber(
    broker: NatsBroker, spec: ConsumerSpec, description: str, max_workers: int | None = None
) -> Callable[[Handler], Any]:
    """A FastStream subscriber bound to a provisioned durable consumer (never declared here),
    acknowledging by hand. `max_workers` > 1 runs that many messages at once per replica."""
    extra: dict[str, Any] = {} if max_workers is None else {"max_workers": max_workers}
    return broker.subscriber(  # type: ignore[no-any-return]
        spec.filter_subject,
        queue=spec.group,
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        ack_policy=AckPolicy.MANUAL,
        description=description,
        **extra,
    )


def received(broker: NatsBroker) -> Callable[[], Msg]:
    """The nats-py message `broker` is handling in this task, for a FastStream handler that
    takes no parameter. fast-depends 3.0.9 resolves a parameter typed `NatsMessage` (the
    broker's context) with `run_in_threadpool`: a round trip through a worker thread for
    every message, which under load waits for the interpreter's switch interval (5 ms) to
    get the GIL and then to give it back, on every consumer of a stop's path (the pauser's,
    the notifier's). Read from the context here, nothing leaves the event loop."""
    context = broker.context
    return lambda: cast(NatsMessage, context.get_local("message")).raw_message


def contract_handler(
    model: type[ModelT],
    jetstream: Callable[[], JetStreamContext],
    handle: Callable[[ModelT], Awaitable[object]],
    message: Callable[[], Msg],
    keepalive: float | None = None,
    dlq_subject: str = Subjects.INTERVENTION_DLQ,
) -> Handler:
    """A handler that parses one contract message (`message()`: see `received`) and handles it
    durably."""

    async def handler() -> None:
        raw = message()

        async def work() -> None:
            await handle(parse_message(model, raw.data))

        await handle_durably(raw, jetstream(), dlq_subject, work, keepalive=keepalive)

    return handler
