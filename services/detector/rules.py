"""Detection rules: pure functions of an event and a session's state, no I/O.

The service and the offline `detect` command run exactly this code, and all time rules use
event time, so replaying a session's events always yields the same verdicts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from yokeflow_agent.contract import (
    AgentEvent,
    AgentMessage,
    ErrorEvent,
    Intervention,
    InterventionWarned,
    RetryStats,
    RiskKind,
    SessionEnded,
    SessionStarted,
    SessionSummary,
    Task,
    ToolCall,
    ToolResult,
    Trigger,
    intervention_id_for,
    warning_id_for,
)

from yokeflow_intervention.shared.settings import Settings

from .watchdog import WatchdogConfig

__all__ = [
    "BUILTIN_CRITICAL_PATTERNS",
    "DetectionConfig",
    "SessionState",
    "call_signature",
    "classify_critical",
    "evaluate",
    "failure_fingerprint",
    "foresee",
    "summarise",
]

# Checked in this order; the first blocker type whose pattern matches wins.
BUILTIN_CRITICAL_PATTERNS: dict[str, tuple[str, ...]] = {
    "prisma_schema_error": (
        r"prisma schema validation",
        r"error validating datasource",
        r"\bP1012\b",
        r'command "prisma" not found',
    ),
    "port_conflict": (
        r"EADDRINUSE",
        r"address already in use",
        r"port \d+ (?:is )?already in use",
        r"port is already allocated",
    ),
    "redis_unavailable": (
        r"ECONNREFUSED\s+\S*:6379\b",
        r"could not connect to redis",
        r"redis (?:is )?not running",
        r"redis connection (?:refused|failed)",
    ),
    "db_connection": (
        r"ECONNREFUSED\s+\S*:5432\b",
        r"\bP1001\b",
        r"can't reach database server",
        r"could not connect to server",
        r"connection to server at .* failed",
        r"database connection failed",
    ),
    "module_not_found": (
        r"ModuleNotFoundError",
        r"No module named",
        r"Cannot find module",
        r"ERR_MODULE_NOT_FOUND",
        r"Module not found",
    ),
    "missing_dependency": (r"command not found",),
}

SUGGESTED_RECOVERY = {
    "prisma_schema_error": "Fix the Prisma schema (run `prisma validate`) and regenerate the client.",
    "port_conflict": "Stop the process holding the port, or configure the app to use a free port.",
    "redis_unavailable": "Start Redis (redis-server) and check it answers PING.",
    "db_connection": "Start or restart PostgreSQL and check the connection settings.",
    "module_not_found": "Install the missing module into the project's environment.",
    "missing_dependency": "Install the missing command-line tool or add it to PATH.",
}

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T _]\d{2}(?::\d{2}:\d{2}|_\d{2}_\d{2})(?:[.,_]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")
_DURATION = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|s)\b")
_EXCERPT_LIMIT = 500
_FAILURE_TEXT_LIMIT = 4000
_ALTERNATION_LENGTH = 6
# A failure whose text keeps changing among at most this many texts is the same failure.
_ROTATING_TEXTS = 3
T = TypeVar("T")
_SEEN_IDS = 64
_ROUNDS = 8
_SIGNATURES = 512  # distinct calls (and error texts) a session remembers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class DetectionConfig:
    """The slice of Settings the rules read."""

    enabled: bool = True
    max_retries: int = 3
    detect_infrastructure_errors: bool = True
    loop_repeat_threshold: int = 4
    max_retries_rotating: int = 5
    monologue_limit: int = 8
    empty_reply_limit: int = 3
    repeated_message_limit: int = 3
    missing_dependency_repeats: int = 2
    signature_ignore_keys: frozenset[str] = frozenset(
        {"description", "task_progress", "explanation"}
    )
    error_rate_threshold: float = 0.15
    error_rate_window: int = 50
    error_rate_min_results: int = 20
    session_duration_limit: float = 600.0
    warn_before_stop: bool = True
    duration_warning_share: float = 0.8
    critical_patterns: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = ()
    auto_recovery_blockers: frozenset[str] = frozenset()
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionConfig:
        merged: dict[str, list[str]] = {k: list(v) for k, v in BUILTIN_CRITICAL_PATTERNS.items()}
        for blocker, extra in settings.critical_patterns.items():
            merged.setdefault(blocker, []).extend(extra)
        compiled = tuple(
            (blocker, tuple(re.compile(p, re.IGNORECASE) for p in patterns))
            for blocker, patterns in merged.items()
        )
        return cls(
            enabled=settings.enabled,
            max_retries=settings.max_retries,
            detect_infrastructure_errors=settings.detect_infrastructure_errors,
            loop_repeat_threshold=settings.loop_repeat_threshold,
            max_retries_rotating=settings.max_retries_rotating,
            monologue_limit=settings.monologue_limit,
            empty_reply_limit=settings.empty_reply_limit,
            repeated_message_limit=settings.repeated_message_limit,
            missing_dependency_repeats=settings.missing_dependency_repeats,
            signature_ignore_keys=frozenset(settings.signature_ignore_keys),
            error_rate_threshold=settings.error_rate_threshold,
            error_rate_window=settings.error_rate_window,
            error_rate_min_results=settings.error_rate_min_results,
            session_duration_limit=settings.session_duration_limit,
            warn_before_stop=settings.warn_before_stop,
            duration_warning_share=settings.duration_warning_share,
            critical_patterns=compiled,
            auto_recovery_blockers=frozenset(settings.auto_recovery_blockers),
            watchdog=WatchdogConfig.from_settings(settings),
        )


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def call_signature(
    tool: str | None, tool_input: dict[str, Any] | None, ignore: frozenset[str] = frozenset()
) -> str:
    """Same tool, same input (whitespace-insensitive, top-level `ignore` keys left out): same
    signature."""
    kept = {k: v for k, v in (tool_input or {}).items() if k not in ignore}
    canonical = json.dumps({"tool": tool, "input": _normalise(kept)}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def outcome_fingerprint(output: str) -> str:
    """What a successful call produced, volatile parts masked: the same successful call is a
    loop only when its outcome is the same too (polling a build whose output changes is not).
    The head and the tail count, so a growing log tail changes it."""
    head, tail = output[:2000], output[-2000:] if len(output) > 2000 else ""
    masked = failure_fingerprint(head + "\n" + tail)
    return hashlib.sha256(masked.encode()).hexdigest()[:16]


def failure_fingerprint(text: str) -> str:
    """The failure text with volatile parts (times, ids, durations) masked."""
    text = _TIMESTAMP.sub("<ts>", text)
    text = _UUID.sub("<uuid>", text)
    text = _HEX_RUN.sub("<hex>", text)
    text = _DURATION.sub("<dur>", text)
    return " ".join(text.split())


def classify_critical(text: str, config: DetectionConfig) -> str | None:
    for blocker, patterns in config.critical_patterns:
        if any(p.search(text) for p in patterns):
            return blocker
    return None


def _label(tool: str | None, tool_input: dict[str, Any] | None) -> str:
    tool_input = tool_input or {}
    command = tool_input.get("command")
    if isinstance(command, str):
        return " ".join(command.split())
    compact = json.dumps(tool_input, sort_keys=True, default=str)
    label = f"{tool or 'tool'} {compact}"
    return label if len(label) <= 120 else label[:117] + "..."


class RecentIds:
    """The last `size` ids added (a dict keeps their order, and looks them up)."""

    __slots__ = ("_ids", "_size")

    def __init__(self, size: int) -> None:
        self._ids: dict[str, None] = {}
        self._size = size

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def add(self, item: str) -> None:
        self._ids[item] = None
        if len(self._ids) > self._size:
            del self._ids[next(iter(self._ids))]


def _push(items: list[T], item: T, limit: int) -> None:
    """Append, forgetting the oldest past `limit` (a short list is smaller than a deque)."""
    items.append(item)
    if len(items) > limit:
        del items[0]


# A session's memory is made of plain tuples and dicts of strings and numbers where it can be:
# the cyclic garbage collector untracks those (exact tuples only, not named ones), and a full
# collection walks only what it tracks; its pause grows with a replica's sessions
# (docs/performance.md). The named tuples below read what is stored as plain ones.


class _Completed(NamedTuple):
    """A finished call, as the loop rule compares them."""

    signature: str
    ok: bool
    exit_code: int | None
    fingerprint: str


class _Streak(NamedTuple):
    """Identical failures of one call in a row; the text is what an intervention quotes."""

    fingerprint: str
    repeats: int
    text: str


_Call = tuple[str, bool, int | None, str]  # a stored _Completed
_Run = tuple[str, int, str]  # a stored _Streak


@dataclass(slots=True)
class SessionState:
    """What the detector remembers about one session (within one resume epoch)."""

    project_id: str
    session_id: str
    loop_length: int
    window: int
    started_at: datetime | None = None
    last_event_at: datetime | None = None
    events: int = 0
    workspace: str | None = None
    task: Task | None = None
    intervened: str | None = None
    # Service bookkeeping: the stream sequence this epoch began at (events before it are stale),
    # the last one applied (a redelivery after a takeover is older), the session's partition.
    epoch_start: int = 1
    last_seq: int = 0
    partition: int | None = None
    # The latest event ids, to drop a redelivered or replayed event (the stream drops an event
    # published again within its duplicate window); bounded, so a long session stays small.
    seen_event_ids: RecentIds = field(default_factory=lambda: RecentIds(_SEEN_IDS))
    pending_calls: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    calls_per_signature: dict[str, int] = field(default_factory=dict)
    streaks: dict[str, _Run] = field(default_factory=dict)
    # Per signature since its last success: failures in a row and their distinct texts.
    failing: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    # Identical error events in a row: (fingerprint, count).
    error_streak: tuple[str, int] = ("", 0)
    # How often each missing command was reported (its fingerprint).
    missing: dict[str, int] = field(default_factory=dict)
    # Agent text turns since the last tool call: how many, how many empty in a row, and the
    # same text in a row (fingerprint, count).
    messages_since_call: int = 0
    empty_replies: int = 0
    message_streak: tuple[str, int] = ("", 0)
    # Parallel rounds: calls announced before any of their results; the last rounds closed.
    round_calls: list[str] = field(default_factory=list)
    round_open: bool = False
    rounds: list[frozenset[str]] = field(default_factory=list)  # the last 8
    unique_errors: dict[str, None] = field(default_factory=dict)  # a set, untracked
    # The patterns this epoch was already warned of (a warning is given once).
    warned: dict[str, None] = field(default_factory=dict)  # a set, untracked
    # The last max(2 * loop_length, 6) finished calls, and the last `window` outcomes.
    completed: list[_Call] = field(default_factory=list)
    results: list[bool] = field(default_factory=list)

    @classmethod
    def new(cls, project_id: str, session_id: str, config: DetectionConfig) -> SessionState:
        return cls(
            project_id=project_id,
            session_id=session_id,
            loop_length=config.loop_repeat_threshold,
            window=config.error_rate_window,
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything the rules remember, as JSON-able data: a session evicted from memory is
        restored from it exactly (`from_snapshot`), without replaying its events."""
        return {
            "project_id": self.project_id, "session_id": self.session_id,
            "loop_length": self.loop_length, "window": self.window,
            "started_at": _iso(self.started_at), "last_event_at": _iso(self.last_event_at),
            "events": self.events, "workspace": self.workspace,
            "task": self.task.model_dump() if self.task else None,
            "intervened": self.intervened, "epoch_start": self.epoch_start,
            "last_seq": self.last_seq, "seen_event_ids": list(self.seen_event_ids),
            "pending_calls": self.pending_calls, "labels": self.labels,
            "calls_per_signature": self.calls_per_signature,
            "streaks": {k: list(v) for k, v in self.streaks.items()},
            "failing": {k: [n, sorted(texts)] for k, (n, texts) in self.failing.items()},
            "error_streak": list(self.error_streak), "missing": self.missing,
            "messages_since_call": self.messages_since_call, "empty_replies": self.empty_replies,
            "message_streak": list(self.message_streak), "round_calls": self.round_calls,
            "round_open": self.round_open, "rounds": [sorted(r) for r in self.rounds],
            "unique_errors": sorted(self.unique_errors), "warned": sorted(self.warned),
            "completed": [list(c) for c in self.completed],
            "results": list(self.results),
        }  # fmt: skip

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> SessionState:
        state = cls(
            project_id=data["project_id"], session_id=data["session_id"],
            loop_length=data["loop_length"], window=data["window"],
            started_at=_from_iso(data["started_at"]), last_event_at=_from_iso(data["last_event_at"]),
            events=data["events"], workspace=data["workspace"],
            task=Task.model_validate(data["task"]) if data["task"] else None,
            intervened=data["intervened"], epoch_start=data["epoch_start"],
            last_seq=data.get("last_seq", 0),
            pending_calls=data["pending_calls"], labels=data["labels"],
            calls_per_signature=data["calls_per_signature"],
            streaks={k: (f, n, t) for k, (f, n, t) in data["streaks"].items()},
            failing={k: (n, tuple(t)) for k, (n, t) in data["failing"].items()},
            error_streak=(data["error_streak"][0], data["error_streak"][1]), missing=data["missing"],
            messages_since_call=data["messages_since_call"], empty_replies=data["empty_replies"],
            message_streak=(data["message_streak"][0], data["message_streak"][1]),
            round_calls=data["round_calls"], round_open=data["round_open"],
            unique_errors=dict.fromkeys(data["unique_errors"]), warned=dict.fromkeys(data["warned"]),
        )  # fmt: skip
        for event_id in data["seen_event_ids"]:
            state.seen_event_ids.add(event_id)
        state.rounds = [frozenset(r) for r in data["rounds"]]
        state.completed = [(c[0], c[1], c[2], c[3]) for c in data["completed"]]
        state.results = list(data["results"])
        return state

    def retry_stats(self) -> RetryStats:
        repeats = [n - 1 for n in self.calls_per_signature.values() if n > 1]
        return RetryStats(
            total_retries=sum(repeats),
            max_retries_on_single_command=max(repeats, default=0),
            unique_errors=len(self.unique_errors),
        )


