"""Pauser service: intervention.detected in, durable pause out; serves the pause commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from faststream import FastStream
from faststream.nats import NatsMessage
from nats.aio.msg import Msg
from pydantic import BaseModel
from yokeflow_agent.contract import (
    CONSUMERS,
    CONTROL_BUCKET,
    ContractError,
    Intervention,
    InterventionWarned,
    SessionEnded,
    SessionStarted,
    Subjects,
    parse_agent_event,
)

from yokeflow_intervention.shared.bus import wait_until_ready
from yokeflow_intervention.shared.commands import (
    AcknowledgeRequest,
    FalseStopRequest,
    IdRequest,
    ListRequest,
    NextSessionRequest,
    PauseRequest,
    ResumeRequest,
    SnoozeRequest,
)
from yokeflow_intervention.shared.db import create_pool
from yokeflow_intervention.shared.handling import (
    bind_in_order,
    contract_handler,
    durable_subscriber,
    handle_durably,
)
from yokeflow_intervention.shared.runtime import ServiceContext, run_periodically, service_context

from .commands import run_command
from .manager import PausedSessionManager
from .store import PausedSessionStore

__all__ = ["create_app"]

_LIFECYCLE_MARKERS = (b'"session_started"', b'"session_ended"')
RESUME_OUTBOX_EVERY_S = 2.0


def create_app(context: ServiceContext) -> FastStream:
    broker = context.broker()
    app = FastStream(broker)
    consumers = (CONSUMERS.pauser_detected, CONSUMERS.pauser_sessions, CONSUMERS.pauser_warnings)
    manager: PausedSessionManager | None = None

    @app.on_startup
    async def connect() -> None:
        nonlocal manager
        pool = await create_pool(context.require_database())
        await broker.connect()
        await wait_until_ready(broker.connection.jetstream(), consumers, (CONTROL_BUCKET,))
        js = broker.connection.jetstream()
        control = await js.key_value(CONTROL_BUCKET)
        manager = PausedSessionManager(PausedSessionStore(pool), js, control)

    async def announce_missed_resumes() -> None:
        """The resume outbox: see PausedSessionManager.announce_missed_resumes."""
        assert manager is not None
        await manager.announce_missed_resumes()

    run_periodically(
        app, RESUME_OUTBOX_EVERY_S, announce_missed_resumes, "announcing missed resumes"
    )

    @app.after_shutdown
    async def close() -> None:
        if manager is not None:
            await manager.store.pool.close()

    async def on_detected(intervention: Intervention) -> None:
        assert manager is not None
        await manager.handle_detected(intervention)

    durable_subscriber(
        broker,
        CONSUMERS.pauser_detected,
        "Records each detected intervention and pauses its session.",
    )(contract_handler(Intervention, lambda: broker.connection.jetstream(), on_detected))

    async def on_warned(warning: InterventionWarned) -> None:
        assert manager is not None
        await manager.store.record_warning(warning)

    durable_subscriber(
        broker, CONSUMERS.pauser_warnings, "Records each warning given a session before a stop."
    )(contract_handler(InterventionWarned, lambda: broker.connection.jetstream(), on_warned))

    lifecycle = CONSUMERS.pauser_sessions

    async def on_session_lifecycle(raw: Msg) -> None:
        assert manager is not None
        if not any(marker in raw.data for marker in _LIFECYCLE_MARKERS):
            await raw.ack()
            return
        await handle_durably(raw, manager.js, Subjects.AGENT_DLQ, partial(register, raw.data))

    bind_in_order(app, lambda: broker.connection.jetstream(), lifecycle, on_session_lifecycle)

    async def register(data: bytes) -> None:
        assert manager is not None
        try:
            event = parse_agent_event(data)
        except ContractError:
            return  # the detector dead-letters malformed events; one letter is enough
        if isinstance(event, SessionStarted):
            await manager.store.session_started(event)
        elif isinstance(event, SessionEnded):
            await manager.store.session_ended(event)

    def command(
        name: str, model: type[BaseModel]
    ) -> Callable[[Callable[..., Awaitable[Any]]], None]:
        def register_command(operation: Callable[..., Awaitable[Any]]) -> None:
            @broker.subscriber(Subjects.command(name), queue="pauser", title=f"command {name}")
            async def serve(msg: NatsMessage) -> dict[str, Any]:
                reply = await run_command(msg.raw_message.data, model, operation)
                return reply.model_dump(mode="json")

        return register_command

    @command("pause_session", PauseRequest)
    async def pause_session(request: PauseRequest) -> Any:
        assert manager is not None
        return await manager.pause_session(request)

    @command("resume_session", ResumeRequest)
    async def resume_session(request: ResumeRequest) -> Any:
        assert manager is not None
        return await manager.resume_session(request)

    @command("mark_false_stop", FalseStopRequest)
    async def mark_false_stop(request: FalseStopRequest) -> Any:
        assert manager is not None
        return await manager.mark_false_stop(request)

    @command("acknowledge", AcknowledgeRequest)
    async def acknowledge(request: AcknowledgeRequest) -> Any:
        assert manager is not None
        return await manager.acknowledge(request)

    @command("snooze", SnoozeRequest)
    async def snooze(request: SnoozeRequest) -> Any:
        assert manager is not None
        return await manager.snooze(request)

    @command("get_active_pauses", ListRequest)
    async def get_active_pauses(request: ListRequest) -> Any:
        assert manager is not None
        return await manager.list(request.project_id, True, request.limit, request.offset)

    @command("get_intervention_history", ListRequest)
    async def get_intervention_history(request: ListRequest) -> Any:
        assert manager is not None
        return await manager.list(request.project_id, False, request.limit, request.offset)

    @command("get_intervention", IdRequest)
    async def get_intervention(request: IdRequest) -> Any:
        assert manager is not None
        return await manager.get_intervention(request.intervention_id)

    @command("can_auto_resume", IdRequest)
    async def can_auto_resume(request: IdRequest) -> Any:
        assert manager is not None
        row = await manager.get_intervention(request.intervention_id)
        return bool(row["can_auto_resume"]) and not row["resolved"]

    @command("record_next_session", NextSessionRequest)
    async def record_next_session(request: NextSessionRequest) -> Any:
        assert manager is not None
        return await manager.store.set_next_session(request.intervention_id, request.session_id)

    context.instrument(app, lambda: broker.connection.jetstream(), consumers)

    return app


def main() -> None:
    import asyncio

    asyncio.run(create_app(service_context("pauser")).run())
