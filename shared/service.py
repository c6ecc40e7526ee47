"""How every bus service starts, in one place: resources opened once, the service's list bound.

A service's `main.py` is a `build` coroutine: it gets the opened `Resources` (settings, the NATS
connection and its JetStream context, a PostgreSQL pool on request, an exit stack for anything
else it opens), makes its service object, and returns a declarative list of what that object
consumes, answers and runs periodically. `run_service` does the rest the same way for every
service: it opens the resources under an `AsyncExitStack` (closed in reverse order after the
bus is drained), waits until JetStream has every consumer the list binds, binds the list with
the project's one acknowledgement path (`shared.handling`), and serves /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import asyncpg
from faststream import FastStream
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel
from yokeflow_agent.contract import ConsumerSpec

from .bursts import BurstConsumer
from .bus import wait_until_ready
from .db import create_pool
from .handling import ModelT, contract_handler, durable_subscriber, received
from .runtime import ServiceContext, run_periodically, service_context
from .settings import Settings

__all__ = [
    "Binding",
    "Consume",
    "ConsumeInOrder",
    "Every",
    "Reply",
    "Resources",
    "Running",
    "run_service",
    "service_app",
]


@dataclass(frozen=True)
class Resources:
    """What a service's `build` gets: opened once, closed once (by `stack`, in reverse order)."""

    context: ServiceContext
    nc: Client
    js: JetStreamContext
    stack: contextlib.AsyncExitStack

    @property
    def settings(self) -> Settings:
        return self.context.settings

    async def database(self, max_size: int = 10) -> asyncpg.Pool:
        """A PostgreSQL pool for this service, closed at shutdown after the bus is drained."""
        pool = await create_pool(self.context.require_database(), max_size=max_size)
        self.stack.push_async_callback(pool.close)
        return pool

    async def bucket(self, name: str) -> KeyValue:
        """A provisioned KV bucket, once JetStream answers for it."""
        await wait_until_ready(self.js, (), (name,))
        return await self.js.key_value(name)


@dataclass(frozen=True)
class Consume(Generic[ModelT]):
    """Contract messages from a provisioned durable consumer, each parsed and handled durably.
    `keepalive` beats every third of the consumer's ack_wait, for work that can outlast it;
    `max_workers` > 1 handles that many at once per replica."""

    spec: ConsumerSpec
    model: type[ModelT]
    handle: Callable[[ModelT], Awaitable[object]]
    description: str
    max_workers: int | None = None
    keepalive: bool = False


@dataclass(frozen=True)
class ConsumeInOrder:
    """A consumer that sees every agent event and keeps few, read in bursts with nats-py
    (`bursts.BurstConsumer`): `callback` gets each message one at a time, in order; the ones
    `skip` says nothing is done with (by their payload) are acked, unhandled. FastStream 0.7.8
    resolves each handler's context through a thread pool, which measured about 20x slower."""

    spec: ConsumerSpec
    callback: Callable[[Msg], Awaitable[None]]
    skip: Callable[[bytes], bool] | None = None


@dataclass(frozen=True)
class Reply:
    """A request/reply subject served by one queue group: the request's bytes in, a model out."""

    subject: str
    queue: str
    title: str
    respond: Callable[[bytes], Awaitable[BaseModel]]


@dataclass(frozen=True)
class Every:
    """Work run now and every `seconds` for the service's life (see run_periodically)."""

    seconds: float
    work: Callable[[], Awaitable[object]]
    what: str


@dataclass(frozen=True)
class Running:
    """Consumers a service binds itself (the detector's pinned partitions): started once the bus
    consumes, stopped before it is drained."""

    consumers: tuple[ConsumerSpec, ...]
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


Binding = Consume[Any] | ConsumeInOrder | Reply | Every | Running
Build = Callable[[Resources], Awaitable[Sequence[Binding]]]


def _consumers(bindings: Sequence[Binding]) -> tuple[ConsumerSpec, ...]:
    specs: list[ConsumerSpec] = []
    for binding in bindings:
        if isinstance(binding, Consume | ConsumeInOrder):
            specs.append(binding.spec)
        elif isinstance(binding, Running):
            specs.extend(binding.consumers)
    return tuple(specs)


def _serve(reply: Reply, message: Callable[[], Msg]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def serve() -> dict[str, Any]:
        return (await reply.respond(message().data)).model_dump(mode="json")

    return serve


def service_app(context: ServiceContext, build: Build) -> FastStream:
    """The service as a FastStream app: `build` runs on startup, once the bus is connected.

    FastStream subscribers added before the broker starts are started with it; the hooks the
    other bindings need (after startup, on shutdown) are added there too, in the list's order,
    and the metrics (whose log line says "ready") last.
    """
    broker = context.broker()
    app = FastStream(broker)
    opened: list[contextlib.AsyncExitStack] = []

    @app.on_startup
    async def start() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await broker.connect()
            js = broker.connection.jetstream()
            bindings = await build(Resources(context, broker.connection, js, stack))
            consumers = _consumers(bindings)
            await wait_until_ready(js, consumers)
            for binding in bindings:
                _bind(app, broker, js, binding)
            context.instrument(app, lambda: js, consumers)
            opened.append(stack.pop_all())

    @app.after_shutdown
    async def close() -> None:
        for stack in opened:
            await stack.aclose()

    return app


def _bind(app: FastStream, broker: NatsBroker, js: JetStreamContext, binding: Binding) -> None:
    if isinstance(binding, Consume):
        spec = binding.spec
        keepalive = spec.ack_wait_s / 3 if binding.keepalive else None
        durable_subscriber(broker, spec, binding.description, binding.max_workers)(
            contract_handler(
                binding.model, lambda: js, binding.handle, received(broker), keepalive=keepalive
            )
        )
    elif isinstance(binding, ConsumeInOrder):
        consumer = BurstConsumer(broker.connection, binding.spec, binding.callback, binding.skip)
        app.after_startup(consumer.start)
        app.on_shutdown(consumer.stop)
    elif isinstance(binding, Reply):
        broker.subscriber(binding.subject, queue=binding.queue, title=binding.title)(
            _serve(binding, received(broker))
        )
    elif isinstance(binding, Every):
        run_periodically(app, binding.seconds, binding.work, binding.what)
    else:
        app.after_startup(binding.start)
        app.on_shutdown(binding.stop)


def run_service(name: str, build: Build) -> None:
    """A service process's whole life: settings and logs, then the app until SIGTERM/SIGINT."""
    asyncio.run(service_app(service_context(name), build).run())