@dataclass(frozen=True)
class _Verdict:
    trigger: Trigger
    reason: str
    excerpt: str = ""
    blocker_type: str | None = None


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _EXCERPT_LIMIT else text[: _EXCERPT_LIMIT - 3] + "..."


def _on_tool_call(state: SessionState, event: ToolCall, config: DetectionConfig) -> _Verdict | None:
    signature = call_signature(event.tool, event.input, config.signature_ignore_keys)
    state.messages_since_call = 0
    if not state.round_open:  # results came in since the last call: a new round starts
        state.round_calls, state.round_open = [], True
    state.round_calls.append(signature)
    if event.call_id is not None:
        state.pending_calls[event.call_id] = signature
        if len(state.pending_calls) > _SIGNATURES:  # calls whose results never came
            del state.pending_calls[next(iter(state.pending_calls))]
    # Counts per call, most recently used last; past _SIGNATURES distinct calls the least
    # recently used is forgotten (a long session's memory stays bounded; retry_stats then
    # count the recent calls).
    count = state.calls_per_signature.pop(signature, 0) + 1
    state.calls_per_signature[signature] = count
    state.labels[signature] = state.labels.pop(signature, "") or _label(event.tool, event.input)
    if len(state.calls_per_signature) > _SIGNATURES:
        oldest = next(iter(state.calls_per_signature))
        del state.calls_per_signature[oldest]
        state.labels.pop(oldest, None)
    streak = _streak(state, signature)
    if streak is not None and streak.repeats >= config.max_retries:
        return _Verdict(
            trigger="retry_limit",
            reason=f"Command attempted {streak.repeats + 1} times: {state.labels[signature]}",
            excerpt=_excerpt(streak.text),
        )
    failures, texts = state.failing.get(signature, (0, ()))
    if failures >= config.max_retries_rotating and len(texts) <= _ROTATING_TEXTS:
        return _Verdict(
            trigger="retry_limit",
            reason=(
                f"Command failed {failures} times in a row with {len(texts)} different "
                f"errors, attempted again: {state.labels[signature]}"
            ),
            excerpt=_excerpt(streak.text if streak else ""),
        )
    return None


