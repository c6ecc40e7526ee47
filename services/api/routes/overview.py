"""What the detector has cost and how right it was: the overview's figures, and the warnings it
gave sessions one step before a stop."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from yokeflow_agent.contract import Identifier

from ..deps import Authorised, PoolDep, postgres
from ..overview import Overview, overview

__all__ = ["router"]

router = APIRouter(prefix="/api", dependencies=Authorised)


class Warning(BaseModel):
    """A warning (session_warnings) and whether its session was stopped afterwards anyway."""

    warning_id: str
    project_id: str
    session_id: str
    trigger: str
    reason: str
    advice: str
    event_seq: int
    detected_at: datetime
    recorded_at: datetime
    stopped_after: bool


class Warnings(BaseModel):
    warnings: list[Warning]
    total: int  # warnings in all, before the limit


@router.get("/warnings", tags=["warnings"], response_model=Warnings, name="list")
async def warnings(
    pool: PoolDep,
    project_id: Identifier | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Warnings:
    """Warnings given sessions one step before a stop (newest first), with how many there
    were in all and how many of those sessions were stopped afterwards anyway."""
    async with postgres():
        rows = await pool.fetch(
            """SELECT w.warning_id, w.project_id, w.session_id, w.trigger, w.reason, w.advice,
                      w.event_seq, w.detected_at, w.recorded_at, count(*) OVER () AS total,
                      EXISTS (SELECT 1 FROM paused_sessions ps
                              WHERE ps.project_id = w.project_id AND ps.session_id = w.session_id
                                AND ps.paused_at >= w.detected_at) AS stopped_after
               FROM session_warnings w WHERE ($1::text IS NULL OR w.project_id = $1)
               ORDER BY w.detected_at DESC, w.warning_id LIMIT $2""",
            project_id,
            limit,
        )
    total = int(rows[0]["total"]) if rows else 0
    return Warnings(warnings=[Warning.model_validate(dict(r)) for r in rows], total=total)


@router.get("/overview", tags=["overview"], response_model=Overview, name="get")
async def get_overview(
    pool: PoolDep,
    project_id: Identifier | None = None,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
) -> Overview:
    """What the last `days` days of interventions cost: interventions over time by trigger,
    time to resume (human and automatic), recovery outcomes, the projects and blockers that
    kept sessions paused longest, notification outcomes by channel; and how right the
    detector was: its stops, observed stops and false stops per project and trigger."""
    async with postgres():
        return await overview(pool, days, project_id)
