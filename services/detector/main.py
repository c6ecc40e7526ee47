"""Detector service: agent events in, interventions out. Thin wiring over rules and service."""

from __future__ import annotations

from functools import partial

from faststream import FastStream
from nats.aio.msg import Msg
from yokeflow_agent.contract import (
    CONSUMERS,
    DETECTOR_CHECKPOINT_BUCKET,
    SESSION_SUMMARY_BUCKET,
    InterventionResumed,
    Subjects,
)

from yokeflow_intervention.shared.bus import wait_until_ready
from yokeflow_intervention.shared.collector import freeze_survivors, tune_collector
from yokeflow_intervention.shared.handling import (
    contract_handler,
    durable_subscriber,
    handle_durably,
)
from yokeflow_intervention.shared.pinned import PinnedConsumer
from yokeflow_intervention.shared.runtime import (
    ServiceContext,
    run_periodically,
    service_context,
)

from .rules import DetectionConfig
from .service import EVICTION_INTERVAL_S, SUMMARY_INTERVAL_S, Detector
from .sessions import project_configs

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    consumers = (*CONSUMERS.detector_events, CONSUMERS.detector_resumes)
    replica, replicas = context.settings.detector_replica, context.settings.detector_replicas
    detector: Detector | None = None
    partitions: list[PinnedConsumer] = []

    @app.on_startup
    async def connect() -> None:
        nonlocal detector
        await broker.connect()
        js = broker.connection.jetstream()
        await wait_until_ready(js, consumers, (DETECTOR_CHECKPOINT_BUCKET, SESSION_SUMMARY_BUCKET))
        settings = context.settings
        detector = Detector(
            DetectionConfig.from_settings(settings),
            broker.connection,
            await js.key_value(DETECTOR_CHECKPOINT_BUCKET),
            await js.key_value(SESSION_SUMMARY_BUCKET),
            project_configs(settings),
            observing=frozenset(
                p for p in settings.projects if settings.detection_mode(p) == "observe"
            ),
        )

    async def on_agent_event(raw: Msg) -> None:
        assert detector is not None
        await handle_durably(
            raw,
            detector.js,
            Subjects.AGENT_DLQ,
            partial(detector.on_event, raw.data, raw.subject, raw.metadata.sequence.stream),
            on_failure=partial(detector.forget, raw.subject),
        )

    @app.after_startup
    async def own_partitions() -> None:
        """Pull every partition: this replica's share (index mod replicas) at once, the others
        as a standby, taking one over when its owner stops pulling."""
        assert detector is not None
        for index, spec in enumerate(CONSUMERS.detector_events):
            partition = PinnedConsumer(
                broker.connection, spec, on_agent_event,
                partial(detector.forget_partition, index),
                preferred=index % replicas == replica,
            )  # fmt: skip
            partitions.append(partition)
            await partition.start()
        detector.owns = lambda index: partitions[index].owned

    @app.on_shutdown
    async def release_partitions() -> None:
        for partition in partitions:
            await partition.stop()

    async def on_resumed(resumed: InterventionResumed) -> None:
        assert detector is not None
        await detector.on_resumed(resumed)

    durable_subscriber(
        broker, CONSUMERS.detector_resumes, "Resumed sessions get a fresh epoch of detector state."
    )(contract_handler(InterventionResumed, lambda: broker.connection.jetstream(), on_resumed))

    async def publish_summaries() -> None:
        if detector is not None:
            await detector.publish_summaries()

    run_periodically(app, SUMMARY_INTERVAL_S, publish_summaries, "publishing session summaries")

    async def evict_idle() -> None:
        if detector is not None:
            await detector.evict_idle(context.settings.detector_idle_evict_s)

    if context.settings.detector_gc_freeze_s:
        tune_collector()
        run_periodically(
            app, context.settings.detector_gc_freeze_s, freeze_survivors, "freezing sessions"
        )

    sweep = min(EVICTION_INTERVAL_S, max(context.settings.detector_idle_evict_s / 2, 0.5))
    run_periodically(app, sweep, evict_idle, "evicting idle sessions")
    context.instrument(app, lambda: broker.connection.jetstream(), consumers)

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("detector")).run())
