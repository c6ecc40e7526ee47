"""Commands the pauser serves over NATS request/reply, and the client the others call them with.

The API, the CLI, the orchestrator and recovery never touch the pauser's tables for writes:
they send one of these requests to `intervention.cmd.<name>` and get a CommandReply.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from yokeflow_agent.contract import ActingChannel, CommandReply, Identifier, Subjects, Text

__all__ = [
    "AcknowledgeRequest",
    "AlreadyResolvedError",
    "CommandFailed",
    "FalseStopRequest",
    "IdRequest",
    "InvalidRequestError",
    "ListRequest",
    "NextSessionRequest",
    "NotFoundError",
    "PauseRequest",
    "PauserClient",
    "PauserUnavailableError",
    "ResumeRequest",
    "SnoozeRequest",
    "describe_validation",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PauseRequest(_Request):
    project_id: Identifier
    session_id: Identifier
    reason: Text = Field(min_length=1, max_length=2000)
    paused_by: Text = Field(default="human", min_length=1, max_length=200)


def _names_someone(value: str, info: ValidationInfo) -> str:
    """A person's name: what a human's act is recorded under, so never blank."""
    if not value.strip():
        raise ValueError(f"{info.field_name} must name {_WHO[str(info.field_name)]}")
    return value.strip()


_WHO = {"resolved_by": "who resolved the blocker", "marked_by": "who marked the false stop"}
Who = Annotated[Text, Field(max_length=200), AfterValidator(_names_someone)]


class ResumeRequest(_Request):
    intervention_id: Identifier
    resolved_by: Who
    resolution_notes: Text = Field(default="", max_length=20000)
    # The human says the session was not stuck: the stop is marked a false stop (by
    # resolved_by, at the resume), with why in false_stop_note.
    false_stop: bool = False
    false_stop_note: Text = Field(default="", max_length=2000)


class FalseStopRequest(_Request):
    """Mark a stop a false stop after the fact: one resumed already (by a human or by
    recovery) or one observe mode recorded."""

    intervention_id: Identifier
    marked_by: Who
    note: Text = Field(default="", max_length=2000)


class _ActRequest(_Request):
    """A human's act on an incident. `project_id`, when given (a signed link, a Slack button),
    must be the intervention's project: the id in a click is only a lookup key."""

    intervention_id: Identifier
    by: Text = Field(min_length=1, max_length=200)
    via: ActingChannel = "api"
    project_id: Identifier | None = None

    @field_validator("by")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("by must name who acted")
        return value.strip()


class AcknowledgeRequest(_ActRequest):
    pass


class SnoozeRequest(_ActRequest):
    minutes: int = Field(default=60, ge=1, le=24 * 60)


class ListRequest(_Request):
    project_id: Identifier | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class IdRequest(_Request):
    intervention_id: Identifier


class NextSessionRequest(_Request):
    intervention_id: Identifier
    session_id: Identifier


def describe_validation(exc: ValidationError) -> str:
    """Pydantic's errors as one line, each naming its field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


class CommandFailed(RuntimeError):
    code = "internal"


class NotFoundError(CommandFailed):
    code = "not_found"


class AlreadyResolvedError(CommandFailed):
    code = "already_resolved"


class InvalidRequestError(CommandFailed):
    code = "invalid"


class PauserUnavailableError(CommandFailed):
    code = "unavailable"


_ERRORS: dict[str, type[CommandFailed]] = {
    cls.code: cls
    for cls in (NotFoundError, AlreadyResolvedError, InvalidRequestError, PauserUnavailableError)
}


class PauserClient:
    """Typed calls to the pauser; a failed command raises the matching CommandFailed."""

    def __init__(self, nc: Client, timeout: float = 10.0) -> None:
        self.nc = nc
        self.timeout = timeout

    async def _call(self, name: str, model: type[_Request], **fields: Any) -> Any:
        try:
            request = model(**fields)
        except ValidationError as exc:
            raise InvalidRequestError(describe_validation(exc)) from None
        try:
            msg = await self.nc.request(
                Subjects.command(name), request.model_dump_json().encode(), timeout=self.timeout
            )
        except NoRespondersError:
            raise PauserUnavailableError("the pauser service is not running") from None
        except NatsTimeout:
            raise PauserUnavailableError(f"the pauser did not answer {name} in time") from None
        reply = CommandReply.model_validate(json.loads(msg.data))
        if reply.ok:
            return reply.result
        assert reply.error is not None
        raise _ERRORS.get(reply.error.code, CommandFailed)(reply.error.message)

    async def ready(self) -> bool:
        """True once a pauser answers commands."""
        await self.get_active_pauses()
        return True

    async def pause_session(
        self, project_id: str, session_id: str, reason: str, paused_by: str = "human"
    ) -> Any:
        return await self._call(
            "pause_session",
            PauseRequest,
            project_id=project_id,
            session_id=session_id,
            reason=reason,
            paused_by=paused_by,
        )

    async def resume_session(
        self,
        intervention_id: str,
        resolved_by: str,
        resolution_notes: str = "",
        false_stop: bool = False,
        false_stop_note: str = "",
    ) -> Any:
        return await self._call(
            "resume_session",
            ResumeRequest,
            intervention_id=intervention_id,
            resolved_by=resolved_by,
            resolution_notes=resolution_notes,
            false_stop=false_stop,
            false_stop_note=false_stop_note,
        )

    async def mark_false_stop(self, intervention_id: str, marked_by: str, note: str = "") -> Any:
        return await self._call(
            "mark_false_stop",
            FalseStopRequest,
            intervention_id=intervention_id,
            marked_by=marked_by,
            note=note,
        )

    async def acknowledge(
        self, intervention_id: str, by: str, via: str = "api", project_id: str | None = None
    ) -> Any:
        """The intervention's row and whether this call was the transition (`changed`)."""
        return await self._call(
            "acknowledge",
            AcknowledgeRequest,
            intervention_id=intervention_id,
            by=by,
            via=via,
            project_id=project_id,
        )

    async def snooze(
        self,
        intervention_id: str,
        by: str,
        minutes: int = 60,
        via: str = "api",
        project_id: str | None = None,
    ) -> Any:
        return await self._call(
            "snooze",
            SnoozeRequest,
            intervention_id=intervention_id,
            by=by,
            via=via,
            project_id=project_id,
            minutes=minutes,
        )

    async def get_active_pauses(self, project_id: str | None = None) -> Any:
        return await self._call("get_active_pauses", ListRequest, project_id=project_id, limit=500)

    async def get_intervention_history(
        self, project_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> Any:
        return await self._call(
            "get_intervention_history",
            ListRequest,
            project_id=project_id,
            limit=limit,
            offset=offset,
        )

    async def get_intervention(self, intervention_id: str) -> Any:
        return await self._call("get_intervention", IdRequest, intervention_id=intervention_id)

    async def can_auto_resume(self, intervention_id: str) -> bool:
        return bool(await self._call("can_auto_resume", IdRequest, intervention_id=intervention_id))

    async def record_next_session(self, intervention_id: str, session_id: str) -> bool:
        return bool(
            await self._call(
                "record_next_session",
                NextSessionRequest,
                intervention_id=intervention_id,
                session_id=session_id,
            )
        )
