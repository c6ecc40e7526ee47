"""The agent side: what an agent embeds to stream its session and obey a pause.

Every event gets the next per-session `seq` and an `event_id` derived from it, and publishing
retries with the same Nats-Msg-Id until the server stores it, so a NATS reconnect loses
nothing and duplicates nothing. Before a tool call runs, the session's control state is checked;
after the call is announced, the client waits for the detector's verdict on that very call
(`agent.verdicts.<project>.<session>`, up to `verdict_timeout`), so a call that trips a rule is
refused before it runs, and a healthy one goes on as soon as the detector has looked at it.
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
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from .contract import (
    CONTROL_BUCKET,
    ControlKeys,
    SessionControl,
    Subjects,
    Task,
    Verdict,
    agent_inbox_prefix,
)
from .events import PROGRESS_FILE, agent_event, blocker_entry, clip_input
from .names import CONTEXT_ENV

__all__ = ["CONTEXT_ENV", "AgentSession", "SessionPaused", "connect"]

log = logging.getLogger(__name__)


async def connect(url: str, project_id: str, **options: Any) -> Client:
    """Connect as an agent of `project_id`: with the inbox prefix its credentials allow, so
    JetStream acknowledgements and control-state reads reach it. `url` carries the agent's
    credentials (`yokeflow-intervention agents add PROJECT` prints it)."""
    settings: dict[str, Any] = {
        "name": f"yokeflow-agent-{project_id}",
        "connect_timeout": 2,
        "max_reconnect_attempts": 5,
        "reconnect_time_wait": 0.5,
        "error_cb": _connection_trouble,
    }
    settings.update(options)
    return await nats.connect(
        servers=[s.strip() for s in url.split(",")],
        inbox_prefix=agent_inbox_prefix(project_id),
        **settings,
    )


async def _connection_trouble(exc: Exception) -> None:
    """One line in the agent's log per connection error. nats-py's default logs each with its
    traceback, a screenful at every reconnect attempt while NATS is away (the agent carries
    on: calls fail open)."""
    log.warning("YokeFlow: NATS connection trouble: %r", exc)


class SessionPaused(RuntimeError):
    """The session is paused by an intervention: stop, do not run the tool."""

    def __init__(self, control: SessionControl) -> None:
        super().__init__(
            f"session paused by intervention {control.intervention_id}: {control.reason}"
        )
        self.control = control


@dataclass
class AgentSession:
    nc: Client
    project_id: str
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    workspace: Path | None = None
    task: Task | None = None
    # How long to wait for the detector's verdict on an announced call before it runs (the
    # detector answers in milliseconds; the wait ends as soon as it does).
    verdict_timeout: float = 0.5
    # How long to wait for a warning after a result (only the SDK hooks ask for it).
    warning_wait: float = 0.2
    # How long one publish may keep retrying (across a reconnect), and each try's wait for the
    # server's acknowledgement.
    publish_deadline: float = 60.0
    publish_timeout: float = 5.0
    next_seq: int = 1
    _calls: int = 0
    _control: KeyValue | None = None
    _verdicts: Subscription | None = None
    _waiting: dict[int, asyncio.Future[Verdict]] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return Subjects.agent_events(self.project_id, self.session_id)

    async def _publish(self, type_: str, **fields: Any) -> int:
        seq = self.next_seq
        task = self.task.model_dump() if self.task else None
        event = agent_event(self.project_id, self.session_id, seq, type_, task, **fields)
        payload = json.dumps(event).encode()
        js = self.nc.jetstream()
        deadline = time.monotonic() + self.publish_deadline
        while True:
            try:
                wait = max(0.05, min(self.publish_timeout, deadline - time.monotonic()))
                await js.publish(
                    self.subject, payload, timeout=wait, headers={"Nats-Msg-Id": event["event_id"]}
                )
                break
            except (NatsError, TimeoutError):
                # Same id on every try: the stream keeps exactly one copy. A closed connection
                # (its reconnects given up) will not come back: no use trying again.
                if time.monotonic() > deadline or self.nc.is_closed:
                    raise
                await asyncio.sleep(0.2)
        self.next_seq = seq + 1
        return seq

    async def _on_verdict(self, msg: Msg) -> None:
        try:
            verdict = Verdict.model_validate_json(msg.data)
        except ValidationError:
            return
        waiting = self._waiting.pop(verdict.seq, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(verdict)

    async def _publish_and_hear(self, wait: float, type_: str, **fields: Any) -> Verdict | None:
        """Publish an event and wait up to `wait` for the detector's verdict on it."""
        if self._verdicts is None:  # before the first event that waits, so none is missed
            subject = Subjects.verdicts(self.project_id, self.session_id)
            self._verdicts = await self.nc.subscribe(subject, cb=self._on_verdict)
        heard: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiting[self.next_seq] = heard
        seq = self.next_seq
        try:
            await self._publish(type_, **fields)
            return await asyncio.wait_for(heard, wait)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(seq, None)

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

    async def announce_call(
        self, tool: str, tool_input: dict[str, Any], call_id: str
    ) -> Verdict | None:
        """Publish the call and wait for the detector's verdict on it; raise SessionPaused if
        it stops the call. Without a verdict in time the control state decides."""
        verdict = await self._publish_and_hear(
            self.verdict_timeout,
            "tool_call",
            tool=tool,
            input=clip_input(tool_input),
            call_id=call_id,
        )
        if verdict is None:
            await self.raise_if_paused()
        elif verdict.decision == "stop" and verdict.control is not None:
            raise SessionPaused(verdict.control)
        return verdict

    async def tool_result(
        self,
        call_id: str,
        tool: str,
        ok: bool,
        output: str = "",
        error: str = "",
        exit_code: int | None = None,
        duration_ms: int | None = None,
        hear: bool = False,
    ) -> Verdict | None:
        """Report a call's result. With `hear`, wait (up to `warning_wait`) for the detector's
        verdict on it: a warning to pass on to the model, or a stop."""
        result = {
            "ok": ok,
            "exit_code": exit_code,
            "output": output,
            "error": error,
            "duration_ms": duration_ms,
        }
        fields = {"call_id": call_id, "tool": tool, "result": result}
        if hear:
            return await self._publish_and_hear(self.warning_wait, "tool_result", **fields)
        await self._publish("tool_result", **fields)
        return None

    async def error(self, message: str) -> None:
        await self._publish("error", message=message)

    async def message(self, text: str) -> None:
        """What the agent said in a turn (its text, not its tool calls)."""
        await self._publish("agent_message", text=text)

    async def waiting(self, kind: str, prompt: str, tool: str | None = None) -> None:
        """The session waits for a person (`kind`: permission, question or idle; `prompt`:
        what is asked). Its next event says the wait is over."""
        await self._publish("waiting", kind=kind, prompt=prompt[:2000], tool=tool)

    async def heartbeat(self) -> None:
        await self._publish("heartbeat")

    async def end(self, reason: str = "completed") -> None:
        await self._publish("session_ended", reason=reason)
        if self._verdicts is not None:
            await self._verdicts.unsubscribe()
            self._verdicts = None

    def write_blocker(self, paused: SessionPaused) -> Path | None:
        """Append the blocker entry to claude-progress.md in the workspace."""
        if self.workspace is None:
            return None
        self.workspace.mkdir(parents=True, exist_ok=True)
        path = self.workspace / PROGRESS_FILE
        with path.open("a", encoding="utf-8") as progress:
            entry = blocker_entry(
                self.session_id, paused.control.model_dump(mode="json"), datetime.now(UTC)
            )
            progress.write("\n" + entry)
        return path

    async def stop_for_pause(self, paused: SessionPaused) -> Path | None:
        """Write the blocker entry and end the session as paused."""
        path = self.write_blocker(paused)
        await self.end("paused")
        return path
