"""What the detector remembers about one session, and how it leaves memory and comes back.

A session's memory is made of plain tuples and dicts of strings and numbers where it can be:
the cyclic garbage collector untracks those (exact tuples only, not named ones), and a full
collection walks only what it tracks; its pause grows with a replica's sessions
(docs/performance.md). The named tuples below read what is stored as plain ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from yokeflow_agent.contract import RetryStats, Task, Trigger

from .config import DetectionConfig

T = TypeVar("T")
SEEN_IDS = 64
ROUNDS = 8
SIGNATURES = 512  # distinct calls (and error texts) a session remembers
OUTCOMES = 256  # distinct (call, outcome) pairs a session remembers, to tell progress
LONGEST_CYCLE = 5  # the longest cycle of calls the loop rule recognises
# The snapshot layout; 1 (unnumbered) lacks the progress memory, which then starts empty, and
# whether a finished call was a poll and when it finished (read as not a poll, long ago).
SNAPSHOT_VERSION = 2


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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

    def first(self, item: str) -> bool:
        """Add `item` unless it is here; whether it was not (one call a new event, not two)."""
        ids = self._ids
        if item in ids:
            return False
        ids[item] = None
        if len(ids) > self._size:
            del ids[next(iter(ids))]
        return True


def push(items: list[T], item: T, limit: int) -> None:
    """Append, forgetting the oldest past `limit` (a short list is smaller than a deque)."""
    items.append(item)
    if len(items) > limit:
        del items[0]


class Completed(NamedTuple):
    """A finished call: what the loop rules compare (all but `at`), and when it finished."""

    signature: str
    ok: bool
    exit_code: int | None
    fingerprint: str
    waiting: bool  # succeeded saying a job is still running (a poll)
    at: float  # event time, POSIX seconds


class Streak(NamedTuple):
    """Identical failures of one call in a row; the text is what an intervention quotes."""

    fingerprint: str
    repeats: int
    text: str


Call = tuple[str, bool, int | None, str, bool, float]  # a stored Completed
Run = tuple[str, int, str]  # a stored Streak


@dataclass(frozen=True)
class Verdict:
    """A rule's finding, before `evaluate` makes it an intervention."""

    trigger: Trigger
    reason: str
    excerpt: str = ""
    blocker_type: str | None = None


