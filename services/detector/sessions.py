"""The detector's memory of live sessions, shared by the service and offline replays."""

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from yokeflow_agent.contract import (
    AgentEvent,
    ContractError,
    Intervention,
    InterventionWarned,
    parse_agent_event,
)

from yokeflow_intervention.shared.settings import Settings

from .rules import DetectionConfig, SessionState, evaluate, foresee
from .watchdog import Watches, expire, notified, observe

__all__ = [
    "Clock",
    "Outcome",
    "ReplayProblem",
    "SessionBook",
    "intervention_json",
    "project_configs",
    "read_event_file",
    "replay",
]

SessionKey = tuple[str, str]


def project_configs(settings: Settings) -> dict[str, DetectionConfig]:
    """The config of each project with detection keys of its own (`projects.<id>.detection`),
    built once: the others are judged by the global config."""
    return {
        project: DetectionConfig.from_settings(settings.detection_settings(project))
        for project, registered in settings.projects.items()
        if registered.detection.model_fields_set
    }


@dataclass(frozen=True)
class Outcome:
    """What one event earned: a stop, a warning that the next step of its kind stops, or
    neither."""

    intervention: Intervention | None = None
    warning: InterventionWarned | None = None


NOTHING = Outcome()  # what most events earn (frozen: one for all)


class SessionBook:
    """Per-session state, keyed by (project_id, session_id), least recently fed first (so the
    service finds idle sessions without scanning them all). A project with detection settings
    of its own (`projects` here, built once) is judged by them; every other by `config`."""

    def __init__(
        self,
        config: DetectionConfig,
        clock: Callable[[], float] = time.monotonic,
        projects: Mapping[str, DetectionConfig] | None = None,
    ) -> None:
        self.config = config
        self.projects = dict(projects or {})
        self._states: OrderedDict[SessionKey, tuple[SessionState, float]] = OrderedDict()
        self._clock = clock
        # The watchdog's deadlines, per partition: apart from the states, so a session that
        # leaves memory keeps its deadline (one small entry; the state goes to its checkpoint).
        self.watches: dict[int, Watches] = {}

    def __len__(self) -> int:
        return len(self._states)

    def config_for(self, project_id: str) -> DetectionConfig:
        return self.projects.get(project_id, self.config)

    def get(self, project_id: str, session_id: str) -> SessionState | None:
        found = self._states.get((project_id, session_id))
        return found[0] if found else None

    def adopt(self, state: SessionState) -> SessionState:
        """Hold a state restored from elsewhere (an evicted session's snapshot)."""
        self._states[(state.project_id, state.session_id)] = (state, self._clock())
        return state

    def start_epoch(self, project_id: str, session_id: str) -> SessionState:
        """A fresh state: for a new session, or after a human resumed an intervened one."""
        return self.adopt(SessionState.new(project_id, session_id, self.config_for(project_id)))

    def drop(self, project_id: str, session_id: str) -> None:
        self._states.pop((project_id, session_id), None)

    def drop_if(self, doomed: Callable[[SessionState], bool]) -> int:
        """Drop every session `doomed` says so of; returns how many."""
        keys = [key for key, (state, _) in self._states.items() if doomed(state)]
        for key in keys:
            del self._states[key]
        return len(keys)

    def idle(self, older_than: float) -> list[SessionState]:
        """The sessions last fed before the clock read `older_than`, oldest first."""
        found = []
        for state, touched in self._states.values():
            if touched >= older_than:
                break
            found.append(state)
        return found

    def watches_of(self, partition: int) -> Watches:
        found = self.watches.get(partition)
        if found is None:
            found = self.watches[partition] = Watches()
        return found

    def feed(
        self,
        event: AgentEvent,
        at: float | None = None,
        partition: int = 0,
        stream_seq: int = 0,
    ) -> Outcome:
        """Fold `event`, stored at bus time `at` (a replay: its `ts`), into its session. A
        session whose deadline passed before the event came is stopped by the watchdog first,
        as a clock tick in between would have."""
        key = (event.project_id, event.session_id)
        at = event.ts.timestamp() if at is None else at
        held = self._states.pop(key, None)
        config = self.config_for(event.project_id)
        state = held[0] if held else SessionState.new(*key, config)
        self._states[key] = (state, self._clock())
        watches = self.watches_of(partition)
        watch = watches.get(key)
        if watch is not None and watch[0] < at and watch[1] != "waiting" and not state.intervened:
            return Outcome(self.stop_silent(partition, key, at))
        intervention = evaluate(state, event, config)
        warning = None if intervention is not None else foresee(state, event, config)
        if state.intervened is not None:
            watches.set(key, None)  # paused: nothing to wait for until it is resumed
        else:
            watches.set(key, observe(watch, event, at, stream_seq, config.watchdog))
        if event.type == "session_ended":
            # The session is over: its memory goes with it (a resume starts a new session).
            self._states.pop(key, None)
        if intervention is None and warning is None:
            return NOTHING
        return Outcome(intervention, warning)

    def stop_silent(self, partition: int, key: SessionKey, now: float) -> Intervention:
        """The watchdog's stop of a session whose deadline passed at bus time `now` (or its
        notice that the session has waited long for a person); with the session's task and
        workspace when its state is in memory."""
        watches = self.watches_of(partition)
        watch = watches.get(key)
        assert watch is not None
        intervention = expire(*key, watch, now)
        state = self.get(*key)
        if intervention.trigger == "waiting":  # told, not stopped: it waits on
            watches.set(key, notified(watch, self.config_for(key[0]).watchdog))
        else:
            watches.set(key, None)
            if state is not None:
                state.intervened = intervention.intervention_id
        if state is not None:
            intervention = intervention.model_copy(
                update={
                    "task": state.task,
                    "workspace": state.workspace,
                    "retry_stats": state.retry_stats(),
                }
            )
        return intervention

    def tick(self, partition: int, now: float, inclusive: bool = True) -> list[Intervention]:
        """Every stop the watchdog owes in `partition` at bus time `now` (deadlines before it,
        and at it if `inclusive`), earliest first."""
        watches = self.watches_of(partition)
        due = sorted(watches.due(now, inclusive), key=lambda key: (_deadline(watches, key), key))
        return [self.stop_silent(partition, key, now) for key in due]


