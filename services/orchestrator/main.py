"""Orchestrator service: intervention.resumed in, the agent's next session started."""

from __future__ import annotations

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsMessage

from shared.commands import PauserClient
from shared.contract import (
    CONSUMERS,
    INTERVENTIONS_STREAM,
    InterventionResumed,
    Subjects,
    parse_message,
)
from shared.handling import handle_durably
from shared.runtime import ServiceContext, service_context

from .launcher import NextSessionLauncher

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    launcher: NextSessionLauncher | None = None

    @app.on_startup
    async def connect() -> None:
        nonlocal launcher
        await broker.connect()
        launcher = NextSessionLauncher(
            context.settings.agent_command,
            context.settings.data_dir.resolve() / "resume",
            PauserClient(broker.connection),
        )

    resumes = CONSUMERS.orchestrator_resumes

    @broker.subscriber(
        resumes.filter_subject,
        queue=resumes.group,
        stream=JStream(INTERVENTIONS_STREAM.name, declare=False),
        durable=resumes.durable,
        ack_policy=AckPolicy.MANUAL,
        description="Starts the agent's next session with the resume brief.",
    )
    async def on_resumed(msg: NatsMessage) -> None:
        assert launcher is not None

        async def work() -> None:
            await launcher.on_resumed(parse_message(InterventionResumed, msg.raw_message.data))

        await handle_durably(
            msg.raw_message, broker.connection.jetstream(), Subjects.INTERVENTION_DLQ, work
        )

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("orchestrator")).run())
