"""The REST API and the dashboard's server: reads from PostgreSQL, commands go to the pauser."""

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from nats.aio.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, Field
from yokeflow_agent.contract import SESSION_SUMMARY_BUCKET, Identifier, SessionSummary, Text

from yokeflow_intervention.shared.bus import connect
from yokeflow_intervention.shared.commands import (
    AlreadyResolvedError,
    CommandFailed,
    InvalidRequestError,
    NotFoundError,
    PauserClient,
    PauserUnavailableError,
)
from yokeflow_intervention.shared.preferences import (
    NotificationPreferences,
    load_preferences,
    redact_url,
    save_preferences,
)
from yokeflow_intervention.shared.settings import Settings

from .actions import mount_action_links
from .events import EventHub
from .fleet import Fleet
from .overview import Overview, overview
from .slack import mount_slack

__all__ = ["DASHBOARD", "create_api"]

# The built dashboard ships inside this package (web/ builds into it), so an installed copy and
# the container image serve it wherever they are installed.
DASHBOARD = Path(str(resources.files(__package__ or __name__) / "dashboard"))
REQUESTS = Counter("yokeflow_api_requests_total", "API requests", ["method", "status"])


class ResumeBody(BaseModel):
    resolved_by: Text = Field(min_length=1, max_length=200)
    resolution_notes: Text = Field(min_length=1, max_length=20000)


class AcknowledgeBody(BaseModel):
    acknowledged_by: Text = Field(min_length=1, max_length=200)
    via: Literal["api", "cli", "dashboard"] = "api"


class PauseBody(BaseModel):
    reason: Text = Field(min_length=1, max_length=2000)
    paused_by: Text = Field(default="human", min_length=1, max_length=200)


class FleetView(BaseModel):
    sessions: list[SessionSummary]
    total: int  # sessions in the chosen states, before the limit
    ready: bool  # False until the watch has read the bucket once (an empty list is not news)


class State:
    pool: asyncpg.Pool
    nc: Client
    pauser: PauserClient
    hub: EventHub
    fleet: Fleet