def _critical(state: SessionState, text: str, config: DetectionConfig) -> _Verdict | None:
    if not config.detect_infrastructure_errors:
        return None
    blocker = classify_critical(text, config)
    if blocker is None:
        return None
    if blocker == "missing_dependency":
        # A typo is not a blocker: the same command must be missing again.
        key = failure_fingerprint(_excerpt(text))
        state.missing[key] = state.missing.get(key, 0) + 1
        if state.missing[key] < config.missing_dependency_repeats:
            return None
    return _Verdict(
        trigger="critical_error",
        reason=f"Critical infrastructure error ({blocker}): {_excerpt(text).splitlines()[0]}",
        excerpt=_excerpt(text),
        blocker_type=blocker,
    )


def _streak(state: SessionState, signature: str) -> _Streak | None:
    found = state.streaks.get(signature)
    return _Streak._make(found) if found is not None else None


def _label_of(state: SessionState, call: _Call) -> str:
    return state.labels.get(_Completed._make(call).signature, "?")


def _is_loop(state: SessionState, config: DetectionConfig) -> str | None:
    calls = state.completed  # compared as stored; named only for the reason's label
    n = config.loop_repeat_threshold
    if len(calls) >= n and len(set(calls[-n:])) == 1:
        return f"Same call repeated {n} times with the same outcome: {_label_of(state, calls[-1])}"
    # A loop that comes back after a short detour: the same call with the same outcome at
    # least n + 2 times among the last 2n calls (an edit-and-test cycle reaches only n).
    recent = calls[-2 * n :]
    if recent and recent.count(recent[-1]) >= n + 2:
        return (f"Same call repeated {recent.count(recent[-1])} times with the same outcome "
                f"among the last {len(recent)} calls: {_label_of(state, recent[-1])}")  # fmt: skip
    if len(calls) >= _ALTERNATION_LENGTH:
        tail = calls[-_ALTERNATION_LENGTH:]
        a, b = tail[0], tail[1]
        if a != b and all(c == (a if i % 2 == 0 else b) for i, c in enumerate(tail)):
            return (
                "Alternating between two calls without progress: "
                f"{_label_of(state, a)} / {_label_of(state, b)}"
            )
    return None


