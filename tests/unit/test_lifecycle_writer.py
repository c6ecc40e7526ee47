"""The pauser's batched session registration (services/pauser/lifecycle.py), with a fake store:
events are written in batches, in order, each acknowledged only once its batch is committed,
and one event the database refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import asyncpg
import pytest
from yokeflow_agent.contract import SessionEnded, SessionStarted, parse_agent_event

from yokeflow_intervention.services.pauser.lifecycle import LifecycleWriter

Lifecycle = SessionStarted | SessionEnded


def started(session: str) -> SessionStarted:
    event = parse_agent_event(
        json.dumps(
            {
                "v": 1,
                "event_id": f"e-{session}",
                "type": "session_started",
                "project_id": "p",
                "session_id": session,
                "seq": 1,
                "ts": "2026-12-07T00:00:00Z",
            }
        ).encode()
    )
    assert isinstance(event, SessionStarted)
    return event


class FakeStore:
    def __init__(self, refuse: str | None = None, away: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.refuse, self.away = refuse, away

    async def record_lifecycle(self, events: Sequence[Lifecycle]) -> None:
        await asyncio.sleep(0)
        if self.away:
            raise OSError("connection refused")
        ids = [event.session_id for event in events]
        if self.refuse in ids:
            raise asyncpg.DataError(f"refused {self.refuse}")
        self.batches.append(ids)


async def test_events_are_written_in_batches_in_order() -> None:
    store = FakeStore()
    writer = LifecycleWriter(store.record_lifecycle, linger_s=0.01, max_batch=3)
    done = [writer.add(started(f"s{i}")) for i in range(7)]
    assert not any(future.done() for future in done)  # nothing acked before it is written
    await asyncio.gather(*done)
    assert store.batches == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]
    later = writer.add(started("s7"))  # a new batch after the writer went idle
    await later
    assert store.batches[-1] == ["s7"]


async def test_an_event_the_database_refuses_fails_alone() -> None:
    store = FakeStore(refuse="s1")
    writer = LifecycleWriter(store.record_lifecycle, linger_s=0.01)
    done = [writer.add(started(f"s{i}")) for i in range(3)]
    results = await asyncio.gather(*done, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncpg.DataError)
    assert store.batches == [["s0"], ["s2"]]


async def test_a_database_away_fails_the_batch_without_trying_each() -> None:
    store = FakeStore(away=True)
    calls = 0

    async def write(events: Sequence[Lifecycle]) -> None:
        nonlocal calls
        calls += 1
        await store.record_lifecycle(events)

    writer = LifecycleWriter(write, linger_s=0.01)
    done = [writer.add(started(f"s{i}")) for i in range(4)]
    for future in done:
        with pytest.raises(OSError, match="refused"):
            await future
    assert calls == 1  # retried by redelivery, with backoff, not hammered one by one
