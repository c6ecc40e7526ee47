"""The agent side: what an agent embeds to stream its session and obey a pause.

Every event gets the next per-session `seq` and an `event_id` derived from it, and publishing
retries with the same Nats-Msg-Id until the server stores it, so a NATS reconnect loses
nothing and duplicates nothing. Before a tool call runs, the session's control state is checked,
and after the call is announced the client waits a short grace period for a verdict on it, so a
call that trips a rule is stopped before it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from .contract import (
    CONTROL_BUCKET,
    ControlKeys,
    SessionControl,
    Subjects,
    Task,
    agent_inbox_prefix,
)

__all__ = [
    "CONTEXT_ENV",
    "PROGRESS_FILE",
    "AgentSession",
    "SessionPaused",
    "blocker_entry",
    "connect",
    "event_id_for",
]

log = logging.getLogger(__name__)

PROGRESS_FILE = "claude-progress.md"
# Set for an agent session started after a resume: the file holding the resume brief.
CONTEXT_ENV = "YOKEFLOW_RESUME_CONTEXT_FILE"


async def connect(url: str, project_id: str, **options: Any) -> Client:
    """Connect as an agent of `project_id`: with the inbox prefix its credentials allow, so
    JetStream acknowledgements and control-state reads reach it. `url` carries the agent's
    credentials (`yokeflow-intervention agents add PROJECT` prints it)."""
    settings: dict[str, Any] = {"name": f"yokeflow-agent-{project_id}", "connect_timeout": 2,
                                "max_reconnect_attempts": 5, "reconnect_time_wait": 0.5}  # fmt: skip
    settings.update(options)
    return await nats.connect(
        servers=[s.strip() for s in url.split(",")],
        inbox_prefix=agent_inbox_prefix(project_id),
        **settings,
    )


class SessionPaused(RuntimeError):
    """The session is paused by an intervention: stop, do not run the tool."""

    def __init__(self, control: SessionControl) -> None:
        super().__init__(
            f"session paused by intervention {control.intervention_id}: {control.reason}"
        )
        self.control = control


def event_id_for(project_id: str, session_id: str, seq: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"yokeflow:{project_id}/{session_id}/{seq}"))


def blocker_entry(session_id: str, control: SessionControl, when: datetime) -> str:
    """The blocker entry for claude-progress.md, in YokeFlow's original format."""
    task = control.task
    task_line = f"{task.id} - {task.description}" if task else "(no task recorded)"
    root_cause = control.blocker_type or control.trigger or "unknown"
    if control.error_excerpt:
        root_cause += f": {control.error_excerpt.strip().splitlines()[0][:300]}"
    requires = ["Human review of the blocker above"]
    if control.suggested_recovery:
        requires.append(control.suggested_recovery)
    requires.append(
        "Resume with notes: `yokeflow-intervention interventions resume "
        f"{control.intervention_id} --by NAME --notes TEXT` (or from the dashboard)"
    )
    return "\n".join(
        [
            f"## BLOCKER - Session {session_id} - {when:%Y-%m-%d %H:%M:%S} UTC",
            "",
            f"**Task**: {task_line}",
            f"**Issue**: {control.reason}",
            f"**Root Cause**: {root_cause}",
            f"**Intervention**: {control.intervention_id}",
            "**Retry Statistics**:",
            "```json",
            json.dumps(control.retry_stats.model_dump(), indent=2),
            "```",
            "**Requires**:",
            *[f"- [ ] {item}" for item in requires],
            "**Impact**: The session is paused; no further tool calls run until it is resumed.",
            "",
        ]
    )