def _json_row(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in dict(row).items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif key in (
            "blocker_info",
            "retry_stats",
            "intervention",
            "action_details",
        ) and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


def _masked(preferences: NotificationPreferences) -> dict[str, Any]:
    """Preferences as shown: the webhook URL (a secret: whoever has it can post) masked."""
    shown = preferences.model_dump()
    if shown.get("webhook_url"):
        shown["webhook_url"] = redact_url(shown["webhook_url"])
    if shown.get("pagerduty_routing_key"):
        shown["pagerduty_routing_key"] = "****" + shown["pagerduty_routing_key"][-4:]
    return shown


def create_api(settings: Settings, nats_url: str, database_url: str) -> FastAPI:
    state = State()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
        state.nc = await connect(nats_url, "yokeflow-api")
        state.pauser = PauserClient(state.nc, timeout=10)
        state.hub = EventHub(state.nc)
        await state.hub.start()
        # The dashboards hear "the fleet changed" (at most once a second), then ask /api/fleet.
        state.fleet = Fleet(lambda: state.hub.broadcast("intervention.fleet", "{}"))
        state.fleet.start(await state.nc.jetstream().key_value(SESSION_SUMMARY_BUCKET))
        yield
        await state.fleet.stop()
        await state.hub.stop()
        await state.nc.close()
        await state.pool.close()

    app = FastAPI(
        title="YokeFlow Intervention API",
        version="1.0.0",
        description="Active and past interventions, resume with notes, notification preferences.",
        lifespan=lifespan,
    )
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])  # fmt: skip

    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        """Every /api request needs `Authorization: Bearer <API_TOKEN>` when a token is set:
        reads return agent output, addresses and phone numbers too."""
        token = settings.api_token
        if token is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(authorised)]
    # An EventSource cannot send a header: it presents a ticket, single-use and short-lived,
    # that a request with the token obtained (never the long-lived token in a URL).
    tickets: dict[str, float] = {}

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    def _command_error(exc: CommandFailed) -> HTTPException:
        if isinstance(exc, NotFoundError):
            return HTTPException(404, str(exc))
        if isinstance(exc, AlreadyResolvedError):
            return HTTPException(409, str(exc))
        if isinstance(exc, InvalidRequestError):
            return HTTPException(422, str(exc))
        if isinstance(exc, PauserUnavailableError):
            return HTTPException(503, str(exc))
        return HTTPException(500, "the pauser failed; see its log")

    async def _query(sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await state.pool.fetch(sql, *args)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise HTTPException(503, f"PostgreSQL is unavailable: {type(exc).__name__}") from None
        return rows

    @app.get("/api/interventions/active", tags=["interventions"], dependencies=guarded)
    async def active(project_id: Identifier | None = None) -> dict[str, Any]:
        rows = await _query(
            "SELECT * FROM active_interventions WHERE ($1::text IS NULL OR project_id = $1)",
            project_id,
        )
        return {"interventions": [_json_row(r) for r in rows], "count": len(rows)}

    @app.get("/api/interventions/history", tags=["interventions"], dependencies=guarded)
    async def history(
        project_id: Identifier | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        rows = await _query(
            """SELECT *, count(*) OVER () AS total FROM intervention_history
               WHERE ($1::text IS NULL OR project_id = $1)
               ORDER BY paused_at DESC, id LIMIT $2 OFFSET $3""",
            project_id, limit, offset,
        )  # fmt: skip
        total = rows[0]["total"] if rows else 0
        items = [{k: v for k, v in _json_row(r).items() if k != "total"} for r in rows]
        return {"interventions": items, "total": total, "limit": limit, "offset": offset}

    @app.get("/api/warnings", tags=["warnings"], dependencies=guarded)
    async def warnings(
        project_id: Identifier | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Warnings given sessions one step before a stop (newest first), with how many there
        were in all and how many of those sessions were stopped afterwards anyway."""
        rows = await _query(
            """SELECT w.*, count(*) OVER () AS total,
                      EXISTS (SELECT 1 FROM paused_sessions ps
                              WHERE ps.project_id = w.project_id AND ps.session_id = w.session_id
                                AND ps.paused_at >= w.detected_at) AS stopped_after
               FROM session_warnings w WHERE ($1::text IS NULL OR w.project_id = $1)
               ORDER BY w.detected_at DESC, w.warning_id LIMIT $2""",
            project_id, limit,
        )  # fmt: skip
        total = rows[0]["total"] if rows else 0
        items = [{k: v for k, v in _json_row(r).items() if k != "total"} for r in rows]
        return {"warnings": items, "total": total}

    @app.get("/api/overview", tags=["overview"], dependencies=guarded, response_model=Overview)
    async def get_overview(
        project_id: Identifier | None = None,
        days: Annotated[int, Query(ge=1, le=365)] = 7,
    ) -> Overview:
        """What the last `days` days of interventions cost: interventions over time by trigger,
        time to resume (human and automatic), recovery outcomes, the projects and blockers that
        kept sessions paused longest, notification outcomes by channel."""
        try:
            return await overview(state.pool, days, project_id)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise HTTPException(503, f"PostgreSQL is unavailable: {type(exc).__name__}") from None

    @app.get("/api/fleet", tags=["fleet"], dependencies=guarded, response_model=FleetView)
    async def fleet(
        project_id: Identifier | None = None,
        include: Annotated[Literal["running", "all"], Query()] = "running",
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> FleetView:
        """Sessions the detector is watching, nearest to a stop first, with their risk signals
        (from the detector's summaries: retry streak, error rate, time used, warnings).
        `running` leaves out ended and stopped sessions."""
        states = {"running"} if include == "running" else {"running", "stopped", "ended"}
        shown, total = state.fleet.running(project_id, states, limit)
        return FleetView(sessions=shown, total=total, ready=state.fleet.ready)

    @app.get("/api/interventions/{intervention_id}", tags=["interventions"], dependencies=guarded)
    async def detail(intervention_id: Identifier) -> dict[str, Any]:
        rows = await _query("SELECT * FROM paused_sessions WHERE id = $1", intervention_id)
        if not rows:
            raise HTTPException(404, f"unknown intervention {intervention_id!r}")
        actions = await _query(
            """SELECT id, action_type, action_status, action_details, created_at
               FROM intervention_actions WHERE paused_session_id = $1 ORDER BY created_at, id""",
            intervention_id,
        )
        deliveries = await _query(
            """SELECT channel, recipient, status, detail, attempts, updated_at
               FROM notification_deliveries WHERE intervention_id = $1 ORDER BY id""",
            intervention_id,
        )
        return {**_json_row(rows[0]), "actions": [_json_row(a) for a in actions],
                "notifications": [_json_row(d) for d in deliveries]}  # fmt: skip

    @app.post(
        "/api/interventions/{intervention_id}/resume", tags=["interventions"], dependencies=guarded
    )
    async def resume(intervention_id: Identifier, body: ResumeBody) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await state.pauser.resume_session(
                intervention_id, body.resolved_by, body.resolution_notes
            )
        except CommandFailed as exc:
            raise _command_error(exc) from None
        return result

    @app.post(
        "/api/interventions/{intervention_id}/acknowledge",
        tags=["interventions"],
        dependencies=guarded,
    )
    async def acknowledge(intervention_id: Identifier, body: AcknowledgeBody) -> dict[str, Any]:
        """Take the incident: its repeats and escalation stop, and every channel shows who.
        Idempotent: `changed` is false when someone had acknowledged it before (named in
        `acknowledged_by`)."""
        try:
            result: dict[str, Any] = await state.pauser.acknowledge(
                intervention_id, body.acknowledged_by, body.via
            )
        except CommandFailed as exc:
            raise _command_error(exc) from None
        return result

    @app.post(
        "/api/projects/{project_id}/sessions/{session_id}/pause",
        tags=["sessions"],
        dependencies=guarded,
    )
    async def pause(
        project_id: Identifier, session_id: Identifier, body: PauseBody
    ) -> dict[str, Any]:
        """Pause a running session by hand. A session is (project, session): ids are chosen by
        agents, so one never names another project's session."""
        try:
            result: dict[str, Any] = await state.pauser.pause_session(
                project_id, session_id, body.reason, body.paused_by
            )
        except CommandFailed as exc:
            raise _command_error(exc) from None
        return result

    @app.get("/api/projects", tags=["projects"], dependencies=guarded)
    async def projects() -> dict[str, Any]:
        rows = await _query(
            """SELECT p.id, p.created_at,
                      count(ps.id) FILTER (WHERE NOT ps.resolved) AS active,
                      count(ps.id) AS interventions
               FROM projects p LEFT JOIN paused_sessions ps ON ps.project_id = p.id
               GROUP BY p.id ORDER BY p.id"""
        )
        return {"projects": [_json_row(r) for r in rows]}

    @app.get(
        "/api/projects/{project_id}/notifications/preferences",
        tags=["projects"],
        dependencies=guarded,
    )
    async def get_preferences(project_id: Identifier) -> dict[str, Any]:
        stored = await load_preferences(state.pool, project_id)
        preferences = stored or NotificationPreferences.from_settings(settings)
        return {"project_id": project_id, "source": "project" if stored else "defaults",
                "preferences": _masked(preferences)}  # fmt: skip

    @app.post(
        "/api/projects/{project_id}/notifications/preferences",
        tags=["projects"],
        dependencies=guarded,
    )
    async def set_preferences(
        project_id: Identifier, preferences: NotificationPreferences
    ) -> dict[str, Any]:
        stored = await load_preferences(state.pool, project_id)
        if (
            stored is not None
            and stored.webhook_url
            and preferences.webhook_url == redact_url(stored.webhook_url)
        ):
            # The form sent back the masked URL it was shown: keep the stored one.
            preferences = preferences.model_copy(update={"webhook_url": stored.webhook_url})
        key = preferences.pagerduty_routing_key
        if key is not None and key.startswith("****"):
            if (
                stored is None
                or not stored.pagerduty_routing_key
                or key != _masked(stored).get("pagerduty_routing_key")
            ):
                raise HTTPException(422, "pagerduty_routing_key: send the routing key itself")
            preferences = preferences.model_copy(
                update={"pagerduty_routing_key": stored.pagerduty_routing_key}
            )
        await save_preferences(state.pool, project_id, preferences)
        return {"project_id": project_id, "source": "project", "preferences": _masked(preferences)}

    @app.post("/api/events/ticket", tags=["events"], dependencies=guarded)
    async def events_ticket() -> dict[str, Any]:
        """A ticket for one connection to /api/events, valid for 60 seconds."""
        now = time.monotonic()
        for expired in [t for t, until in tickets.items() if until < now]:
            del tickets[expired]
        ticket = secrets.token_urlsafe(24)
        tickets[ticket] = now + 60
        return {"ticket": ticket, "expires_in": 60}

    @app.get("/api/events", tags=["events"], response_class=StreamingResponse)
    async def events(request: Request, ticket: str | None = None) -> StreamingResponse:
        """Server-sent events: every message on intervention.> as it happens. With a token
        configured, pass `?ticket=` from POST /api/events/ticket (or the bearer header)."""
        if settings.api_token is not None:
            until = tickets.pop(ticket, 0.0) if ticket else 0.0
            if until < time.monotonic():
                authorised(await bearer(request))
        listener = state.hub.listen()

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while not await request.is_disconnected():
                    item = await listener.next(timeout=15)
                    if listener.dropped:
                        # Fell behind: end the stream; the browser's EventSource reconnects.
                        yield b"event: dropped\ndata: {}\n\n"
                        return
                    if item is None:
                        yield b": keep-alive\n\n"
                        continue
                    subject, data = item
                    kind = subject.split(".")[1]
                    yield f"event: {kind}\ndata: {data}\n\n".encode()
            finally:
                state.hub.forget(listener)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(response: Response) -> dict[str, Any]:
        checks = {"nats": state.nc.is_connected}
        try:
            await asyncio.wait_for(state.pool.fetchval("SELECT 1"), 2)
            checks["postgres"] = True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            checks["postgres"] = False
        ready = all(checks.values())
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "unavailable", "checks": checks}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    mount_action_links(app, settings, lambda: state.pool, lambda: state.pauser)
    mount_slack(app, settings, lambda: state.pool, lambda: state.pauser)

    if (DASHBOARD / "index.html").is_file():
        app.mount("/assets", StaticFiles(directory=DASHBOARD / "assets"), name="assets")

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(DASHBOARD / "index.html")

    return app
