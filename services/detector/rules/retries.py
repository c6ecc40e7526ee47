"""Retries: the same failing call run again unchanged.

A call is judged before it runs (its result cannot change anything then): the attempt after
`max_retries` identical failures, or after `max_retries_rotating` failures whose text only
rotates among a few (timeouts, resets), is stopped. A different failure is progress and starts
the count again; a success of the call ends it.
"""

from __future__ import annotations

from .config import DetectionConfig
from .fingerprints import excerpt
from .state import SIGNATURES, Completed, SessionState, Verdict, Warning

# A failure whose text keeps changing among at most this many texts is the same failure.
ROTATING_TEXTS = 3
ADVICE = (
    "Do not run it again unchanged: read the error, fix its cause or take a different approach, "
    "or stop and say what blocks you. Running it again pauses this session for a human."
)


def record(state: SessionState, signature: str, ok: bool, fingerprint: str, text: str) -> None:
    """Fold one result of `signature` into its failure streak."""
    if ok:
        state.streaks.pop(signature, None)
        state.failing.pop(signature, None)
        return
    failures, texts = state.failing.get(signature, (0, ()))
    if fingerprint not in texts and len(texts) <= ROTATING_TEXTS:  # "more than N" past that
        texts = (*texts, fingerprint)
    state.failing[signature] = (failures + 1, texts)
    if len(state.unique_errors) < SIGNATURES:  # "at least N" past that
        state.unique_errors[fingerprint] = None
    streak = state.streak(signature)
    repeats = streak.repeats + 1 if streak is not None and streak.fingerprint == fingerprint else 1
    state.streaks[signature] = (fingerprint, repeats, excerpt(text))


def before_call(state: SessionState, signature: str, config: DetectionConfig) -> Verdict | None:
    """The call about to run, if it has already failed too often."""
    streak = state.streak(signature)
    if streak is not None and streak.repeats >= config.max_retries:
        return Verdict(
            trigger="retry_limit",
            reason=f"Command attempted {streak.repeats + 1} times: {state.label_of(signature)}",
            excerpt=excerpt(streak.text),
        )
    failures, texts = state.failing.get(signature, (0, ()))
    if failures >= config.max_retries_rotating and len(texts) <= ROTATING_TEXTS:
        return Verdict(
            trigger="retry_limit",
            reason=(
                f"Command failed {failures} times in a row with {len(texts)} different "
                f"errors, attempted again: {state.label_of(signature)}"
            ),
            excerpt=excerpt(streak.text if streak else ""),
        )
    return None


def warning(state: SessionState, last: Completed, config: DetectionConfig) -> Warning | None:
    """After a failure that one more attempt of the same call would be stopped for."""
    if last.ok:
        return None
    label = state.label_of(last.signature)
    streak = state.streak(last.signature)
    if streak is not None and streak.repeats == config.max_retries:
        return (
            f"retry:{last.signature}:{last.fingerprint}",
            "retry_limit",
            f"This call failed {streak.repeats} times with the same error: {label}",
            ADVICE,
        )
    failures, texts = state.failing.get(last.signature, (0, ()))
    if failures == config.max_retries_rotating and len(texts) <= ROTATING_TEXTS:
        return (
            f"rotating:{last.signature}",
            "retry_limit",
            f"This call failed {failures} times in a row: {label}",
            ADVICE,
        )
    return None