def _close_round(state: SessionState, config: DetectionConfig) -> str | None:
    """At a round's first result: the same set of parallel calls, round after round, is a loop."""
    if not state.round_open:
        return None
    state.round_open = False
    if len(state.round_calls) < 2:
        return None
    _push(state.rounds, frozenset(state.round_calls), _ROUNDS)
    n = config.loop_repeat_threshold
    last = list(state.rounds)[-n:]
    if len(last) == n and len(set(last)) == 1:
        labels = ", ".join(sorted(state.labels.get(s, "?") for s in last[0]))
        return f"The same {len(last[0])} parallel calls repeated {n} rounds in a row: {labels}"
    return None


def _on_tool_result(
    state: SessionState, event: ToolResult, config: DetectionConfig
) -> _Verdict | None:
    signature = None
    if event.call_id is not None:
        signature = state.pending_calls.pop(event.call_id, None)
    if signature is None:
        signature = call_signature(event.tool, None, config.signature_ignore_keys)
        state.labels.setdefault(signature, event.tool or "tool")
    round_verdict = _close_round(state, config)
    result = event.result
    text = result.failure_text[:_FAILURE_TEXT_LIMIT]
    fingerprint = failure_fingerprint(text) if not result.ok else outcome_fingerprint(result.output)
    if result.ok:
        state.streaks.pop(signature, None)
        state.failing.pop(signature, None)
    else:
        failures, texts = state.failing.get(signature, (0, ()))
        if fingerprint not in texts and len(texts) <= _ROTATING_TEXTS:  # "more than N" past
            texts = (*texts, fingerprint)
        state.failing[signature] = (failures + 1, texts)
        if len(state.unique_errors) < _SIGNATURES:  # "at least N" past that
            state.unique_errors[fingerprint] = None
        streak = _streak(state, signature)
        repeats = (
            streak.repeats + 1 if streak is not None and streak.fingerprint == fingerprint else 1
        )
        state.streaks[signature] = (fingerprint, repeats, _excerpt(text))
    _push(state.completed, (signature, result.ok, result.exit_code, fingerprint),
          max(2 * state.loop_length, _ALTERNATION_LENGTH))  # fmt: skip
    _push(state.results, result.ok, state.window)

    if not result.ok:
        verdict = _critical(state, text, config)
        if verdict is not None:
            return verdict
    loop = _is_loop(state, config) or round_verdict
    if loop is not None:
        return _Verdict(trigger="loop_pattern", reason=loop, excerpt=_excerpt(text))
    total = len(state.results)
    failed = total - sum(state.results)
    if total >= config.error_rate_min_results and failed / total > config.error_rate_threshold:
        return _Verdict(
            trigger="error_rate",
            reason=(
                f"Error rate {failed / total:.1%} over the last {total} tool results "
                f"(threshold {config.error_rate_threshold:.0%})"
            ),
            excerpt=_excerpt(text),
        )
    return None


