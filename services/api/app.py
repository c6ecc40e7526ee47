"""The REST API and the dashboard's server: reads from PostgreSQL, commands go to the pauser."""

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
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
from pydantic import BaseModel, Field, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yokeflow_agent.contract import (
    AUTO_RECOVERY_RESOLVER,
    SESSION_SUMMARY_BUCKET,
    Identifier,
    SessionSummary,
    Text,
)

from yokeflow_intervention.shared.bus import OPEN_BUS_WARNING, connect, is_open
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
from yokeflow_intervention.shared.provenance import notes_source
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
# The methods counted by name; any other (made up by a client) is counted as "other", so no
# client can add a metrics series that lives as long as the process.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The largest request body any route takes: a resume's 20,000 characters of notes, each up to
# 12 bytes as a JSON escape, is 240 KB; preferences are smaller. Anything larger is refused
# with 413 before it is read, whoever sends it.
MAX_BODY_BYTES = 1024 * 1024
UNAUTHORISED = "a valid bearer token is required"
TOO_LARGE = f"request bodies are limited to {MAX_BODY_BYTES} bytes"


class _TooLarge(Exception):
    """The body grew past MAX_BODY_BYTES while it was being read."""


class Guard:
    """The first thing every request meets, before any route reads its body: a body on a request
    without the token is refused (401) unread, a body over MAX_BODY_BYTES is refused (413) by its
    Content-Length, or as soon as a chunked one grows past it; the connection is closed, so the
    rest is never read. It also counts requests, with the method from a fixed set.

    Routes under a `signed` prefix are authenticated by a signature of their own (an action
    link's, Slack's) that only the route can check, over a body it caps itself (and audits)
    far below MAX_BODY_BYTES, so they pass here without the token."""

    def __init__(
        self,
        app: ASGIApp,
        token_ok: Callable[[bytes | None], bool],
        signed: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.token_ok = token_ok
        self.signed = signed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "other"
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        has_body = b"transfer-encoding" in headers or (length is not None and length != b"0")
        signed = str(scope["path"]).startswith(self.signed)
        if has_body and not signed and not self.token_ok(headers.get(b"authorization")):
            await self._refuse(send, method, 401, UNAUTHORISED, ((b"www-authenticate", b"Bearer"),))
            return
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await self._refuse(send, method, 413, TOO_LARGE)
            return
        read = 0
        started = False

        async def limited() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > MAX_BODY_BYTES:
                raise _TooLarge
            return message

        async def counted(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if read > MAX_BODY_BYTES:  # the route turned the overflow into an error of its own
                    raise _TooLarge
                started = True
                REQUESTS.labels(method, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, limited, counted)
        except _TooLarge:
            if not started:
                await self._refuse(send, method, 413, TOO_LARGE)

    @staticmethod
    async def _refuse(
        send: Send,
        method: str,
        status: int,
        detail: str,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        REQUESTS.labels(method, str(status)).inc()
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
    if out.get("resolved_by"):
        # Whose the notes are: the dashboard shows only a human's as notes.
        out["resolution_source"] = notes_source(out["resolved_by"])
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

    def token_ok(header: bytes | None) -> bool:
        """The `Authorization` header carries the token (constant-time), or no token is set."""
        token = settings.api_token
        if token is None:
            return True
        scheme, _, given = (header or b"").partition(b" ")
        expected = token.get_secret_value().encode()
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        """Every /api request needs `Authorization: Bearer <API_TOKEN>` when a token is set:
        reads return agent output, addresses and phone numbers too."""
        given = credentials.credentials.encode() if credentials is not None else b""
        if not token_ok(b"Bearer " + given):
            raise HTTPException(401, UNAUTHORISED, {"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)]
    # An EventSource cannot send a header: it presents a ticket, single-use and short-lived,
    # that a request with the token obtained (never the long-lived token in a URL).
    tickets: dict[str, float] = {}

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
        kept sessions paused longest, notification outcomes by channel; and how right the
        detector was: its stops, observed stops and false stops per project and trigger."""
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
                intervention_id,
                body.resolved_by,
                body.resolution_notes,
                body.false_stop,
                body.false_stop_note,
            )
        except CommandFailed as exc:
            raise _command_error(exc) from None
        return result

    @app.post(
        "/api/interventions/{intervention_id}/false-stop",
        tags=["interventions"],
        dependencies=guarded,
        response_model=FalseStopMark,
    )
    async def mark_false_stop(intervention_id: Identifier, body: FalseStopBody) -> FalseStopMark:
        """Mark a stop a false stop after the fact (resumed already, by a human or by recovery,
        or recorded by observe mode). The first mark stands: marking again returns it."""
        try:
            row: dict[str, Any] = await state.pauser.mark_false_stop(
                intervention_id, body.marked_by, body.note
            )
        except CommandFailed as exc:
            raise _command_error(exc) from None
        return FalseStopMark(intervention_id=row["id"], trigger=row["pause_type"], **row)

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
        # Ready or not, an open bus is worth saying where operators look: it is not a fault of
        # this process, so it does not make the API unready.
        warnings = [OPEN_BUS_WARNING] if is_open(state.nc) else []
        return {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            "warnings": warnings,
        }

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    mount_action_links(app, settings, lambda: state.pool, lambda: state.pauser)
    mount_slack(app, settings, lambda: state.pool, lambda: state.pauser)

    # Outermost (added last): nothing, not even CORS, reads a body before the guard has looked.
    signed = ("/actions/", "/api/integrations/slack/")
    app.add_middleware(Guard, token_ok=token_ok, signed=signed)
    if (DASHBOARD / "index.html").is_file():
        app.mount("/assets", StaticFiles(directory=DASHBOARD / "assets"), name="assets")

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(DASHBOARD / "index.html")

    return app
