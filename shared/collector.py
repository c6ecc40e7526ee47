"""Keeping a service's long-lived objects out of Python's cyclic garbage collector.

A full collection walks every object the collector tracks, and a detector's are mostly its
sessions' state: at 50,000 sessions a replica measured pauses of several hundred milliseconds,
and every event that arrived meanwhile waited (docs/performance.md, Scale). Sessions live for
minutes to hours, so walking them again and again finds nothing.

`freeze_survivors` collects what is not frozen yet (only what was created since the last round,
so the pause is bounded by the event rate, not by the sessions held) and then moves the
survivors to the permanent generation (`gc.freeze`), which no collection walks. Objects frozen
are still freed by reference counting the moment nothing refers to them; only a reference cycle
among frozen objects that later becomes garbage is kept, and the session state has none (plain
tuples, dicts of strings, dataclasses without back references).
"""

from __future__ import annotations

import gc

from .metrics import GC_FROZEN

__all__ = ["YOUNG_THRESHOLD", "freeze_survivors", "tune_collector"]

# Allocations (minus deallocations) between young collections: the default 700 runs one about
# every few events at thousands of events a second; each is cheap but they add up.
YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Fewer young collections (the older generations keep their default ratios), and what the
    process holds once started (modules, classes, settings) frozen at once, without a walk."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    gc.freeze()


async def freeze_survivors() -> None:
    """Collect what is not frozen yet, then freeze what survived (a round of `run_periodically`).
    After a full collection the oldest generation holds exactly the survivors: counting them
    walks only this round's objects, where `gc.get_freeze_count()` walks every frozen one."""
    gc.collect()
    GC_FROZEN.inc(len(gc.get_objects(generation=2)))
    gc.freeze()
