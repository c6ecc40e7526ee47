"""Interventions: the active and past stops, one in full, and the commands a human gives one
(resume, mark a false stop, acknowledge). Reads come from PostgreSQL through the shared read
model; commands go to the pauser, which owns the rows."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, field_validator
from yokeflow_agent.contract import AUTO_RECOVERY_RESOLVER, Identifier, Text

from yokeflow_intervention.shared.interventions import (
    Intervention,
    InterventionDetail,
    get_intervention,
    intervention_actions,
    intervention_deliveries,
    list_interventions,
)

from ..deps import Authorised, PauserDep, PoolDep, command, postgres

__all__ = ["router"]

router = APIRouter(prefix="/api/interventions", tags=["interventions"], dependencies=Authorised)


class ActiveInterventions(BaseModel):
    interventions: list[Intervention]
    count: int


class InterventionHistory(BaseModel):
    interventions: list[Intervention]
    total: int  # resolved interventions in all, before the page
    limit: int
    offset: int


class ResumeBody(BaseModel):
    resolved_by: Text = Field(min_length=1, max_length=200)
    resolution_notes: Text = Field(min_length=1, max_length=20000)
    # The session was not stuck: the stop is marked a false stop (by resolved_by), counted per
    # trigger and project on the overview, and the resume says so (`false_stop`).
    false_stop: bool = False
    false_stop_note: Text = Field(default="", max_length=2000)

    @field_validator("resolved_by")
    @classmethod
    def _a_person(cls, value: str) -> str:
        """Automatic recovery's name is not a person's: notes under it are shown quoted, as
        what an agent's processes said, so no one resumes under it by hand."""
        if value.strip() == AUTO_RECOVERY_RESOLVER:
            raise ValueError(f"{AUTO_RECOVERY_RESOLVER!r} is reserved for automatic recovery")
        return value


class FalseStopBody(BaseModel):
    marked_by: Text = Field(min_length=1, max_length=200)
    note: Text = Field(default="", max_length=2000)


class FalseStopMark(BaseModel):
    """A stop as marked: who said it was a false stop, when, and why."""

    intervention_id: str
    project_id: str
    trigger: str
    mode: Literal["enforce", "observe"]
    false_stop: bool
    false_stop_by: str | None
    false_stop_at: datetime | None
    false_stop_note: str | None


class AcknowledgeBody(BaseModel):
    acknowledged_by: Text = Field(min_length=1, max_length=200)
    via: Literal["api", "cli", "dashboard"] = "api"


class Acknowledged(Intervention):
    changed: bool  # false when someone had acknowledged it before (named in acknowledged_by)


@router.get("/active", response_model=ActiveInterventions)
async def active(pool: PoolDep, project_id: Identifier | None = None) -> ActiveInterventions:
    async with postgres():
        rows, _ = await list_interventions(pool, project_id, True, limit=100_000)
    return ActiveInterventions(interventions=rows, count=len(rows))


@router.get("/history", response_model=InterventionHistory)
async def history(
    pool: PoolDep,
    project_id: Identifier | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> InterventionHistory:
    async with postgres():
        rows, total = await list_interventions(pool, project_id, False, limit, offset)
    return InterventionHistory(interventions=rows, total=total, limit=limit, offset=offset)


@router.get("/{intervention_id}", response_model=InterventionDetail)
async def detail(pool: PoolDep, intervention_id: Identifier) -> InterventionDetail:
    async with postgres():
        row = await get_intervention(pool, intervention_id)
        if row is None:
            raise HTTPException(404, f"unknown intervention {intervention_id!r}")
        actions = await intervention_actions(pool, intervention_id)
        deliveries = await intervention_deliveries(pool, intervention_id)
    return InterventionDetail(
        **row.model_dump(exclude={"resolution_source"}), actions=actions, notifications=deliveries
    )


@router.post("/{intervention_id}/resume", response_model=Intervention)
async def resume(pauser: PauserDep, intervention_id: Identifier, body: ResumeBody) -> Intervention:
    row = await command(
        lambda: pauser.resume_session(
            intervention_id,
            body.resolved_by,
            body.resolution_notes,
            body.false_stop,
            body.false_stop_note,
        )
    )
    return Intervention.model_validate(row)


@router.post("/{intervention_id}/false-stop", response_model=FalseStopMark)
async def mark_false_stop(
    pauser: PauserDep, intervention_id: Identifier, body: FalseStopBody
) -> FalseStopMark:
    """Mark a stop a false stop after the fact (resumed already, by a human or by recovery,
    or recorded by observe mode). The first mark stands: marking again returns it."""
    row = await command(lambda: pauser.mark_false_stop(intervention_id, body.marked_by, body.note))
    return FalseStopMark(intervention_id=row["id"], trigger=row["pause_type"], **row)


@router.post("/{intervention_id}/acknowledge", response_model=Acknowledged)
async def acknowledge(
    pauser: PauserDep, intervention_id: Identifier, body: AcknowledgeBody
) -> Acknowledged:
    """Take the incident: its repeats and escalation stop, and every channel shows who.
    Idempotent: `changed` is false when someone had acknowledged it before (named in
    `acknowledged_by`)."""
    row = await command(lambda: pauser.acknowledge(intervention_id, body.acknowledged_by, body.via))
    return Acknowledged.model_validate(row)
