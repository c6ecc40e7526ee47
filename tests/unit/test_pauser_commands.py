"""The pauser's command table, wired as the bootstrap serves it, against in-memory fakes (as
cosmicpython's tests/unit/test_handlers.py does): the real `PauserClient` sends each command,
the bootstrap's `Reply` binding answers it through the one `run_command` path, and the
operation the table names reaches a fake manager. The real pauser, NATS and PostgreSQL are
exercised by tests/integration/test_pause_resume.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from yokeflow_agent.contract import Subjects

from yokeflow_intervention.services.pauser.main import COMMANDS, command_reply
from yokeflow_intervention.services.pauser.store import UnknownIntervention
from yokeflow_intervention.shared.commands import NotFoundError, PauserClient

ROW = {"intervention_id": "i-1", "can_auto_resume": True, "resolved": False}


class FakeStore:
    def __init__(self) -> None:
        self.next_sessions: dict[str, str] = {}

    async def set_next_session(self, intervention_id: str, session_id: str) -> bool:
        self.next_sessions[intervention_id] = session_id
        return True


class FakeManager:
    """Records each operation and its request; knows one intervention, `i-1`."""

    def __init__(self) -> None:
        self.store = FakeStore()
        self.calls: list[tuple[str, Any]] = []

    async def _record(self, name: str, request: Any) -> dict[str, Any]:
        self.calls.append((name, request))
        return ROW

    async def pause_session(self, request: Any) -> dict[str, Any]:
        return await self._record("pause_session", request)

    async def resume_session(self, request: Any) -> dict[str, Any]:
        return await self._record("resume_session", request)

    async def mark_false_stop(self, request: Any) -> dict[str, Any]:
        return await self._record("mark_false_stop", request)

    async def acknowledge(self, request: Any) -> dict[str, Any]:
        return await self._record("acknowledge", request)

    async def snooze(self, request: Any) -> dict[str, Any]:
        return await self._record("snooze", request)

    async def list(self, project_id: str | None, active: bool, limit: int, offset: int) -> Any:
        self.calls.append(("list", (project_id, active, limit, offset)))
        return [ROW]

    async def get_intervention(self, intervention_id: str) -> dict[str, Any]:
        if intervention_id != "i-1":
            raise UnknownIntervention(f"no intervention {intervention_id}")
        return ROW


class FakeNats:
    """Request/reply answered in memory by the pauser's Reply bindings, one per command."""

    def __init__(self, manager: FakeManager) -> None:
        self.replies = {r.subject: r for r in (command_reply(manager, n) for n in COMMANDS)}

    async def request(self, subject: str, data: bytes, timeout: float) -> SimpleNamespace:
        reply = await self.replies[subject].respond(data)
        return SimpleNamespace(data=reply.model_dump_json().encode())


def client_for(manager: FakeManager) -> PauserClient:
    return PauserClient(FakeNats(manager))


def test_every_client_call_reaches_the_operation_the_table_names() -> None:
    manager = FakeManager()
    client = client_for(manager)

    async def calls() -> None:
        assert await client.pause_session("p", "s", "stuck") == ROW
        assert await client.resume_session("i-1", "ana", "try again") == ROW
        assert await client.mark_false_stop("i-1", "ana", "it was fine") == ROW
        assert await client.acknowledge("i-1", "ana") == ROW
        assert await client.snooze("i-1", "ana", minutes=30) == ROW
        assert await client.get_active_pauses("p") == [ROW]
        assert await client.get_intervention_history("p", limit=5, offset=10) == [ROW]
        assert await client.get_intervention("i-1") == ROW
        assert await client.can_auto_resume("i-1") is True
        assert await client.record_next_session("i-1", "s-2") is True

    asyncio.run(calls())
    names = [name for name, _ in manager.calls]
    acts = ["pause_session", "resume_session", "mark_false_stop", "acknowledge", "snooze"]
    assert names == [*acts, "list", "list"]
    assert manager.calls[0][1].reason == "stuck" and manager.calls[4][1].minutes == 30
    assert manager.calls[5][1] == ("p", True, 500, 0)
    assert manager.calls[6][1] == ("p", False, 5, 10)
    assert manager.store.next_sessions == {"i-1": "s-2"}


def test_the_table_serves_every_command_subject_once() -> None:
    subjects = set(FakeNats(FakeManager()).replies)
    assert subjects == {Subjects.command(name) for name in COMMANDS}
    assert len(subjects) == len(COMMANDS)


def test_an_unknown_intervention_is_not_found_for_the_client() -> None:
    with pytest.raises(NotFoundError, match="no intervention i-9"):
        asyncio.run(client_for(FakeManager()).get_intervention("i-9"))
