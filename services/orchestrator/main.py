"""Orchestrator service: intervention.resumed in, the agent's next session started."""

from __future__ import annotations

from faststream import FastStream
from yokeflow_agent.contract import (
    CONSUMERS,
    InterventionResumed,
)

from yokeflow_intervention.shared.bus import wait_until_ready
from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.handling import contract_handler, durable_subscriber
from yokeflow_intervention.shared.runtime import ServiceContext, service_context

from .launcher import NextSessionLauncher

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    consumers = (CONSUMERS.orchestrator_resumes,)
    launcher: NextSessionLauncher | None = None

    @app.on_startup
    async def connect() -> None:
        nonlocal launcher
        await broker.connect()
        await wait_until_ready(broker.connection.jetstream(), consumers)
        launcher = NextSessionLauncher(
            context.settings,
            context.nats_url,
            context.settings.data_dir.resolve() / "resume",
            PauserClient(broker.connection),
        )

    async def on_resumed(resumed: InterventionResumed) -> None:
        assert launcher is not None
        await launcher.on_resumed(resumed)

    durable_subscriber(
        broker,
        CONSUMERS.orchestrator_resumes,
        "Starts the agent's next session with the resume brief.",
    )(contract_handler(InterventionResumed, lambda: broker.connection.jetstream(), on_resumed))

    context.instrument(app, lambda: broker.connection.jetstream(), consumers)

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("orchestrator")).run())
