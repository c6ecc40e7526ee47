"""A small writer of agent sessions as contract-v1 events, for sessions that exist as a peer's
test or an issue report rather than as a transcript file.

Each call is a `tool_call` and its `tool_result`, each reply an `agent_message`, on a clock that
advances by the gaps given (the rules read event time). `stuck_here()` marks where the stuck part
begins: a stop before that event is a stop for the wrong reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_NAMESPACE = uuid.UUID("6b1d7c8e-2f4a-4e0b-9c3d-5a6b7c8d9e0f")


@dataclass
class Script:
    session_id: str
    project_id: str = "corpus"
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    workspace: str = "/work/project"
    events: list[dict[str, Any]] = field(default_factory=list)
    stuck_from: int | None = None
    _clock: datetime | None = None
    _calls: int = 0

    def _event(self, type_: str, gap: float, **fields: Any) -> dict[str, Any]:
        self._clock = (self._clock or self.start) + timedelta(seconds=gap)
        seq = len(self.events) + 1
        event = {
            "v": 1,
            "event_id": str(uuid.uuid5(_NAMESPACE, f"{self.session_id}/{seq}")),
            "type": type_,
            "project_id": self.project_id,
            "session_id": self.session_id,
            "seq": seq,
            "ts": self._clock.isoformat().replace("+00:00", "Z"),
            **fields,
        }
        self.events.append(event)
        return event

    def begin(self) -> Script:
        self._event("session_started", 0, workspace=self.workspace)
        return self

    def call(
        self,
        tool: str,
        tool_input: dict[str, Any],
        out: str = "",
        *,
        ok: bool = True,
        err: str = "",
        exit_code: int | None = None,
        secs: float = 1.0,
        gap: float = 3.0,
    ) -> Script:
        self._calls += 1
        call_id = f"call-{self._calls}"
        self._event("tool_call", gap, tool=tool, input=tool_input, call_id=call_id)
        code = exit_code if exit_code is not None else (0 if ok else 1)
        body = {
            "ok": ok,
            "exit_code": code,
            "output": out,
            "error": err,
            "duration_ms": int(secs * 1000),
        }
        self._event("tool_result", secs, call_id=call_id, tool=tool, result=body)
        return self

    def say(self, text: str, gap: float = 2.0) -> Script:
        self._event("agent_message", gap, text=text)
        return self

    def stuck_here(self) -> Script:
        """The next event starts the stuck part."""
        self.stuck_from = len(self.events) + 1
        return self
