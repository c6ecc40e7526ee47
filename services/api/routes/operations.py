"""What operators and orchestrators ask: alive, ready (NATS and PostgreSQL answer), metrics."""

import asyncio

import asyncpg
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from yokeflow_intervention.shared.bus import OPEN_BUS_WARNING, is_open

from ..deps import StateDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready" or "unavailable"
    checks: dict[str, bool]  # nats, postgres
    warnings: list[str]  # worth saying, not faults of this process (an open bus)


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness)
async def readyz(state: StateDep, response: Response) -> Readiness:
    checks = {"nats": state.nc.is_connected}
    try:
        await asyncio.wait_for(state.pool.fetchval("SELECT 1"), 2)
        checks["postgres"] = True
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        checks["postgres"] = False
    ready = all(checks.values())
    response.status_code = 200 if ready else 503
    # Ready or not, an open bus is worth saying where operators look: it is not a fault of
    # this process, so it does not make the API unready.
    warnings = [OPEN_BUS_WARNING] if is_open(state.nc) else []
    return Readiness(status="ready" if ready else "unavailable", checks=checks, warnings=warnings)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