# (key, trigger, reason, advice): the warning one step before a rule stops the session.
Warning = tuple[str, Trigger, str, str]


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
    client: str | None = None
    task: Task | None = None
    intervened: str | None = None
    # Service bookkeeping: the stream sequence this epoch began at (events before it are stale),
    # the last one applied (a redelivery after a takeover is older), the session's partition.
    epoch_start: int = 1
    last_seq: int = 0
    partition: int | None = None
    # The latest event ids, to drop a redelivered or replayed event (the stream drops an event
    # published again within its duplicate window); bounded, so a long session stays small.
    seen_event_ids: RecentIds = field(default_factory=lambda: RecentIds(SEEN_IDS))
    pending_calls: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    calls_per_signature: dict[str, int] = field(default_factory=dict)
    streaks: dict[str, Run] = field(default_factory=dict)
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
    # The last max(2 * loop_length, 3 * LONGEST_CYCLE) finished calls, the last `window`
    # outcomes.
    completed: list[Call] = field(default_factory=list)
    results: list[bool] = field(default_factory=list)
    # Progress: the (call, outcome) pairs seen, as 56-bit hashes, least recently seen first
    # (bounded by OUTCOMES; untracked), each with how often it came right after itself; the last
    # pair; and how many results in a row brought nothing new.
    outcomes: dict[int, int] = field(default_factory=dict)
    last_outcome: int = 0
    stale: int = 0

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
            "v": SNAPSHOT_VERSION,
            "project_id": self.project_id,
            "session_id": self.session_id,
            "loop_length": self.loop_length,
            "window": self.window,
            "started_at": _iso(self.started_at),
            "last_event_at": _iso(self.last_event_at),
            "events": self.events,
            "workspace": self.workspace,
            "client": self.client,
            "task": self.task.model_dump() if self.task else None,
            "intervened": self.intervened,
            "epoch_start": self.epoch_start,
            "last_seq": self.last_seq,
            "seen_event_ids": list(self.seen_event_ids),
            "pending_calls": self.pending_calls,
            "labels": self.labels,
            "calls_per_signature": self.calls_per_signature,
            "streaks": {k: list(v) for k, v in self.streaks.items()},
            "failing": {k: [n, sorted(texts)] for k, (n, texts) in self.failing.items()},
            "error_streak": list(self.error_streak),
            "missing": self.missing,
            "messages_since_call": self.messages_since_call,
            "empty_replies": self.empty_replies,
            "message_streak": list(self.message_streak),
            "round_calls": self.round_calls,
            "round_open": self.round_open,
            "rounds": [sorted(r) for r in self.rounds],
            "unique_errors": sorted(self.unique_errors),
            "warned": sorted(self.warned),
            "completed": [list(c) for c in self.completed],
            "results": list(self.results),
            "outcomes": [[k, n] for k, n in self.outcomes.items()],
            "last_outcome": self.last_outcome,
            "stale": self.stale,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> SessionState:
        """A state from `snapshot`, of this version or an earlier one (a snapshot written before
        an upgrade restores with an empty progress memory: it can only see less as stuck)."""
        state = cls(
            project_id=data["project_id"],
            session_id=data["session_id"],
            loop_length=data["loop_length"],
            window=data["window"],
            started_at=_from_iso(data["started_at"]),
            last_event_at=_from_iso(data["last_event_at"]),
            events=data["events"],
            workspace=data["workspace"],
            client=data.get("client"),
            task=Task.model_validate(data["task"]) if data["task"] else None,
            intervened=data["intervened"],
            epoch_start=data["epoch_start"],
            last_seq=data.get("last_seq", 0),
            pending_calls=data["pending_calls"],
            labels=data["labels"],
            calls_per_signature=data["calls_per_signature"],
            streaks={k: (f, n, t) for k, (f, n, t) in data["streaks"].items()},
            failing={k: (n, tuple(t)) for k, (n, t) in data["failing"].items()},
            error_streak=(data["error_streak"][0], data["error_streak"][1]),
            missing=data["missing"],
            messages_since_call=data["messages_since_call"],
            empty_replies=data["empty_replies"],
            message_streak=(data["message_streak"][0], data["message_streak"][1]),
            round_calls=data["round_calls"],
            round_open=data["round_open"],
            unique_errors=dict.fromkeys(data["unique_errors"]),
            warned=dict.fromkeys(data["warned"]),
            outcomes={k: n for k, n in data.get("outcomes", [])},
            last_outcome=data.get("last_outcome", 0),
            stale=data.get("stale", 0),
        )
        for event_id in data["seen_event_ids"]:
            state.seen_event_ids.first(event_id)
        state.rounds = [frozenset(r) for r in data["rounds"]]
        state.completed = [
            (c[0], c[1], c[2], c[3], c[4], c[5])
            if len(c) > 4
            else (c[0], c[1], c[2], c[3], False, 0.0)
            for c in data["completed"]
        ]
        state.results = list(data["results"])
        return state

    def retry_stats(self) -> RetryStats:
        repeats = [n - 1 for n in self.calls_per_signature.values() if n > 1]
        return RetryStats(
            total_retries=sum(repeats),
            max_retries_on_single_command=max(repeats, default=0),
            unique_errors=len(self.unique_errors),
        )

    def streak(self, signature: str) -> Streak | None:
        found = self.streaks.get(signature)
        return Streak._make(found) if found is not None else None

    def label_of(self, signature: str) -> str:
        return self.labels.get(signature, "?")
