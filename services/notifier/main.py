"""Notifier service: intervention.paused in, people told, intervention.notified out.

Any number of replicas share one durable consumer (deliver group `notifier`).
"""

from __future__ import annotations

import os
import socket

import httpx
from faststream import FastStream
from yokeflow_agent.contract import (
    CONSUMERS,
    Intervention,
    InterventionAcknowledged,
    InterventionPaused,
    InterventionResumed,
    InterventionSnoozed,
    RecoveryOutcome,
)

from yokeflow_intervention.shared.bus import wait_until_ready
from yokeflow_intervention.shared.db import create_pool
from yokeflow_intervention.shared.handling import contract_handler, durable_subscriber
from yokeflow_intervention.shared.runtime import (
    ServiceContext,
    run_periodically,
    service_context,
)

from .channels import Senders
from .service import Notifier

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    acknowledged, snoozed, resumed = (
        CONSUMERS.notifier_acknowledged,
        CONSUMERS.notifier_snoozed,
        CONSUMERS.notifier_resumed,
    )
    consumers = (
        CONSUMERS.notifier_paused,
        CONSUMERS.notifier_recovery,
        acknowledged,
        snoozed,
        resumed,
        CONSUMERS.notifier_waiting,
    )
    notifier: Notifier | None = None
    consumer = CONSUMERS.notifier_paused

    @app.on_startup
    async def connect() -> None:
        nonlocal notifier
        pool = await create_pool(
            context.require_database(), max_size=context.settings.notifier_concurrency + 2
        )
        await broker.connect()
        await wait_until_ready(broker.connection.jetstream(), consumers)
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

    concurrency = context.settings.notifier_concurrency

    async def on_paused(paused: InterventionPaused) -> None:
        assert notifier is not None
        await notifier.handle(paused)

    async def on_recovery(outcome: RecoveryOutcome) -> None:
        assert notifier is not None
        await notifier.follow_up(outcome)

    durable_subscriber(
        broker, consumer, "Tells the project's humans about each paused session.", concurrency
    )(contract_handler(InterventionPaused, lambda: broker.connection.jetstream(), on_paused,
                       keepalive=consumer.ack_wait_s / 3))  # fmt: skip
    follow_ups = CONSUMERS.notifier_recovery
    durable_subscriber(
        broker, follow_ups, "Tells the same people what automatic recovery did.", concurrency
    )(contract_handler(RecoveryOutcome, lambda: broker.connection.jetstream(), on_recovery,
                       keepalive=follow_ups.ack_wait_s / 3))  # fmt: skip

    async def changed(intervention_id: str, kind: str, resolved_by: str = "") -> None:
        assert notifier is not None
        await notifier.changed(intervention_id, kind, resolved_by)

    edits = "Shows each change of an incident on Slack and PagerDuty; a resume, where paged."
    durable_subscriber(broker, acknowledged, edits, concurrency)(
        contract_handler(
            InterventionAcknowledged,
            lambda: broker.connection.jetstream(),
            lambda event: changed(event.intervention_id, "acknowledged"),
        )
    )
    durable_subscriber(broker, snoozed, edits, concurrency)(
        contract_handler(
            InterventionSnoozed,
            lambda: broker.connection.jetstream(),
            lambda event: changed(event.intervention_id, "snoozed"),
        )
    )
    durable_subscriber(broker, resumed, edits, concurrency)(
        contract_handler(
            InterventionResumed,
            lambda: broker.connection.jetstream(),
            lambda event: changed(event.intervention_id, "resumed", event.resolved_by),
        )
    )

    async def sweep() -> None:
        if notifier is not None:
            await notifier.sweep()

    run_periodically(
        app, context.settings.notification_sweep_interval, sweep, "repeating and escalating"
    )

    async def on_waiting(waiting: Intervention) -> None:
        assert notifier is not None
        await notifier.tell_waiting(waiting)

    asked = CONSUMERS.notifier_waiting
    durable_subscriber(
        broker, asked, "Tells the project's humans a session has long waited for them.", concurrency
    )(
        contract_handler(
            Intervention,
            lambda: broker.connection.jetstream(),
            on_waiting,
            keepalive=asked.ack_wait_s / 3,
        )
    )

    context.instrument(app, lambda: broker.connection.jetstream(), consumers)

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("notifier")).run())
