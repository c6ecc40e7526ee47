"""Budgets an operator may set: a share of failed results and a session's time. Neither says a
session is stuck (real work fails often while it explores, and real work can be long), so both
are off unless set, and a stop by one says it is a budget, not a loop."""

from __future__ import annotations

from datetime import datetime

from .config import DetectionConfig
from .state import SessionState, Verdict, Warning


def error_rate(state: SessionState, excerpt: str, config: DetectionConfig) -> Verdict | None:
    """Strictly more than `error_rate_threshold` of the last `error_rate_window` results
    failed, once `error_rate_min_results` exist."""
    threshold = config.error_rate_threshold
    if threshold is None:
        return None
    total = len(state.results)
    failed = total - sum(state.results)
    if total < config.error_rate_min_results or failed / total <= threshold:
        return None
    return Verdict(
        trigger="error_rate",
        reason=(
            f"Error budget: {failed / total:.1%} of the last {total} tool results failed "
            f"(the budget set is {threshold:.0%})"
        ),
        excerpt=excerpt,
    )


def duration(state: SessionState, now: datetime, config: DetectionConfig) -> Verdict | None:
    limit = config.session_duration_limit
    if limit is None or state.started_at is None:
        return None
    elapsed = (now - state.started_at).total_seconds()
    if elapsed <= limit:
        return None
    return Verdict(
        trigger="session_duration",
        reason=(
            f"Time budget: the session has run {elapsed:.0f} s, over its {limit:.0f} s budget "
            "(a budget, not a sign of a loop)"
        ),
    )


def error_rate_warning(state: SessionState, config: DetectionConfig) -> Warning | None:
    """When one more failure would take the window over the threshold."""
    threshold = config.error_rate_threshold
    if threshold is None:
        return None
    total = len(state.results)
    failed = total - sum(state.results)
    # What one more failure would make of the window (the oldest result drops out of it).
    after = state.results[1:] if total == state.window else state.results
    after_total, after_failed = len(after) + 1, len(after) - sum(after) + 1
    if (
        after_total >= config.error_rate_min_results
        and after_failed / after_total > threshold
        and failed / max(total, 1) <= threshold
    ):
        return (
            "error_rate",
            "error_rate",
            f"{failed} of the last {total} tool calls failed; one more failure is over the "
            f"{threshold:.0%} error budget",
            "Slow down and check why calls fail before trying more.",
        )
    return None


def duration_warning(state: SessionState, now: datetime, config: DetectionConfig) -> Warning | None:
    limit = config.session_duration_limit
    if limit is None or state.started_at is None:
        return None
    elapsed = (now - state.started_at).total_seconds()
    if limit * config.duration_warning_share <= elapsed <= limit:
        return (
            "duration",
            "session_duration",
            f"{elapsed:.0f} s of this session's {limit:.0f} s time budget used",
            "Wrap up: finish the current step and record where you are in "
            "claude-progress.md before the session is paused.",
        )
    return None


def shares(state: SessionState, config: DetectionConfig) -> tuple[float | None, float | None]:
    """(error rate, duration): how much of each budget is used, None for a budget not set."""
    threshold = config.error_rate_threshold
    total = len(state.results)
    failed = total - sum(state.results)
    rate = None
    if threshold is not None:
        # Failures in the window against the most it may hold and not be over the threshold
        # (counted over at least `error_rate_min_results`, as the rule counts).
        rate = failed / max(int(threshold * max(total, config.error_rate_min_results)), 1)
    limit = config.session_duration_limit
    time = None
    if limit is not None:
        last = state.last_event_at
        elapsed = (last - state.started_at).total_seconds() if last and state.started_at else 0.0
        time = max(elapsed, 0.0) / limit
    return rate, time
