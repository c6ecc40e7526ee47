"""Progress, the judge: a session is stuck when its work stops bringing anything new.

Every tool result is a (call, outcome) pair: the call's signature and its outcome's fingerprint
with volatile tokens masked (`fingerprints`). A pair never seen before in the session is
progress: a new call (a new file read or edited, a new command), or a known call with a new
outcome (failures going 5 -> 3, a lint error at another line, a log that grew). A pair seen
before is not. The pairs are remembered far beyond the loop rules' window (up to OUTCOMES,
least recently seen forgotten first), so a loop that comes back after a long detour is
recognised too. `no_progress_window` results in a row without progress stop the session,
however they are interleaved and whether they fail or succeed; failing alone never does.
"""

from __future__ import annotations

import hashlib

from .config import DetectionConfig
from .state import OUTCOMES, SessionState, Verdict, Warning


def observe(state: SessionState, signature: str, fingerprint: str, waiting: bool) -> bool:
    """Fold one result into the progress memory; True when it brought something new. Work that
    brings something new ends the streaks of replies and error events, so a reply or a
    transient error repeated between productive calls is not counted as a loop. A result the
    same as the one just before it (not a poll's) is counted against its pair: see `again`."""
    # 56 bits: a small int, and no collision to speak of among OUTCOMES pairs.
    key = int.from_bytes(
        hashlib.blake2b(f"{signature}\n{fingerprint}".encode(), digest_size=7).digest()
    )
    outcomes = state.outcomes
    seen = key in outcomes
    repeats = outcomes.pop(key, 0)
    if key == state.last_outcome and not waiting:
        repeats += 1
    outcomes[key] = repeats
    state.last_outcome = key
    if len(outcomes) > OUTCOMES:
        del outcomes[next(iter(outcomes))]
    if seen:
        state.stale += 1
        return False
    state.stale = 0
    state.message_streak = ("", 0)
    state.empty_replies = 0
    state.error_streak = ("", 0)
    return True


def again(state: SessionState) -> int:
    """How often in this session the last result's call returned that result right after
    itself: an agent that keeps coming back to re-run the same call, for the same answer, after
    whatever else it does in between."""
    return state.outcomes.get(state.last_outcome, 0)


def no_progress(state: SessionState, signature: str, config: DetectionConfig) -> Verdict | None:
    """The stop once `no_progress_window` results in a row brought nothing new (`signature`:
    the last result's call)."""
    if state.stale < config.no_progress_window:
        return None
    return Verdict(
        trigger="no_progress",
        reason=(
            f"No progress in the last {state.stale} tool results: every call returned what it "
            f"had returned before (the last: {state.label_of(signature)})"
        ),
    )


def warning(state: SessionState, config: DetectionConfig) -> Warning | None:
    if state.stale != config.no_progress_window - 1:
        return None
    return (
        f"no_progress:{state.events}",  # once per stall: progress ends it, another may come
        "no_progress",
        f"The last {state.stale} tool results brought nothing new",
        "Every call lately returned what it had returned before: step back, say what blocks "
        "you, or try a different approach; one more result with nothing new pauses this "
        "session for a human.",
    )


def share(state: SessionState, config: DetectionConfig) -> float:
    """How much of the no-progress window is used (1.0: the next stale result stops)."""
    return state.stale / max(config.no_progress_window - 1, 1)
