"""The watchdog: when an open session's silence becomes a stop. Pure: no I/O, no clock of its own.

The rules move only when an event arrives, so a session that goes quiet is invisible to them:
a tool call that never returns (a dev server started in the foreground, a command waiting on
stdin) or a model turn that never comes. The watchdog keeps one deadline per open session
(started, not ended) and stops the session when the clock passes it.

The clock is the bus's: the time the stream stored each event, never the agent's `ts` (an
agent's clock may be wrong, or lie). The service reads it from the message metadata of every
event and of the clock ticks it publishes into each partition (`Subjects.clock`); a replay
reads it from the file (each event's `ts`, and `clock` lines), so both judge alike.

Each session's watch is one plain tuple (`Watch` reads it), small and untracked by the garbage
collector: the deadline, what it stops as, the last event, and the calls still open.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from yokeflow_agent.contract import (
    AgentEvent,
    Intervention,
    ToolCall,
    ToolResult,
    Trigger,
    Waiting,
    intervention_id_for,
)

if TYPE_CHECKING:
    from yokeflow_intervention.shared.settings import Settings

__all__ = [
    "KeptDict",
    "Watch",
    "WatchdogConfig",
    "Watches",
    "call_label",
    "expire",
    "observe",
    "watch_from_json",
    "watch_json",
]

_LABEL_LIMIT = 200
K = TypeVar("K")
V = TypeVar("V")

SUGGESTIONS: dict[str, str] = {
    "tool_call_timeout": (
        "Stop the hung command (a server started in the foreground, a prompt waiting on stdin) "
        "and run it in the background or with a timeout. A call known to run this long gets "
        "its own limit in tool_call_timeouts."
    ),
    "silence": (
        "Check the agent's process and its connection to its model, then resume the session."
    ),
    "waiting": (
        "Answer it where the agent runs (its terminal or its app); the session goes on by "
        "itself. It is not paused."
    ),
}


@dataclass(frozen=True)
class WatchdogConfig:
    """The watchdog's limits, in seconds of the bus's clock; 0 turns a limit off."""

    tool_call_timeout: float = 900.0
    silence_timeout: float = 300.0
    waiting_notification_after: float = 120.0
    # (pattern searched in "<tool> <command>", that call's limit); the first match wins.
    tool_call_timeouts: tuple[tuple[re.Pattern[str], float], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchdogConfig:
        return cls(
            tool_call_timeout=settings.tool_call_timeout,
            silence_timeout=settings.silence_timeout,
            waiting_notification_after=settings.waiting_notification_after,
            tool_call_timeouts=tuple(
                (re.compile(pattern), limit)
                for pattern, limit in settings.tool_call_timeouts.items()
            ),
        )

    def call_limit(self, label: str) -> float:
        for pattern, limit in self.tool_call_timeouts:
            if pattern.search(label):
                return limit
        return self.tool_call_timeout


def call_label(tool: str, tool_input: dict[str, Any]) -> str:
    """ "<tool> <command>" (or its input as JSON): what an override is matched against and what
    a stop names."""
    command = tool_input.get("command")
    detail = (
        command if isinstance(command, str) else json.dumps(tool_input, sort_keys=True, default=str)
    )
    label = " ".join(f"{tool} {detail}".split())
    return label if len(label) <= _LABEL_LIMIT else label[: _LABEL_LIMIT - 3] + "..."


OpenCall = tuple[str, float, str, float]  # (call key, opened at, label, limit)
# (since, kind, prompt, event id, event seq, notified, tool or ""), or () when not waiting.
Wait = tuple[Any, ...]


class Watch(NamedTuple):
    """How a stored watch (a plain tuple) reads."""

    deadline: float  # bus time (epoch seconds) at which the session is stopped; inf: never
    trigger: str  # "tool_call_timeout", "silence", or "" when no limit applies
    last_at: float  # when the last event that counts was stored
    stream_seq: int  # the stream sequence of the last event applied (heartbeats too)
    event_seq: int  # the agent's seq of the last event that counts
    event_id: str
    last: str  # what that event was, for the reason
    calls: tuple[OpenCall, ...]
    waiting: Wait  # what a person is asked, while they are


def _arm(
    last_at: float,
    stream_seq: int,
    event_seq: int,
    event_id: str,
    last: str,
    calls: tuple[OpenCall, ...],
    config: WatchdogConfig,
    waiting: Wait = (),
    turn_over: bool = False,
) -> tuple[Any, ...]:
    """The watch with its deadline: while a person is asked, only the notice that they have
    not answered (no stop: silence is expected); else the open call due first, or the
    silence, unless the agent's turn is over (its reply said, no call open): then it is its
    user's turn, and a quiet user is no stuck session (the client's own idle notice, a
    `waiting` event, tells a person)."""
    deadline, trigger = math.inf, ""
    if turn_over:
        pass
    elif waiting:
        if not waiting[5] and config.waiting_notification_after > 0:
            deadline, trigger = waiting[0] + config.waiting_notification_after, "waiting"
    elif calls:
        for _, opened, _, limit in calls:  # the earliest limit (a loop: no list an event)
            if limit > 0 and opened + limit < deadline:
                deadline, trigger = opened + limit, "tool_call_timeout"
    elif config.silence_timeout > 0:
        deadline, trigger = last_at + config.silence_timeout, "silence"
    return (deadline, trigger, last_at, stream_seq, event_seq, event_id, last, calls, waiting)


def _close(calls: tuple[OpenCall, ...], event: ToolResult) -> tuple[OpenCall, ...]:
    """The open calls without the one `event` answers: by call id, or else the oldest of its
    tool, or else the oldest."""
    if not calls:
        return calls
    if calls[0][0] == event.call_id:  # the usual answer: the one call open
        return calls[1:]
    index = next((i for i, call in enumerate(calls) if call[0] == event.call_id), None)
    if index is None and event.call_id is None:
        tool = f"{event.tool} " if event.tool else None
        index = next((i for i, call in enumerate(calls) if tool and call[2].startswith(tool)), 0)
    return calls if index is None else calls[:index] + calls[index + 1 :]


def _denied(calls: tuple[OpenCall, ...], tool: str) -> tuple[OpenCall, ...]:
    """The open calls without the one a permission was asked for, when the agent went on
    without its result (another call, its reply, the end of the turn): it was denied, and no
    client reports a result for a denied call. Kept open, it would stop a healthy session as a
    hung call `tool_call_timeout` later. The latest call of its tool, else none. (A call run in
    parallel with the one asked about could be dropped instead of it: a hang missed, never a
    session stopped.)"""
    prefix = f"{tool} " if tool else None
    latest = range(len(calls) - 1, -1, -1)
    index = next((i for i in latest if prefix and calls[i][2].startswith(prefix)), None)
    return calls if index is None else calls[:index] + calls[index + 1 :]


def observe(
    watch: tuple[Any, ...] | None,
    event: AgentEvent,
    at: float,
    stream_seq: int,
    config: WatchdogConfig,
) -> tuple[Any, ...] | None:
    """The session's watch after `event`, stored at bus time `at`; None once it ended (or when
    no limit is on). A heartbeat moves no deadline: it says the agent's process lives, not that
    the session moves (users report hangs of hours kept looking healthy by one). A `waiting`
    event holds every stop until the agent's next event, which starts its open calls' clocks
    again (a call waited for its permission, it did not run). Dispatches on `type`: an
    isinstance check of a pydantic model costs more than the rest of the work."""
    kind = event.type
    if kind == "session_ended" or not (
        config.silence_timeout > 0
        or config.tool_call_timeout > 0
        or config.tool_call_timeouts
        or config.waiting_notification_after > 0
    ):
        return None
    if kind == "heartbeat":
        if watch is not None:
            return (*watch[:3], stream_seq, *watch[4:])
        # The first this watchdog hears of an open session.
        return _arm(at, stream_seq, event.seq, event.event_id, kind, (), config)
    calls: tuple[OpenCall, ...] = watch[7] if watch is not None else ()
    waiting: Wait = watch[8] if watch is not None else ()
    last: str = kind
    if kind == "waiting":
        assert isinstance(event, Waiting)
        asked = f"{event.kind}: {event.prompt or event.tool or 'no text'}"
        if not waiting:
            waiting = (at, event.kind, asked, event.event_id, event.seq, False, event.tool or "")
        last = f"waiting ({asked})"
        return _arm(at, stream_seq, event.seq, event.event_id, last, calls, config, waiting)
    if waiting:  # answered: what waited starts again now
        calls = tuple((key, at, label, limit) for key, _, label, limit in calls)
        if waiting[1] == "permission" and kind != "tool_result":
            calls = _denied(calls, str(waiting[6]))
    if kind == "tool_call":
        assert isinstance(event, ToolCall)
        label = call_label(event.tool, event.input)
        key = event.call_id or f"seq:{event.seq}"
        opened = (key, at, label, config.call_limit(label))
        calls = (*(c for c in calls if c[0] != key), opened) if calls else (opened,)
        last = f"tool_call {label}"
    elif kind == "tool_result":
        assert isinstance(event, ToolResult)
        calls = _close(calls, event)
        outcome = "ok" if event.result.ok else "failed"
        last = f"tool_result ({outcome}) of {event.tool or event.call_id or 'a call'}"
    elif kind == "agent_message" and not calls:
        last = "agent_message (its turn is over: its user's turn)"
        return _arm(at, stream_seq, event.seq, event.event_id, last, calls, config, turn_over=True)
    return _arm(at, stream_seq, event.seq, event.event_id, last, calls, config)


def notified(watch: tuple[Any, ...], config: WatchdogConfig) -> tuple[Any, ...]:
    """The watch once its waiting notice went out: nothing more is due until an answer."""
    held = Watch._make(watch)
    waiting = (*held.waiting[:5], True, *held.waiting[6:])
    return _arm(
        held.last_at,
        held.stream_seq,
        held.event_seq,
        held.event_id,
        held.last,
        held.calls,
        config,
        waiting,
    )


def waiting_text(watch: tuple[Any, ...] | None) -> str | None:
    """What the session waits for a person for, or None."""
    return str(watch[8][2]) if watch is not None and watch[8] else None


def expire(project_id: str, session_id: str, watch: tuple[Any, ...], now: float) -> Intervention:
    """The stop of a session whose deadline passed at bus time `now` (or, for a session that
    waits for a person, the notice that it has waited long: trigger `waiting`, no stop). Its id
    comes from the session and its last event (the first of a wait): a second replica, or a
    restart, stopping the same silence makes the same intervention, which the stream keeps
    once."""
    held = Watch._make(watch)
    trigger: Trigger = "silence"
    if held.trigger in ("tool_call_timeout", "waiting"):
        trigger = "tool_call_timeout" if held.trigger == "tool_call_timeout" else "waiting"
    excerpt, event_id, event_seq = "", held.event_id, held.event_seq
    if trigger == "waiting":
        since, _, asked, event_id, event_seq = held.waiting[:5]
        reason = f"Waiting {now - since:.0f} s for a person: {asked}"
        excerpt = asked
    elif trigger == "tool_call_timeout":
        _, opened, label, limit = min(
            (c for c in held.calls if c[3] > 0), key=lambda c: c[1] + c[3]
        )
        reason = (
            f"Tool call open for {now - opened:.0f} s with no result (limit {limit:.0f} s): {label}"
        )
        excerpt = label
    else:
        reason = (
            f"No event for {now - held.last_at:.0f} s (limit {held.deadline - held.last_at:.0f} "
            f"s) since its last event, seq {held.event_seq}: {held.last}"
        )
    return Intervention(
        intervention_id=intervention_id_for(project_id, session_id, f"{trigger}:{event_id}"),
        project_id=project_id,
        session_id=session_id,
        trigger=trigger,
        reason=reason,
        error_excerpt=excerpt,
        event_seq=event_seq,
        event_id=event_id,
        detected_at=datetime.fromtimestamp(now, UTC),
        suggested_recovery=SUGGESTIONS[trigger],
    )


def watch_json(watch: tuple[Any, ...]) -> bytes:
    """A watch as stored in the checkpoint bucket (an infinite deadline as null)."""
    deadline = watch[0] if math.isfinite(watch[0]) else None
    calls = [list(c) for c in watch[7]]
    return json.dumps([deadline, *watch[1:7], calls, list(watch[8])]).encode()


def watch_from_json(data: bytes) -> tuple[Any, ...]:
    raw = json.loads(data)
    deadline = math.inf if raw[0] is None else float(raw[0])
    calls = tuple((str(k), float(t), str(label), float(limit)) for k, t, label, limit in raw[7])
    waiting: Wait = ()
    if len(raw) > 8 and raw[8]:
        since, kind, asked, event_id, event_seq, told, tool = raw[8]
        asked_for = (str(kind), str(asked), str(event_id), int(event_seq), bool(told), str(tool))
        waiting = (float(since), *asked_for)
    head = (deadline, str(raw[1]), float(raw[2]), int(raw[3]), int(raw[4]), str(raw[5]))
    return (*head, str(raw[6]), calls, waiting)


SessionKey = tuple[str, str]


class KeptDict(dict[K, V]):
    """A dict for a large, long-lived table of atomic entries (a partition's deadlines: string
    keys, tuples of numbers and strings), which stays frozen once frozen (shared/collector.py).

    A collection untracks an exact dict whose keys and values are all atomic; the next new
    tuple put in tracks it again, into the youngest generation, out of the frozen one. From
    then on every young collection walked all its entries (1.7 ms at 100,000 sessions, many
    times a second), and each freezing round's full collection too. The collector never
    untracks a subclass of dict, so this one stays where `gc.freeze` put it."""

    __slots__ = ()


class Watches:
    """The watches of one partition's open sessions, by (project, session)."""

    __slots__ = ("_watches",)

    def __init__(self) -> None:
        self._watches: dict[SessionKey, tuple[Any, ...]] = KeptDict()

    def __len__(self) -> int:
        return len(self._watches)

    def __iter__(self) -> Iterator[SessionKey]:
        return iter(self._watches)

    def get(self, key: SessionKey) -> tuple[Any, ...] | None:
        return self._watches.get(key)

    def set(self, key: SessionKey, watch: tuple[Any, ...] | None) -> None:
        if watch is None:
            self._watches.pop(key, None)
        else:
            self._watches[key] = watch

    def due(self, now: float, inclusive: bool = True) -> list[SessionKey]:
        """The sessions whose deadline is before bus time `now` (or at it, if `inclusive`): one
        comparison each."""
        if inclusive:
            return [k for k, watch in self._watches.items() if watch[0] <= now and watch[1]]
        return [k for k, watch in self._watches.items() if watch[0] < now and watch[1]]
