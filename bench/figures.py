"""Figures the benches share: percentiles, and what a service's /metrics text says held it
(its event-loop stalls, its periodic rounds, its full collections)."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(values)} samples)"


def _buckets(text: str, name: str, label: str = "") -> list[tuple[float, float]]:
    """A histogram's cumulative (bound, count) buckets from /metrics text; with `label`
    (`key="value"`), those of that series only."""
    found = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{") and label in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found.append((float(bound), float(line.rsplit(" ", 1)[1])))
    return found


def _over(buckets: list[tuple[float, float]], bound: float) -> tuple[int, int, float]:
    """(observations, how many above `bound` seconds, the slowest one's bucket bound in ms)."""
    if not buckets:
        return 0, 0, 0.0
    total = int(buckets[-1][1])
    within = next((count for b, count in buckets if b == bound), 0.0)
    slowest = next((b for b, count in buckets if count >= total), float("inf"))
    return total, total - int(within), slowest * 1000


def gc_figures(text: str) -> tuple[int, int, float, int]:
    """A detector's full collections (generation 2) from its /metrics text: how many, how many
    took over 50 ms, the upper bound of the slowest one's bucket in ms; and the objects it
    froze, in all."""
    frozen = next(
        (
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("yokeflow_gc_frozen_objects_total ")
        ),
        0,
    )
    return (*_over(_buckets(text, "yokeflow_gc_pause_seconds", 'generation="2"'), 0.05), frozen)


def stall_figures(text: str) -> str:
    """A service's event-loop stalls over 10 ms and its slowest periodic round, from its
    /metrics text: what held the loop while triggers waited."""
    _, stalls, worst = _over(_buckets(text, "yokeflow_event_loop_stall_seconds"), 0.01)
    works = {
        line.split('work="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("yokeflow_periodic_round_seconds_count{")
    }
    rounds = [
        (_over(_buckets(text, "yokeflow_periodic_round_seconds", f'work="{work}"'), 0.01)[2], work)
        for work in works
    ]
    slowest, work = max(rounds, default=(0.0, "none"))
    return (
        f"{stalls} loop stalls > 10 ms (<= {worst:.0f} ms); "
        f"slowest periodic round: {work}, <= {slowest:.0f} ms"
    )
