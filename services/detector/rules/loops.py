"""Loops: the same calls with the same outcomes again, in a row, in a cycle, or in parallel
rounds; and the same error event again.

Calls are compared by signature, success, exit code and outcome fingerprint, so a call whose
outcome changes (a build polled while it runs) is never part of a loop.
"""

from __future__ import annotations

from operator import itemgetter

from yokeflow_agent.contract import ErrorEvent

from . import progress
from .config import DetectionConfig
from .fingerprints import FAILURE_TEXT_LIMIT, excerpt, failure_fingerprint, first_line
from .state import (
    LONGEST_CYCLE,
    ROUNDS,
    SIGNATURES,
    Call,
    Completed,
    SessionState,
    Verdict,
    Warning,
    push,
)

# Cycles of 2 to LONGEST_CYCLE calls are stopped once they have gone round this many times.
CYCLE_TURNS = 3
ADVICE = (
    "Its result will not change: use what it returned, or try something different. Doing it "
    "again pauses this session for a human."
)


def remembered(config: DetectionConfig) -> int:
    """How many finished calls the loop rules look back over."""
    return max(2 * config.loop_repeat_threshold, CYCLE_TURNS * LONGEST_CYCLE)


# Polls that return what they returned before (a job still under way) are not a loop while they
# number fewer than 2 * loop_repeat_threshold (an agent checks a background job a few times in
# the seconds after starting it), or while they are paced at least this far apart on average (an
# agent told to check every few minutes); `no_progress` still counts them.
POLL_GRACE_S = 60.0


def _label(state: SessionState, call: Call) -> str:
    return state.label_of(Completed._make(call).signature)


# What makes two finished calls the same: the call and its outcome (whether it was a poll
# follows from the outcome; when it finished does not count). A C callable, not a function: the
# loop rules compare the last calls on every result.
_same = itemgetter(0, 1, 2, 3)


_signature = itemgetter(0)


def _recurs(calls: list[Call], n: int) -> bool:
    """Whether the last call, with its outcome, is among the calls before it that a run, a
    repeat among the last 2n or a cycle is read from (scans in C, of the signatures first).
    Most results are not: none of those rules can then find anything, whatever n >= 3 is."""
    if n < 3:
        return True
    last = calls[-1]
    window = calls[-max(2 * n, LONGEST_CYCLE + 1) : -1]
    return last[0] in map(_signature, window) and _same(last) in map(_same, window)


def _polling(calls: list[Call], config: DetectionConfig) -> bool:
    """Whether these repeats are polls of a job under way still within their grace: fewer than
    2 * loop_repeat_threshold, or paced (POLL_GRACE_S or more apart on average)."""
    if not all(Completed._make(c).waiting for c in calls):
        return False
    first, last = Completed._make(calls[0]), Completed._make(calls[-1])
    paced = last.at - first.at >= POLL_GRACE_S * (len(calls) - 1)
    return len(calls) < 2 * config.loop_repeat_threshold or paced


def _cycle(calls: list[Call], config: DetectionConfig, short: int = 0) -> int | None:
    """The period of a cycle of 2 to LONGEST_CYCLE distinct steps that the last calls went
    round CYCLE_TURNS times (`short` calls less: to warn of it), if any."""
    for period in range(2, LONGEST_CYCLE + 1):
        span = CYCLE_TURNS * period - short
        if len(calls) < span:
            break
        if _same(calls[-1]) != _same(calls[-1 - period]):  # the usual case, found at once
            continue
        tail = list(map(_same, calls[-span:]))
        if len(set(tail[:period])) < 2:
            continue
        periodic = all(tail[i] == tail[i - period] for i in range(period, len(tail)))
        if periodic and not _polling(calls[-span:], config):
            return period
    return None