def _on_message(
    state: SessionState, event: AgentMessage, config: DetectionConfig
) -> _Verdict | None:
    """Turns of text with no work: a monologue, empty replies, the same text again."""
    text = event.text.strip()
    state.messages_since_call += 1
    state.empty_replies = state.empty_replies + 1 if not text else 0
    fingerprint = failure_fingerprint(text[:_FAILURE_TEXT_LIMIT]) if text else ""
    last, count = state.message_streak
    count = count + 1 if text and fingerprint == last else (1 if text else 0)
    state.message_streak = (fingerprint, count)
    reason = None
    if state.empty_replies >= config.empty_reply_limit:
        reason = f"{state.empty_replies} empty replies in a row"
    elif count >= config.repeated_message_limit:
        reason = f"The same reply {count} times in a row: {_excerpt(text).splitlines()[0]}"
    elif state.messages_since_call >= config.monologue_limit:
        reason = f"{state.messages_since_call} replies in a row without a tool call"
    return _Verdict("loop_pattern", reason, _excerpt(text)) if reason else None


def _repeated_error(
    state: SessionState, event: ErrorEvent, config: DetectionConfig
) -> _Verdict | None:
    """The same error event again and again (a context-window error, say) is a loop."""
    fingerprint = failure_fingerprint(event.message[:_FAILURE_TEXT_LIMIT])
    last, count = state.error_streak
    count = count + 1 if fingerprint == last else 1
    state.error_streak = (fingerprint, count)
    if len(state.unique_errors) < _SIGNATURES:
        state.unique_errors[fingerprint] = None
    if count >= config.loop_repeat_threshold:
        return _Verdict(
            trigger="loop_pattern",
            reason=f"The same error {count} times in a row: {_excerpt(event.message).splitlines()[0] if event.message.strip() else '(empty)'}",
            excerpt=_excerpt(event.message),
        )
    return None


