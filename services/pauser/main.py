"""Pauser service: intervention.detected in, durable pause out; serves the pause commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from nats.aio.msg import Msg
from pydantic import BaseModel
from yokeflow_agent.contract import (
    CONSUMERS,
    CONTROL_BUCKET,
    ContractError,
    Intervention,
    InterventionWarned,
    SessionEnded,
    SessionStarted,
    Subjects,
    parse_agent_event,
)

from yokeflow_intervention.shared.commands import (
    AcknowledgeRequest,
    FalseStopRequest,
    IdRequest,
    ListRequest,
    NextSessionRequest,
    PauseRequest,
    ResumeRequest,
    SnoozeRequest,
)
from yokeflow_intervention.shared.handling import handle_durably
from yokeflow_intervention.shared.service import (
    Binding,
    Consume,
    ConsumeInOrder,
    Every,
    Reply,
    Resources,
    run_service,
)

from .commands import run_command
from .lifecycle import LifecycleWriter
from .manager import PausedSessionManager
from .store import PausedSessionStore

__all__ = ["COMMANDS", "build", "command_reply", "main"]

_LIFECYCLE_MARKERS = (b'"session_started"', b'"session_ended"')
RESUME_OUTBOX_EVERY_S = 2.0


def _not_lifecycle(data: bytes) -> bool:
    """An event the registry has nothing to do with: most agent events (a lifecycle event names
    its type; one that only mentions a type elsewhere is parsed and then let go)."""
    return not any(marker in data for marker in _LIFECYCLE_MARKERS)


Operation = Callable[[PausedSessionManager, Any], Awaitable[Any]]


async def _can_auto_resume(manager: PausedSessionManager, request: IdRequest) -> bool:
    row = await manager.get_intervention(request.intervention_id)
    return bool(row["can_auto_resume"]) and not row["resolved"]


# Each command the pauser serves on `Subjects.command(name)`: its request model and operation
# (called on the manager by name, so a fake manager serves in the unit tests).
COMMANDS: dict[str, tuple[type[BaseModel], Operation]] = {
    "pause_session": (PauseRequest, lambda manager, request: manager.pause_session(request)),
    "resume_session": (ResumeRequest, lambda manager, request: manager.resume_session(request)),
    "mark_false_stop": (
        FalseStopRequest,
        lambda manager, request: manager.mark_false_stop(request),
    ),
    "acknowledge": (AcknowledgeRequest, lambda manager, request: manager.acknowledge(request)),
    "snooze": (SnoozeRequest, lambda manager, request: manager.snooze(request)),
    "get_active_pauses": (
        ListRequest,
        lambda manager, request: manager.list(
            request.project_id, True, request.limit, request.offset
        ),
    ),
    "get_intervention_history": (
        ListRequest,
        lambda manager, request: manager.list(
            request.project_id, False, request.limit, request.offset
        ),
    ),
    "get_intervention": (
        IdRequest,
        lambda manager, request: manager.get_intervention(request.intervention_id),
    ),
    "can_auto_resume": (IdRequest, _can_auto_resume),
    "record_next_session": (
        NextSessionRequest,
        lambda manager, request: manager.store.set_next_session(
            request.intervention_id, request.session_id
        ),
    ),
}


def command_reply(manager: PausedSessionManager, name: str) -> Reply:
    """The command `name` of the table, served for `manager`."""
    model, operation = COMMANDS[name]
    return Reply(
        Subjects.command(name),
        "pauser",
        f"command {name}",
        partial(run_command, model=model, operation=partial(operation, manager)),
    )


async def build(resources: Resources) -> Sequence[Binding]:
    pool = await resources.database()
    control = await resources.bucket(CONTROL_BUCKET)
    manager = PausedSessionManager(PausedSessionStore(pool), resources.js, control)

    lifecycle = LifecycleWriter(manager.store.record_lifecycle)

    async def register(data: bytes) -> asyncio.Future[None] | None:
        """The event's batch, to be acked once it is committed (see LifecycleWriter)."""
        try:
            event = parse_agent_event(data)
        except ContractError:
            return None  # the detector dead-letters malformed events; one letter is enough
        if isinstance(event, SessionStarted | SessionEnded):
            return lifecycle.add(event)
        return None

    async def on_session_lifecycle(raw: Msg) -> None:
        await handle_durably(raw, manager.js, Subjects.AGENT_DLQ, partial(register, raw.data))

    return [
        Consume(
            CONSUMERS.pauser_detected,
            Intervention,
            manager.handle_detected,
            "Records each detected intervention and pauses its session.",
        ),
        ConsumeInOrder(CONSUMERS.pauser_sessions, on_session_lifecycle, skip=_not_lifecycle),
        Consume(
            CONSUMERS.pauser_warnings,
            InterventionWarned,
            manager.store.record_warning,
            "Records each warning given a session before a stop.",
        ),
        # The resume outbox: see PausedSessionManager.announce_missed_resumes.
        Every(RESUME_OUTBOX_EVERY_S, manager.announce_missed_resumes, "announcing missed resumes"),
        *(command_reply(manager, name) for name in COMMANDS),
    ]


def main() -> None:
    run_service("pauser", build)
