"""Recovery service: intervention.paused in, allow-listed fixes, intervention.recovery out."""

from __future__ import annotations

from faststream import FastStream
from yokeflow_agent.contract import (
    CONSUMERS,
    InterventionPaused,
)

from yokeflow_intervention.shared.bus import wait_until_ready
from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.db import create_pool
from yokeflow_intervention.shared.handling import contract_handler, durable_subscriber
from yokeflow_intervention.shared.runtime import ServiceContext, service_context

from .service import Recovery

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    consumers = (CONSUMERS.recovery_paused,)
    recovery: Recovery | None = None
    consumer = CONSUMERS.recovery_paused

    @app.on_startup
    async def connect() -> None:
        nonlocal recovery
        database_url = context.require_database()
        # Each running recovery holds a connection for its locks and briefly takes another.
        pool = await create_pool(
            database_url, max_size=2 * context.settings.recovery_concurrency + 2
        )
        await broker.connect()
        await wait_until_ready(broker.connection.jetstream(), consumers)
        recovery = Recovery(
            context.settings,
            pool,
            broker.connection.jetstream(),
            PauserClient(broker.connection, timeout=15),
        )

    @app.after_shutdown
    async def close() -> None:
        if recovery is not None:
            await recovery.pool.close()

    async def on_paused(paused: InterventionPaused) -> None:
        assert recovery is not None
        if context.settings.recovery_enabled:
            await recovery.handle(paused)

    durable_subscriber(
        broker,
        consumer,
        "Tries the allow-listed fix for each paused intervention.",
        context.settings.recovery_concurrency,
    )(contract_handler(InterventionPaused, lambda: broker.connection.jetstream(), on_paused,
                       keepalive=consumer.ack_wait_s / 3))  # fmt: skip

    context.instrument(app, lambda: broker.connection.jetstream(), consumers)

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("recovery")).run())
