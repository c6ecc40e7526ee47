"""Prometheus metrics shared by every service, served on `metrics_port` when it is set.

One set of names for all services (the `service` label tells them apart), so one dashboard and
one alert rule cover a fleet: see docs/operations.md.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

from nats.js import JetStreamContext
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from yokeflow_agent.contract import ConsumerSpec

__all__ = [
    "CONSUMER_ACK_PENDING",
    "CONSUMER_PENDING",
    "CONSUMER_PINNED",
    "GC_FROZEN",
    "GC_PAUSE",
    "HANDLED",
    "INTERVENTIONS",
    "LOOP_STALL",
    "NOTIFICATIONS",
    "PERIODIC_ROUND",
    "RECOVERIES",
    "SESSIONS_EVICTED",
    "SESSIONS_IN_MEMORY",
    "STREAM_BYTES",
    "STREAM_MAX_BYTES",
    "WARNINGS",
    "probe_loop_stalls",
    "read_consumer_lag",
    "read_stream_fill",
    "serve_metrics",
]

log = logging.getLogger(__name__)


class _Handled:
    """`yokeflow_messages_handled_total` and `yokeflow_handler_seconds`, counted in plain ints
    and exposed as those families when scraped. A prometheus_client counter or histogram takes a
    lock on every update, three a message (about 3 µs, a few per cent of a hot consumer's time);
    here one thread (the event loop) counts, and a scrape copies the counts (a C-level copy
    under the GIL: a scrape may see a message's outcome before its duration, never a torn
    count)."""

    BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], int] = {}
        # Per consumer: a count per bucket (its own, not cumulative), one for +Inf, then the sum.
        self.seconds: dict[str, list[float]] = {}

    def record(self, consumer: str, outcome: str, seconds: float) -> None:
        key = (consumer, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        counts = self.seconds.get(consumer)
        if counts is None:
            counts = self.seconds[consumer] = [0.0] * (len(self.BUCKETS) + 2)
        counts[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        handled = CounterMetricFamily(
            "yokeflow_messages_handled",
            "Messages a consumer finished with, by outcome (acked, dead_lettered, retried).",
            labels=["consumer", "outcome"],
        )
        for (consumer, outcome), count in dict(self.outcomes).items():
            handled.add_metric([consumer, outcome], count)
        yield handled
        timed = HistogramMetricFamily(
            "yokeflow_handler_seconds",
            "Time to handle one message, by consumer.",
            labels=["consumer"],
        )
        for consumer, counts in dict(self.seconds).items():
            counts = list(counts)
            cumulative = list(itertools.accumulate(counts[:-1]))
            bounds = [*(str(float(b)) for b in self.BUCKETS), "+Inf"]
            timed.add_metric([consumer], list(zip(bounds, cumulative, strict=True)), counts[-1])
        yield timed


HANDLED = _Handled()
REGISTRY.register(HANDLED)
INTERVENTIONS = Counter(
    "yokeflow_interventions_total",
    "Interventions emitted by the detector, by trigger.",
    ["trigger"],
)
WARNINGS = Counter(
    "yokeflow_warnings_total",
    "Sessions warned one step before a stop, by the trigger they were warned of.",
    ["trigger"],
)
NOTIFICATIONS = Counter(
    "yokeflow_notifications_total",
    "Notification deliveries, by channel and outcome.",
    ["channel", "status"],
)
RECOVERIES = Counter(
    "yokeflow_recoveries_total",
    "Automatic recovery steps, by action and outcome.",
    ["action", "status"],
)
SESSIONS_IN_MEMORY = Gauge(
    "yokeflow_detector_sessions_in_memory",
    "Sessions the detector holds in memory (idle ones are evicted)",
)
SESSIONS_EVICTED = Counter(
    "yokeflow_detector_sessions_evicted_total",
    "Idle sessions moved from memory to their checkpoint",
)
CONSUMER_PENDING = Gauge(
    "yokeflow_consumer_pending", "Messages not yet delivered to a durable consumer.", ["consumer"]
)
CONSUMER_ACK_PENDING = Gauge(
    "yokeflow_consumer_ack_pending", "Messages delivered but not yet acknowledged.", ["consumer"]
)
CONSUMER_PINNED = Gauge(
    "yokeflow_consumer_pinned",
    "1 while this replica owns a pinned-client consumer (a detector partition), else 0.",
    ["consumer"],
)

STREAM_BYTES = Gauge("yokeflow_stream_bytes", "Bytes a stream holds now.", ["stream"])
STREAM_MAX_BYTES = Gauge(
    "yokeflow_stream_max_bytes",
    "Bytes a stream keeps at most (-1: unbounded); once full it discards its oldest messages.",
    ["stream"],
)
# A stream this full is discarding history (or about to): worth a log line and an alert.
STREAM_FULL_SHARE = 0.9
_full: set[str] = set()


GC_PAUSE = Histogram(
    "yokeflow_gc_pause_seconds",
    "How long Python's cyclic garbage collector stopped the service, by generation (a full "
    "collection walks every live object: a detector's pauses grow with the sessions it holds).",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
GC_FROZEN = Counter(
    "yokeflow_gc_frozen_objects",
    "Objects moved out of the collector's reach (gc.freeze): each round's survivors, in all. "
    "How many are still held is not read (gc.get_freeze_count walks every one of them, about "
    "100 ms at 50,000 sessions); a heap that keeps growing shows in process memory.",
)
_gc_started = [0.0]
LOOP_STALL = Histogram(
    "yokeflow_event_loop_stall_seconds",
    "How late the event loop woke a 50 ms timer: work that holds the loop this long (a "
    "periodic round over many sessions, a collection) delays every message waiting behind it.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PERIODIC_ROUND = Histogram(
    "yokeflow_periodic_round_seconds",
    "How long one round of a periodic job took, waiting on the bus included, by job.",
    ["work"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
_STALL_PROBE_S = 0.05


def _time_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started[0])


def serve_metrics(port: int) -> None:
    """Expose /metrics on the port (0: off), and time the garbage collector's pauses."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)
    if port:
        start_http_server(port, addr="0.0.0.0")  # noqa: S104 - scraped from outside the container
        log.info("metrics on :%d/metrics", port)


async def probe_loop_stalls() -> None:
    """Record, for the service's life, how late its event loop wakes a short timer."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(_STALL_PROBE_S)
        LOOP_STALL.observe(max(loop.time() - started - _STALL_PROBE_S, 0.0))


async def read_consumer_lag(
    jetstream: JetStreamContext, consumers: tuple[ConsumerSpec, ...]
) -> None:
    """Set the lag gauges of this service's consumers from the server's consumer info."""
    for spec in consumers:
        with contextlib.suppress(Exception):  # a lag reading must never hurt the service
            info = await jetstream.consumer_info(spec.stream, spec.durable)
            CONSUMER_PENDING.labels(spec.durable).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(spec.durable).set(info.num_ack_pending or 0)


async def read_stream_fill(jetstream: JetStreamContext, streams: tuple[str, ...]) -> None:
    """Set the fill gauges of `streams`, and say in the log when one becomes full (a flood by
    one tenant shows here first: its oldest messages are then being discarded) and when it
    is no longer full."""
    for stream in streams:
        with contextlib.suppress(Exception):  # a reading must never hurt the service
            info = await jetstream.stream_info(stream)
            held, limit = info.state.bytes, info.config.max_bytes or -1
            STREAM_BYTES.labels(stream).set(held)
            STREAM_MAX_BYTES.labels(stream).set(limit)
            full = limit > 0 and held >= STREAM_FULL_SHARE * limit
            if full and stream not in _full:
                _full.add(stream)
                log.warning(
                    "stream %s is full: %d of its %d bytes; its oldest messages are "
                    "being discarded",
                    stream,
                    held,
                    limit,
                )
            elif not full and stream in _full:
                _full.discard(stream)
                log.info("stream %s is no longer full: %d of its %d bytes", stream, held, limit)
