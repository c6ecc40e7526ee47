"""The intervention read model: one typed row and one set of queries, read by the API (directly)
and by the CLI (through the pauser's commands), so both show the same columns the same way.

Queries name their columns from the models (never `SELECT *`): a column a migration adds stays
out of every answer until a model says what it is."""

import json
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, computed_field, field_validator
from yokeflow_agent.contract import RetryStats

from .provenance import NotesSource, notes_source

__all__ = [
    "BlockerInfo",
    "Intervention",
    "InterventionAction",
    "InterventionDetail",
    "NotificationDelivery",
    "get_intervention",
    "intervention_actions",
    "intervention_deliveries",
    "list_interventions",
]


def _parsed(value: Any) -> Any:
    """jsonb arrives as text unless the pool has a codec for it; the models hold the value."""
    return json.loads(value) if isinstance(value, str) else value


class BlockerInfo(BaseModel):
    """What the pauser kept of the detected intervention to show a human (agent text all)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    blocker_type: str | None = None
    error_excerpt: str = ""
    suggested_recovery: str | None = None
    workspace: str | None = None
    client: str | None = None


class Intervention(BaseModel):
    """A stop (paused_sessions), as operators see it. `resolution_source` says whose the
    resolution notes are: the dashboard shows only a human's as notes."""

    id: str
    session_id: str
    project_id: str
    pause_reason: str
    pause_type: str
    blocker_info: BlockerInfo
    retry_stats: RetryStats
    current_task_id: str | None
    current_task_description: str | None
    paused_at: datetime
    resolved: bool
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_notes: str | None
    can_auto_resume: bool
    blocker_type: str | None
    event_seq: int | None
    detected_at: datetime | None
    intervention: dict[str, Any]
    resume_context: str | None
    next_session_id: str | None
    resume_announced_at: datetime | None
    mode: Literal["enforce", "observe"]
    false_stop: bool
    false_stop_by: str | None
    false_stop_at: datetime | None
    false_stop_note: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_via: str | None
    snoozed_until: datetime | None

    _json = field_validator("blocker_info", "retry_stats", "intervention", mode="before")(
        staticmethod(_parsed)
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolution_source(self) -> NotesSource | None:
        return notes_source(self.resolved_by) if self.resolved_by else None


class InterventionAction(BaseModel):
    """One step in an intervention's audit trail (paused, notification, recovery, resumed...)."""

    id: int
    action_type: str
    action_status: str
    action_details: dict[str, Any]
    created_at: datetime

    _json = field_validator("action_details", mode="before")(staticmethod(_parsed))


class NotificationDelivery(BaseModel):
    """How telling one recipient on one channel went."""

    channel: str
    recipient: str
    status: str
    detail: str
    attempts: int
    updated_at: datetime


class InterventionDetail(Intervention):
    actions: list[InterventionAction]
    notifications: list[NotificationDelivery]


def _columns(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


_VIEWS = {True: "active_interventions", False: "intervention_history"}


async def list_interventions(
    pool: asyncpg.Pool, project_id: str | None, active_only: bool, limit: int, offset: int = 0
) -> tuple[list[Intervention], int]:
    """A page of active (or resolved) interventions, newest first, and how many there are."""
    rows = await pool.fetch(
        f"""SELECT {_columns(Intervention)}, count(*) OVER () AS total FROM {_VIEWS[active_only]}
            WHERE ($1::text IS NULL OR project_id = $1)
            ORDER BY paused_at DESC, id LIMIT $2 OFFSET $3""",  # noqa: S608 - fixed names
        project_id,
        limit,
        offset,
    )
    total = int(rows[0]["total"]) if rows else 0
    return [Intervention.model_validate(dict(r)) for r in rows], total


async def get_intervention(pool: asyncpg.Pool, intervention_id: str) -> Intervention | None:
    row = await pool.fetchrow(
        f"SELECT {_columns(Intervention)} FROM paused_sessions WHERE id = $1",  # noqa: S608
        intervention_id,
    )
    return None if row is None else Intervention.model_validate(dict(row))


async def intervention_actions(
    pool: asyncpg.Pool, intervention_id: str
) -> list[InterventionAction]:
    rows = await pool.fetch(
        f"""SELECT {_columns(InterventionAction)} FROM intervention_actions
            WHERE paused_session_id = $1 ORDER BY created_at, id""",  # noqa: S608 - fixed names
        intervention_id,
    )
    return [InterventionAction.model_validate(dict(r)) for r in rows]


async def intervention_deliveries(
    pool: asyncpg.Pool, intervention_id: str
) -> list[NotificationDelivery]:
    rows = await pool.fetch(
        f"""SELECT {_columns(NotificationDelivery)} FROM notification_deliveries
            WHERE intervention_id = $1 ORDER BY id""",  # noqa: S608 - fixed names
        intervention_id,
    )
    return [NotificationDelivery.model_validate(dict(r)) for r in rows]
