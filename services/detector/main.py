"""Detector service: agent events in, interventions out. Thin wiring over rules and service."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from nats.aio.msg import Msg
from yokeflow_agent.contract import (
    AGENT_EVENTS_STREAM,
    CONSUMERS,
    DEAD_LETTER_STREAM,
    DETECTOR_CHECKPOINT_BUCKET,
    SESSION_SUMMARY_BUCKET,
    InterventionResumed,
    Subjects,
)

from yokeflow_intervention.shared.collector import freeze_survivors, tune_collector
from yokeflow_intervention.shared.handling import delivery, handle_durably
from yokeflow_intervention.shared.metrics import read_stream_fill
from yokeflow_intervention.shared.pinned import PinnedConsumer
from yokeflow_intervention.shared.service import (
    Binding,
    Consume,
    Every,
    Resources,
    Running,
    run_service,
)

from .rules import DetectionConfig
from .service import EVICTION_INTERVAL_S, SUMMARY_INTERVAL_S, WATCH_WRITE_INTERVAL_S, Detector
from .sessions import project_configs

__all__ = ["build", "main"]

# How full the streams agents can fill are: a flood shows there, and in the log.
FILLED = (AGENT_EVENTS_STREAM.name, DEAD_LETTER_STREAM.name)


async def build(resources: Resources) -> Sequence[Binding]:
    settings = resources.settings
    detector = Detector(
        DetectionConfig.from_settings(settings),
        resources.nc,
        await resources.bucket(DETECTOR_CHECKPOINT_BUCKET),
        await resources.bucket(SESSION_SUMMARY_BUCKET),
        project_configs(settings),
        observing=frozenset(
            p for p in settings.projects if settings.detection_mode(p) == "observe"
        ),
    )
    partitions: list[PinnedConsumer] = []

    async def on_agent_event(raw: Msg) -> None:
        stored = delivery(raw)
        await handle_durably(
            raw,
            detector.js,
            Subjects.AGENT_DLQ,
            partial(detector.on_event, raw.data, raw.subject, stored.stream_seq, stored.stored_at),
            on_failure=partial(detector.forget, raw.subject),
            delivered=stored,
        )

    async def own_partitions() -> None:
        """Pull every partition: this replica's share (index mod replicas) at once, the others
        as a standby, taking one over when its owner stops pulling."""
        replica, replicas = settings.detector_replica, settings.detector_replicas
        for index, spec in enumerate(CONSUMERS.detector_events):
            partition = PinnedConsumer(
                resources.nc,
                spec,
                on_agent_event,
                partial(detector.forget_partition, index),
                preferred=index % replicas == replica,
            )
            partitions.append(partition)
            await partition.start()
        detector.owns = lambda index: partitions[index].owned

    async def release_partitions() -> None:
        for partition in partitions:
            await partition.stop()

    tick_s, idle_s = settings.watchdog_tick_s, settings.detector_idle_evict_s
    freezing: list[Every] = []
    if settings.detector_gc_freeze_s:
        tune_collector()
        freezing.append(Every(settings.detector_gc_freeze_s, freeze_survivors, "freezing sessions"))
    return [
        Running(CONSUMERS.detector_events, own_partitions, release_partitions),
        Consume(
            CONSUMERS.detector_resumes,
            InterventionResumed,
            detector.on_resumed,
            "Resumed sessions get a fresh epoch of detector state.",
        ),
        Every(SUMMARY_INTERVAL_S, detector.publish_summaries, "publishing session summaries"),
        Every(WATCH_WRITE_INTERVAL_S, detector.write_watches, "writing the watchdog's deadlines"),
        Every(tick_s, partial(detector.tick_clock, tick_s), "ticking the watchdog's clock"),
        Every(
            min(EVICTION_INTERVAL_S, max(idle_s / 2, 0.5)),
            partial(detector.evict_idle, idle_s),
            "evicting idle sessions",
        ),
        Every(10.0, partial(read_stream_fill, resources.js, FILLED), "reading the streams' fill"),
        *freezing,
    ]


def main() -> None:
    run_service("detector", build)
