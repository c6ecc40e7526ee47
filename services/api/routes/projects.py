"""Projects: each with its count of interventions, and pausing one of its sessions by hand."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from yokeflow_agent.contract import Identifier, Text

from yokeflow_intervention.shared.interventions import Intervention

from ..deps import Authorised, PauserDep, PoolDep, command, postgres

__all__ = ["router"]

router = APIRouter(prefix="/api/projects", dependencies=Authorised)


class ProjectSummary(BaseModel):
    id: str
    created_at: datetime
    active: int  # interventions not yet resolved
    interventions: int  # in all


class Projects(BaseModel):
    projects: list[ProjectSummary]


class PauseBody(BaseModel):
    reason: Text = Field(min_length=1, max_length=2000)
    paused_by: Text = Field(default="human", min_length=1, max_length=200)


@router.get("", tags=["projects"], response_model=Projects, name="list")
async def projects(pool: PoolDep) -> Projects:
    async with postgres():
        rows = await pool.fetch(
            """SELECT p.id, p.created_at,
                      count(ps.id) FILTER (WHERE NOT ps.resolved) AS active,
                      count(ps.id) AS interventions
               FROM projects p LEFT JOIN paused_sessions ps ON ps.project_id = p.id
               GROUP BY p.id ORDER BY p.id"""
        )
    return Projects(projects=[ProjectSummary.model_validate(dict(r)) for r in rows])


@router.post(
    "/{project_id}/sessions/{session_id}/pause", tags=["sessions"], response_model=Intervention
)
async def pause(
    pauser: PauserDep, project_id: Identifier, session_id: Identifier, body: PauseBody
) -> Intervention:
    """Pause a running session by hand. A session is (project, session): ids are chosen by
    agents, so one never names another project's session."""
    row = await command(
        lambda: pauser.pause_session(project_id, session_id, body.reason, body.paused_by)
    )
    return Intervention.model_validate(row)
