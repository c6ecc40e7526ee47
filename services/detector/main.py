"""Detector service: agent events in, interventions out. Thin wiring over rules and service."""

from __future__ import annotations

from functools import partial

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, PullSub

from shared.contract import (
    AGENT_EVENTS_STREAM,
    CONSUMERS,
    DETECTOR_CHECKPOINT_BUCKET,
    INTERVENTIONS_STREAM,
    InterventionResumed,
    Subjects,
    parse_message,
)
from shared.handling import Batch, handle_durably
from shared.runtime import ServiceContext, service_context

from .rules import DetectionConfig
from .service import Detector

__all__ = ["create_app"]


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    detector: Detector | None = None

    @app.on_startup
    async def connect() -> None:
        nonlocal detector
        await broker.connect()
        js = broker.connection.jetstream()
        checkpoints = await js.key_value(DETECTOR_CHECKPOINT_BUCKET)
        detector = Detector(DetectionConfig.from_settings(context.settings), js, checkpoints)

    # A batch subscriber, processed in order: FastStream runs the messages of a plain pull
    # batch concurrently, which would reorder a session's events.
    @broker.subscriber(
        CONSUMERS.detector_events.filter_subject,
        stream=JStream(AGENT_EVENTS_STREAM.name, declare=False),
        durable=CONSUMERS.detector_events.durable,
        pull_sub=PullSub(batch_size=256, timeout=0.01, batch=True),
        ack_policy=AckPolicy.MANUAL,
        description="Every agent event; emits intervention.detected.<project_id>.",
    )
    async def on_agent_events(batch: Batch) -> None:
        assert detector is not None
        for raw in batch.raw_message:
            await handle_durably(
                raw,
                detector.js,
                Subjects.AGENT_DLQ,
                partial(detector.on_event, raw.data, raw.subject, raw.metadata.sequence.stream),
                on_failure=partial(detector.forget, raw.data),
            )

    @broker.subscriber(
        CONSUMERS.detector_resumes.filter_subject,
        stream=JStream(INTERVENTIONS_STREAM.name, declare=False),
        durable=CONSUMERS.detector_resumes.durable,
        pull_sub=PullSub(batch_size=16, timeout=0.05, batch=True),
        ack_policy=AckPolicy.MANUAL,
        description="Resumed sessions get a fresh epoch of detector state.",
    )
    async def on_resumed(batch: Batch) -> None:
        assert detector is not None
        for raw in batch.raw_message:

            async def work(data: bytes = raw.data) -> None:
                await detector.on_resumed(parse_message(InterventionResumed, data))

            await handle_durably(raw, detector.js, Subjects.INTERVENTION_DLQ, work)

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("detector")).run())
