"""The live event stream (server-sent events of every message on intervention.>) and the
tickets an EventSource, which cannot send a header, presents instead of the token."""

import secrets
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ..deps import Authorised, HubDep, StateDep, authorised, bearer

__all__ = ["router"]

router = APIRouter(prefix="/api/events", tags=["events"])
TICKET_SECONDS = 60


class EventTicket(BaseModel):
    ticket: str
    expires_in: int  # seconds


@router.post("/ticket", dependencies=Authorised, response_model=EventTicket, name="ticket")
async def events_ticket(state: StateDep) -> EventTicket:
    """A ticket for one connection to /api/events, valid for 60 seconds."""
    now = time.monotonic()
    for expired in [t for t, until in state.tickets.items() if until < now]:
        del state.tickets[expired]
    ticket = secrets.token_urlsafe(24)
    state.tickets[ticket] = now + TICKET_SECONDS
    return EventTicket(ticket=ticket, expires_in=TICKET_SECONDS)


@router.get("", response_class=StreamingResponse, name="stream")
async def events(
    request: Request, state: StateDep, hub: HubDep, ticket: str | None = None
) -> StreamingResponse:
    """Server-sent events: every message on intervention.> as it happens. With a token
    configured, pass `?ticket=` from POST /api/events/ticket (or the bearer header)."""
    if state.settings.api_token is not None:
        until = state.tickets.pop(ticket, 0.0) if ticket else 0.0
        if until < time.monotonic():
            authorised(state.settings, await bearer(request))
    listener = hub.listen()

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
            hub.forget(listener)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
