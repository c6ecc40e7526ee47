"""Notifier service: intervention.paused in, people told, intervention.notified out.

Any number of replicas share one durable consumer (deliver group `notifier`).
"""

from __future__ import annotations

import os
import socket

import httpx
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsMessage

from shared.contract import (
    CONSUMERS,
    INTERVENTIONS_STREAM,
    InterventionPaused,
    RecoveryOutcome,
    Subjects,
    parse_message,
)
from shared.db import create_pool
from shared.handling import handle_durably
from shared.runtime import ServiceContext, service_context

from .channels import Senders
from .service import Notifier

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    notifier: Notifier | None = None
    consumer = CONSUMERS.notifier_paused

    @app.on_startup
    async def connect() -> None:
        nonlocal notifier
        pool = await create_pool(
            context.require_database(), max_size=context.settings.notifier_concurrency + 2
        )
        await broker.connect()
        http = httpx.AsyncClient(follow_redirects=False)
        senders = Senders(context.settings, http)
        replica = f"{socket.gethostname()}:{os.getpid()}"
        notifier = Notifier(context.settings, pool, broker.connection.jetstream(), senders, replica)

    @app.after_shutdown
    async def close() -> None:
        if notifier is not None:
            await notifier.senders.close()
            await notifier.senders.http.aclose()
            await notifier.pool.close()

    @broker.subscriber(
        consumer.filter_subject,
        queue=consumer.group,
        stream=JStream(INTERVENTIONS_STREAM.name, declare=False),
        durable=consumer.durable,
        max_workers=context.settings.notifier_concurrency,
        ack_policy=AckPolicy.MANUAL,
        description="Tells the project's humans about each paused session.",
    )
    async def on_paused(msg: NatsMessage) -> None:
        assert notifier is not None

        async def work() -> None:
            await notifier.handle(parse_message(InterventionPaused, msg.raw_message.data))

        await handle_durably(
            msg.raw_message, notifier.js, Subjects.INTERVENTION_DLQ, work,
            keepalive=consumer.ack_wait_s / 3,
        )  # fmt: skip

    follow_ups = CONSUMERS.notifier_recovery

    @broker.subscriber(
        follow_ups.filter_subject,
        queue=follow_ups.group,
        stream=JStream(INTERVENTIONS_STREAM.name, declare=False),
        durable=follow_ups.durable,
        max_workers=context.settings.notifier_concurrency,
        ack_policy=AckPolicy.MANUAL,
        description="Tells the same people what automatic recovery did.",
    )
    async def on_recovery(msg: NatsMessage) -> None:
        assert notifier is not None

        async def work() -> None:
            await notifier.follow_up(parse_message(RecoveryOutcome, msg.raw_message.data))

        await handle_durably(
            msg.raw_message, notifier.js, Subjects.INTERVENTION_DLQ, work,
            keepalive=follow_ups.ack_wait_s / 3,
        )  # fmt: skip

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("notifier")).run())