def _on_duration(
    state: SessionState, event: AgentEvent, config: DetectionConfig
) -> _Verdict | None:
    if state.started_at is None:
        return None
    elapsed = (event.ts - state.started_at).total_seconds()
    if elapsed > config.session_duration_limit:
        return _Verdict(
            trigger="session_duration",
            reason=(
                f"Session running for {elapsed:.0f} s, over its "
                f"{config.session_duration_limit:.0f} s budget"
            ),
        )
    return None


def evaluate(
    state: SessionState, event: AgentEvent, config: DetectionConfig
) -> Intervention | None:
    """Fold one event into the state; return the intervention it triggers, if any.

    At most one intervention per session: once intervened, events are ignored until the
    service starts a new epoch for the session (after a resume).
    """
    if state.intervened is not None or event.event_id in state.seen_event_ids:
        return None
    state.seen_event_ids.add(event.event_id)
    state.events += 1
    state.last_event_at = max(event.ts, state.last_event_at or event.ts)
    if state.started_at is None or isinstance(event, SessionStarted):
        state.started_at = event.ts
    if event.task is not None:
        state.task = event.task
    if isinstance(event, SessionStarted) and event.workspace:
        state.workspace = event.workspace
    if not config.enabled:
        return None

    verdict: _Verdict | None = None
    if isinstance(event, ToolCall):
        verdict = _on_tool_call(state, event, config)
    elif isinstance(event, ToolResult):
        verdict = _on_tool_result(state, event, config)
    elif isinstance(event, ErrorEvent):
        verdict = _critical(state, event.message, config) or _repeated_error(state, event, config)
    elif isinstance(event, AgentMessage):
        verdict = _on_message(state, event, config)
    if verdict is None and not isinstance(event, SessionEnded):
        verdict = _on_duration(state, event, config)
    if verdict is None:
        return None

    intervention = Intervention(
        intervention_id=intervention_id_for(event.project_id, event.session_id, event.event_id),
        project_id=event.project_id,
        session_id=event.session_id,
        trigger=verdict.trigger,
        blocker_type=verdict.blocker_type,
        reason=verdict.reason,
        error_excerpt=verdict.excerpt,
        event_seq=event.seq,
        event_id=event.event_id,
        retry_stats=state.retry_stats(),
        task=state.task,
        detected_at=event.ts,
        can_auto_resume=verdict.blocker_type in config.auto_recovery_blockers,
        suggested_recovery=SUGGESTED_RECOVERY.get(verdict.blocker_type or ""),
        workspace=state.workspace,
    )
    state.intervened = intervention.intervention_id
    return intervention