def repeated_calls(state: SessionState, config: DetectionConfig) -> str | None:
    """The reason the last finished calls are a loop, if they are."""
    calls = state.completed
    if not calls:
        return None
    n = config.loop_repeat_threshold
    recurs = _recurs(calls, n)
    if recurs:
        last = _same(calls[-1])
        run = next((i for i, c in enumerate(reversed(calls)) if _same(c) != last), len(calls))
        if run >= n and not _polling(calls[-run:], config):
            return (
                f"Same call repeated {run} times with the same outcome: {_label(state, calls[-1])}"
            )
        # A loop that comes back after a short detour: the same call with the same outcome at
        # least n + 2 times among the last 2n calls (an edit-and-test cycle reaches only n).
        matches = [c for c in calls[-2 * n :] if _same(c) == last]
        if len(matches) >= n + 2 and not _polling(matches, config):
            return (
                f"Same call repeated {len(matches)} times with the same outcome "
                f"among the last {len(calls[-2 * n :])} calls: {_label(state, calls[-1])}"
            )
    # A loop that comes back after a detour longer than any window: the call returned the same
    # result right after itself n times in the session, coming back to it after other work.
    if progress.again(state) >= n:
        return (
            f"Same call returned the same result right after itself {progress.again(state)} "
            f"times in this session, coming back to it after other work: "
            f"{_label(state, calls[-1])}"
        )
    period = _cycle(calls, config) if recurs else None
    if period == 2:
        return (
            "Alternating between two calls without progress: "
            f"{_label(state, calls[-2])} / {_label(state, calls[-1])}"
        )
    if period is not None:
        steps = " / ".join(_label(state, c) for c in calls[-period:])
        return (
            f"A cycle of {period} calls repeated {CYCLE_TURNS} times with the same outcomes: "
            f"{steps}"
        )
    return None


def close_round(state: SessionState, config: DetectionConfig) -> str | None:
    """At a round's first result: the same set of parallel calls, round after round, is a loop."""
    if not state.round_open:
        return None
    state.round_open = False
    if len(state.round_calls) < 2:
        return None
    push(state.rounds, frozenset(state.round_calls), ROUNDS)
    n = config.loop_repeat_threshold
    last = list(state.rounds)[-n:]
    if len(last) == n and len(set(last)) == 1:
        labels = ", ".join(sorted(state.label_of(s) for s in last[0]))
        return f"The same {len(last[0])} parallel calls repeated {n} rounds in a row: {labels}"
    return None


def repeated_error(
    state: SessionState, event: ErrorEvent, config: DetectionConfig
) -> Verdict | None:
    """The same error event again and again (a context-window error, say) with no progress in
    between is a loop; a result that brings progress ends the streak (`progress.observe`)."""
    fingerprint = failure_fingerprint(event.message[:FAILURE_TEXT_LIMIT])
    last, count = state.error_streak
    count = count + 1 if fingerprint == last else 1
    state.error_streak = (fingerprint, count)
    if len(state.unique_errors) < SIGNATURES:
        state.unique_errors[fingerprint] = None
    if count >= config.loop_repeat_threshold:
        return Verdict(
            trigger="loop_pattern",
            reason=f"The same error {count} times in a row: {first_line(event.message)}",
            excerpt=excerpt(event.message),
        )
    return None


def result_warning(state: SessionState, last: Completed, config: DetectionConfig) -> Warning | None:
    """After a result that one more identical one would make a loop of."""
    n = config.loop_repeat_threshold
    recurs = _recurs(state.completed, n)
    tail = state.completed[-(n - 1) :] if recurs else []
    if recurs and len(tail) == n - 1 and len(set(map(_same, tail))) == 1:
        return (
            f"loop:{last.signature}:{last.fingerprint}",
            "loop_pattern",
            f"The same call returned the same result {n - 1} times: "
            f"{state.label_of(last.signature)}",
            ADVICE,
        )
    period = _cycle(state.completed, config, short=1) if recurs else None
    if period is not None:
        return (
            f"cycle:{period}:{last.signature}:{last.fingerprint}",
            "loop_pattern",
            f"These {period} calls went round with the same results "
            f"{CYCLE_TURNS - 1} times: "
            + " / ".join(_label(state, c) for c in state.completed[-period:]),
            "Their results will not change: use what they returned, or try something "
            "different. Going round once more pauses this session for a human.",
        )
    if progress.again(state) == n - 1:
        return (
            f"again:{last.signature}:{last.fingerprint}",
            "loop_pattern",
            f"This call returned the same result right after itself {n - 1} times in this "
            f"session: {state.label_of(last.signature)}",
            ADVICE,
        )
    return None


def error_warning(
    state: SessionState, event: ErrorEvent, config: DetectionConfig
) -> Warning | None:
    fingerprint, count = state.error_streak
    if count == config.loop_repeat_threshold - 1:
        return (
            f"error:{fingerprint}",
            "loop_pattern",
            f"The same error {count} times in a row: {excerpt(event.message)[:200]}",
            "Change what leads to this error; the same error once more pauses this session "
            "for a human.",
        )
    return None
