"""The fleet: the sessions the detector is watching, from its summaries (a NATS KV bucket)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from yokeflow_agent.contract import Identifier, SessionSummary

from ..deps import Authorised, FleetDep

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["fleet"], dependencies=Authorised)


class FleetView(BaseModel):
    sessions: list[SessionSummary]
    total: int  # sessions in the chosen states, before the limit
    ready: bool  # False until the watch has read the bucket once (an empty list is not news)


@router.get("/fleet", response_model=FleetView, name="list")
async def fleet(
    watch: FleetDep,
    project_id: Identifier | None = None,
    include: Annotated[Literal["running", "all"], Query()] = "running",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FleetView:
    """Sessions the detector is watching, nearest to a stop first, with their risk signals
    (from the detector's summaries: retry streak, error rate, time used, warnings).
    `running` leaves out ended and stopped sessions."""
    states = {"running"} if include == "running" else {"running", "stopped", "ended"}
    shown, total = watch.running(project_id, states, limit)
    return FleetView(sessions=shown, total=total, ready=watch.ready)
