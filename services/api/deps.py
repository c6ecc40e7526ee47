"""What the API's routes depend on, as `Annotated` dependencies: the settings, the PostgreSQL
pool, the pauser client, the event hub, the fleet watch and the auth guard. The app opens the
resources once (its lifespan) and keeps them on `app.state`; a route names what it needs in its
signature, so it can be read (and tested) without the app that assembles it."""

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import asyncpg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client

from yokeflow_intervention.shared.commands import (
    AlreadyResolvedError,
    CommandFailed,
    InvalidRequestError,
    NotFoundError,
    PauserClient,
    PauserUnavailableError,
)
from yokeflow_intervention.shared.settings import Settings

from .events import EventHub
from .fleet import Fleet

__all__ = [
    "UNAUTHORISED",
    "ApiState",
    "Authorised",
    "FleetDep",
    "HubDep",
    "PauserDep",
    "PoolDep",
    "SettingsDep",
    "StateDep",
    "authorised",
    "bearer",
    "command",
    "postgres",
    "token_ok",
]

UNAUTHORISED = "a valid bearer token is required"
T = TypeVar("T")


@dataclass
class ApiState:
    """The API's resources: `settings` from the start, the rest opened by the lifespan.
    `tickets` are the event stream's (an EventSource cannot send a header: it presents a
    ticket, single-use and short-lived, that a request with the token obtained)."""

    settings: Settings
    pool: asyncpg.Pool = field(init=False)
    nc: Client = field(init=False)
    pauser: PauserClient = field(init=False)
    hub: EventHub = field(init=False)
    fleet: Fleet = field(init=False)
    tickets: dict[str, float] = field(default_factory=dict)


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_pool(state: StateDep) -> asyncpg.Pool:
    return state.pool


def get_pauser(state: StateDep) -> PauserClient:
    return state.pauser


def get_hub(state: StateDep) -> EventHub:
    return state.hub


def get_fleet(state: StateDep) -> Fleet:
    return state.fleet


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
PauserDep = Annotated[PauserClient, Depends(get_pauser)]
HubDep = Annotated[EventHub, Depends(get_hub)]
FleetDep = Annotated[Fleet, Depends(get_fleet)]

bearer = HTTPBearer(auto_error=False)


def token_ok(settings: Settings, header: bytes | None) -> bool:
    """The `Authorization` header carries the token (constant-time), or no token is set."""
    token = settings.api_token
    if token is None:
        return True
    scheme, _, given = (header or b"").partition(b" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected)


def authorised(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Every /api request needs `Authorization: Bearer <API_TOKEN>` when a token is set:
    reads return agent output, addresses and phone numbers too."""
    given = credentials.credentials.encode() if credentials is not None else b""
    if not token_ok(settings, b"Bearer " + given):
        raise HTTPException(401, UNAUTHORISED, {"WWW-Authenticate": "Bearer"})


# A router's `dependencies=Authorised`: every route on it is guarded.
Authorised = [Depends(authorised)]


@asynccontextmanager
async def postgres() -> AsyncIterator[None]:
    """A lost database is the client's 503 (retry later), not a 500 (a bug)."""
    try:
        yield
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise HTTPException(503, f"PostgreSQL is unavailable: {type(exc).__name__}") from None


async def command(call: Callable[[], Awaitable[T]]) -> T:
    """A pauser command, its failures as the HTTP statuses a client can act on."""
    try:
        return await call()
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except AlreadyResolvedError as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidRequestError as exc:
        raise HTTPException(422, str(exc)) from None
    except PauserUnavailableError as exc:
        raise HTTPException(503, str(exc)) from None
    except CommandFailed:
        raise HTTPException(500, "the pauser failed; see its log") from None