_RETRY_ADVICE = (
    "Do not run it again unchanged: read the error, fix its cause or take a different approach, "
    "or stop and say what blocks you. Running it again pauses this session for a human."
)
_LOOP_ADVICE = (
    "Its result will not change: use what it returned, or try something different. Doing it "
    "again pauses this session for a human."
)


def _warning_of(
    state: SessionState, event: AgentEvent, config: DetectionConfig
) -> tuple[str, Trigger, str, str] | None:
    """(key, trigger, reason, advice) when one more step of the same kind stops the session."""
    if isinstance(event, ToolResult) and state.completed:
        last = _Completed._make(state.completed[-1])
        label = state.labels.get(last.signature, "?")
        streak = _streak(state, last.signature)
        if not last.ok and streak is not None and streak.repeats == config.max_retries:
            return (f"retry:{last.signature}:{last.fingerprint}", "retry_limit",
                    f"This call failed {streak.repeats} times with the same error: {label}",
                    _RETRY_ADVICE)  # fmt: skip
        failures, texts = state.failing.get(last.signature, (0, ()))
        if (
            not last.ok
            and failures == config.max_retries_rotating
            and len(texts) <= _ROTATING_TEXTS
        ):
            return (f"rotating:{last.signature}", "retry_limit",
                    f"This call failed {failures} times in a row: {label}", _RETRY_ADVICE)  # fmt: skip
        n = config.loop_repeat_threshold
        tail = list(state.completed)[-(n - 1) :]
        if len(tail) == n - 1 and len(set(tail)) == 1:
            return (f"loop:{last.signature}:{last.fingerprint}", "loop_pattern",
                    f"The same call returned the same result {n - 1} times: {label}",
                    _LOOP_ADVICE)  # fmt: skip
        total = len(state.results)
        failed = total - sum(state.results)
        # What one more failure would make of the window (the oldest result drops out of it).
        after = list(state.results)[1:] if total == state.window else list(state.results)
        after_total, after_failed = len(after) + 1, len(after) - sum(after) + 1
        if (after_total >= config.error_rate_min_results
                and after_failed / after_total > config.error_rate_threshold
                and failed / max(total, 1) <= config.error_rate_threshold):  # fmt: skip
            return ("error_rate", "error_rate",
                    f"{failed} of the last {total} tool calls failed; one more failure is over "
                    f"the {config.error_rate_threshold:.0%} limit",
                    "Slow down and check why calls fail before trying more.")  # fmt: skip
    if isinstance(event, ErrorEvent):
        fingerprint, count = state.error_streak
        if count == config.loop_repeat_threshold - 1:
            return (f"error:{fingerprint}", "loop_pattern",
                    f"The same error {count} times in a row: {_excerpt(event.message)[:200]}",
                    "Change what leads to this error; the same error once more pauses this "
                    "session for a human.")  # fmt: skip
    if isinstance(event, AgentMessage):
        if state.empty_replies == config.empty_reply_limit - 1:
            return ("empty", "loop_pattern", f"{state.empty_replies} empty replies in a row",
                    "Say what you are doing, or use a tool; another empty reply pauses this "
                    "session for a human.")  # fmt: skip
        fingerprint, count = state.message_streak
        if count == config.repeated_message_limit - 1:
            return (f"message:{fingerprint}", "loop_pattern",
                    f"The same reply {count} times in a row",
                    "Do something different; the same reply once more pauses this session for "
                    "a human.")  # fmt: skip
        if state.messages_since_call == config.monologue_limit - 1:
            return ("monologue", "loop_pattern",
                    f"{state.messages_since_call} replies in a row without a tool call",
                    "Act (use a tool) or finish; another reply without one pauses this session "
                    "for a human.")  # fmt: skip
    if state.started_at is not None and not isinstance(event, SessionEnded):
        elapsed = (event.ts - state.started_at).total_seconds()
        budget = config.session_duration_limit
        if budget * config.duration_warning_share <= elapsed <= budget:
            return ("duration", "session_duration",
                    f"{elapsed:.0f} s of this session's {budget:.0f} s budget used",
                    "Wrap up: finish the current step and record where you are in "
                    "claude-progress.md before the session is paused.")  # fmt: skip
    return None


