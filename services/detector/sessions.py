"""The detector's memory of live sessions, shared by the service and offline replays."""

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from yokeflow_agent.contract import (
    AgentEvent,
    ContractError,
    Intervention,
    InterventionWarned,
    SessionEnded,
    parse_agent_event,
)

from yokeflow_intervention.shared.settings import Settings

from .rules import DetectionConfig, SessionState, evaluate, foresee

__all__ = [
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

    def feed(self, event: AgentEvent) -> Outcome:
        key = (event.project_id, event.session_id)
        held = self._states.pop(key, None)
        config = self.config_for(event.project_id)
        state = held[0] if held else SessionState.new(*key, config)
        self._states[key] = (state, self._clock())
        intervention = evaluate(state, event, config)
        warning = None if intervention is not None else foresee(state, event, config)
        if isinstance(event, SessionEnded):
            # The session is over: its memory goes with it (a resume starts a new session).
            self._states.pop(key, None)
        return Outcome(intervention, warning)


@dataclass(frozen=True)
class ReplayProblem:
    line: int
    reason: str


def read_event_file(path: Path) -> Iterator[AgentEvent | ReplayProblem]:
    """Events of a JSONL file in order; a bad line becomes a ReplayProblem, not an exception."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield parse_agent_event(line)
            except ContractError as exc:
                yield ReplayProblem(number, exc.reason)


def replay(
    items: Iterable[AgentEvent | ReplayProblem],
    config: DetectionConfig,
    projects: Mapping[str, DetectionConfig] | None = None,
) -> Iterator[Intervention]:
    """Run events through exactly the service's rules (each project's own, where it has them);
    report bad lines on stderr."""
    book = SessionBook(config, projects=projects)
    for item in items:
        if isinstance(item, ReplayProblem):
            print(f"line {item.line}: skipped: {item.reason}", file=sys.stderr)
            continue
        intervention = book.feed(item).intervention
        if intervention is not None:
            yield intervention


def intervention_json(intervention: Intervention) -> str:
    return json.dumps(intervention.model_dump(mode="json"), sort_keys=True)