def _deadline(watches: Watches, key: SessionKey) -> float:
    watch = watches.get(key)
    return watch[0] if watch is not None else 0.0


@dataclass(frozen=True)
class ReplayProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class Clock:
    """A line `{"type": "clock", "ts": "<RFC 3339>"}` of an event file: time passed to `ts`
    with no event (what the service's clock ticks are), so a silence can be written down."""

    at: datetime


def _clock_line(line: str) -> Clock | None:
    try:
        payload: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("type") != "clock":
        return None
    try:
        at = datetime.fromisoformat(str(payload.get("ts")))
    except ValueError:
        raise ContractError("clock: ts must be an RFC 3339 time with a timezone") from None
    if at.tzinfo is None:
        raise ContractError("clock: ts must carry a timezone")
    return Clock(at)


def read_event_file(path: Path) -> Iterator[AgentEvent | Clock | ReplayProblem]:
    """Events of a JSONL file in order; a bad line becomes a ReplayProblem, not an exception."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield _clock_line(line) or parse_agent_event(line)
            except ContractError as exc:
                yield ReplayProblem(number, exc.reason)


def replay(
    items: Iterable[AgentEvent | Clock | ReplayProblem],
    config: DetectionConfig,
    projects: Mapping[str, DetectionConfig] | None = None,
    now: datetime | None = None,
) -> Iterator[Intervention]:
    """Run events through exactly the service's rules and watchdog (each project's own rules,
    where it has them); report bad lines on stderr. A file has no stream timestamps: each
    event's `ts` stands for the time it was stored, time moves on with each event and each
    clock line, and `now` (if given) is one last clock after the file. The service sees a
    deadline up to one clock tick late, a replay exactly on time."""
    book = SessionBook(config, projects=projects)
    for item in items:
        if isinstance(item, ReplayProblem):
            print(f"line {item.line}: skipped: {item.reason}", file=sys.stderr)
            continue
        at = item.at if isinstance(item, Clock) else item.ts
        # What fell due by this moment (an event: strictly before it, as the service judges);
        # a waiting notice tells a person, it is no verdict.
        due = book.tick(0, at.timestamp(), inclusive=isinstance(item, Clock))
        yield from (found for found in due if found.trigger != "waiting")
        if isinstance(item, Clock):
            continue
        intervention = book.feed(item).intervention
        if intervention is not None:
            yield intervention
    if now is not None:
        yield from (found for found in book.tick(0, now.timestamp()) if found.trigger != "waiting")


def intervention_json(intervention: Intervention) -> str:
    return json.dumps(intervention.model_dump(mode="json"), sort_keys=True)