def foresee(
    state: SessionState, event: AgentEvent, config: DetectionConfig
) -> InterventionWarned | None:
    """After `evaluate` let `event` pass: the warning it earns when one more step of the same
    kind would stop the session, once per pattern per epoch. Pure, like `evaluate`."""
    if not (config.enabled and config.warn_before_stop) or state.intervened is not None:
        return None
    found = _warning_of(state, event, config)
    if found is None or found[0] in state.warned:
        return None
    key, trigger, reason, advice = found
    state.warned[key] = None
    return InterventionWarned(
        warning_id=warning_id_for(event.project_id, event.session_id, event.event_id),
        project_id=event.project_id,
        session_id=event.session_id,
        trigger=trigger,
        reason=reason,
        advice=advice,
        event_seq=event.seq,
        event_id=event.event_id,
        task=state.task,
        detected_at=event.ts,
    )


def summarise(state: SessionState, config: DetectionConfig, ended: bool = False) -> SessionSummary:
    """The session's live risk signals against the limits that would stop it, for the fleet
    view. Pure; each share is 1.0 when the next step of its kind stops the session."""
    streak = max((_Streak._make(s).repeats for s in state.streaks.values()), default=0)
    total = len(state.results)
    failed = total - sum(state.results)
    last = state.last_event_at
    elapsed = (last - state.started_at).total_seconds() if last and state.started_at else 0.0
    threshold = config.error_rate_threshold
    shares: dict[RiskKind, float] = {
        "retry_limit": streak / config.max_retries if config.max_retries else 0.0,
        # Failures in the window against the most it may hold and not be over the threshold
        # (counted over at least `error_rate_min_results`, as the rule counts).
        "error_rate": failed / max(int(threshold * max(total, config.error_rate_min_results)), 1),
        "session_duration": max(elapsed, 0.0) / config.session_duration_limit
        if config.session_duration_limit
        else 0.0,
    }
    nearest = max(shares, key=lambda k: shares[k])
    risk = shares[nearest]
    return SessionSummary(
        project_id=state.project_id,
        session_id=state.session_id,
        state="ended" if ended else "stopped" if state.intervened else "running",
        intervention_id=state.intervened,
        task=state.task,
        started_at=state.started_at,
        last_event_at=last,
        events=state.events,
        retry_streak=streak,
        max_retries=config.max_retries,
        error_rate=round(failed / total, 4) if total else 0.0,
        results=total,
        error_rate_threshold=threshold,
        error_rate_min_results=config.error_rate_min_results,
        elapsed_s=round(max(elapsed, 0.0), 3),
        duration_limit_s=config.session_duration_limit,
        warnings=sorted({key.split(":", 1)[0] for key in state.warned}),
        shares={kind: round(share, 4) for kind, share in shares.items()},
        risk=round(risk, 4),
        nearest=nearest if risk > 0 else None,
    )
