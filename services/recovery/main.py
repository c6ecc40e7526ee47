"""Recovery service: intervention.paused in, allow-listed fixes, intervention.recovery out."""

from __future__ import annotations

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsMessage

from shared.commands import PauserClient
from shared.contract import (
    CONSUMERS,
    INTERVENTIONS_STREAM,
    InterventionPaused,
    Subjects,
    parse_message,
)
from shared.db import create_pool
from shared.handling import handle_durably
from shared.runtime import ServiceContext, service_context

from .service import Recovery

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    recovery: Recovery | None = None
    consumer = CONSUMERS.recovery_paused

    @app.on_startup
    async def connect() -> None:
        nonlocal recovery
        database_url = context.require_database()
        pool = await create_pool(database_url)
        await broker.connect()
        recovery = Recovery(
            context.settings, pool, broker.connection.jetstream(),
            PauserClient(broker.connection, timeout=15), database_url,
        )  # fmt: skip

    @app.after_shutdown
    async def close() -> None:
        if recovery is not None:
            await recovery.pool.close()

    @broker.subscriber(
        consumer.filter_subject,
        queue=consumer.group,
        stream=JStream(INTERVENTIONS_STREAM.name, declare=False),
        durable=consumer.durable,
        ack_policy=AckPolicy.MANUAL,
        description="Tries the allow-listed fix for each paused intervention.",
    )
    async def on_paused(msg: NatsMessage) -> None:
        assert recovery is not None
        if not context.settings.recovery_enabled:
            await msg.raw_message.ack()
            return

        async def work() -> None:
            await recovery.handle(parse_message(InterventionPaused, msg.raw_message.data))

        await handle_durably(
            msg.raw_message, recovery.js, Subjects.INTERVENTION_DLQ, work,
            keepalive=consumer.ack_wait_s / 3,
        )  # fmt: skip

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("recovery")).run())
