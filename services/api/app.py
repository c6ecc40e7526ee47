"""The API's assembly: its resources (opened once by the lifespan), the routers of
`routes/`, the signed routes (action links, Slack), the `Guard` outermost and the dashboard.
Routes live in `routes/`, what they depend on in `deps.py`."""

import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yokeflow_agent.contract import SESSION_SUMMARY_BUCKET

from yokeflow_intervention.shared.bus import connect
from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.settings import Settings

from .actions import mount_action_links
from .deps import UNAUTHORISED, ApiState, token_ok
from .events import EventHub
from .fleet import Fleet
from .routes import ROUTERS
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


def operation_id(route: APIRoute) -> str:
    """`<tag>-<function>` (interventions-resume): the generated client's names for the calls."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the API's resources once, for every route (through `deps`), and close them."""
    state: ApiState = app.state.api
    state.pool = await asyncpg.create_pool(app.state.database_url, min_size=1, max_size=10)
    state.nc = await connect(app.state.nats_url, "yokeflow-api")
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


def create_api(settings: Settings, nats_url: str, database_url: str) -> FastAPI:
    """The app: its resources (opened by the lifespan), the routers, the signed routes, the
    guard outermost, and the dashboard."""
    app = FastAPI(
        title="YokeFlow Intervention API",
        version="1.0.0",
        description="Active and past interventions, resume with notes, notification preferences.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    state = ApiState(settings)
    app.state.api = state
    app.state.nats_url = nats_url
    app.state.database_url = database_url
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for router in ROUTERS:
        app.include_router(router)
    mount_action_links(app, settings, lambda: state.pool, lambda: state.pauser)
    mount_slack(app, settings, lambda: state.pool, lambda: state.pauser)

    # Outermost (added last): nothing, not even CORS, reads a body before the guard has looked.
    signed = ("/actions/", "/api/integrations/slack/")
    app.add_middleware(Guard, token_ok=functools.partial(token_ok, settings), signed=signed)
    if (DASHBOARD / "index.html").is_file():
        app.mount("/assets", StaticFiles(directory=DASHBOARD / "assets"), name="assets")

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(DASHBOARD / "index.html")

    return app