@dataclass
class AgentSession:
    nc: Client
    project_id: str
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    workspace: Path | None = None
    task: Task | None = None
    pause_grace: float = 0.3
    publish_deadline: float = 60.0
    next_seq: int = 1
    _calls: int = 0
    _control: KeyValue | None = None

    @property
    def subject(self) -> str:
        return Subjects.agent_events(self.project_id, self.session_id)

    async def _publish(self, type_: str, **fields: Any) -> dict[str, Any]:
        seq = self.next_seq
        event = {
            "v": 1,
            "event_id": event_id_for(self.project_id, self.session_id, seq),
            "type": type_,
            "project_id": self.project_id,
            "session_id": self.session_id,
            "seq": seq,
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            **({"task": self.task.model_dump()} if self.task else {}),
            **{k: v for k, v in fields.items() if v is not None},
        }
        payload = json.dumps(event).encode()
        js = self.nc.jetstream()
        deadline = time.monotonic() + self.publish_deadline
        while True:
            try:
                await js.publish(self.subject, payload, headers={"Nats-Msg-Id": event["event_id"]})
                break
            except (NatsError, TimeoutError):
                # Same id on every try: the stream keeps exactly one copy.
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self.next_seq = seq + 1
        return event

    async def control(self) -> SessionControl | None:
        """The session's pause state; None when there is none or NATS cannot say right now.

        Failing open keeps the agent working through a NATS node failover: the detector still
        sees its events, and the next check stops it once the pause is readable."""
        try:
            if self._control is None:
                self._control = await self.nc.jetstream().key_value(CONTROL_BUCKET)
            entry = await self._control.get(ControlKeys.session(self.project_id, self.session_id))
        except KeyNotFoundError:
            return None
        except (NatsError, TimeoutError) as exc:
            log.warning("pause state unreadable, carrying on: %r", exc)
            return None
        return SessionControl.model_validate_json(entry.value or b"{}")

    async def raise_if_paused(self) -> None:
        control = await self.control()
        if control is not None and control.state == "paused":
            raise SessionPaused(control)

    async def start(self, resumed_from: str | None = None) -> None:
        await self._publish(
            "session_started",
            workspace=str(self.workspace) if self.workspace else None,
            resumed_from=resumed_from,
        )

    async def tool_call(self, tool: str, tool_input: dict[str, Any]) -> str:
        """Announce a call; raise SessionPaused instead of letting a stopped call run."""
        await self.raise_if_paused()
        self._calls += 1
        call_id = f"call-{self._calls}"
        await self.announce_call(tool, tool_input, call_id)
        return call_id

    async def announce_call(self, tool: str, tool_input: dict[str, Any], call_id: str) -> None:
        """Publish the call, then give the detector a moment to stop it before it runs."""
        await self._publish("tool_call", tool=tool, input=tool_input, call_id=call_id)
        deadline = time.monotonic() + self.pause_grace
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await self.raise_if_paused()

    async def tool_result(
        self,
        call_id: str,
        tool: str,
        ok: bool,
        output: str = "",
        error: str = "",
        exit_code: int | None = None,
        duration_ms: int | None = None,
    ) -> None:
        result = {"ok": ok, "exit_code": exit_code, "output": output, "error": error,
                  "duration_ms": duration_ms}  # fmt: skip
        await self._publish("tool_result", call_id=call_id, tool=tool, result=result)

    async def error(self, message: str) -> None:
        await self._publish("error", message=message)

    async def message(self, text: str) -> None:
        """What the agent said in a turn (its text, not its tool calls)."""
        await self._publish("agent_message", text=text)

    async def heartbeat(self) -> None:
        await self._publish("heartbeat")

    async def end(self, reason: str = "completed") -> None:
        await self._publish("session_ended", reason=reason)

    def write_blocker(self, paused: SessionPaused) -> Path | None:
        """Append the blocker entry to claude-progress.md in the workspace."""
        if self.workspace is None:
            return None
        self.workspace.mkdir(parents=True, exist_ok=True)
        path = self.workspace / PROGRESS_FILE
        with path.open("a", encoding="utf-8") as progress:
            progress.write("\n" + blocker_entry(self.session_id, paused.control, datetime.now(UTC)))
        return path

    async def stop_for_pause(self, paused: SessionPaused) -> Path | None:
        """Write the blocker entry and end the session as paused."""
        path = self.write_blocker(paused)
        await self.end("paused")
        return path
