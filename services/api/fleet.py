"""The fleet view: the detector's session summaries, kept current by a watch of their bucket.

The detector publishes what the view needs (KV `session_summaries`, at most about once a second
per session); the API never recomputes a risk signal, it only keeps the latest summary of each
session and tells the dashboards, at most once a second, that something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError
from yokeflow_agent.contract import SessionSummary

__all__ = ["Fleet"]

log = logging.getLogger(__name__)
CHANGE_NOTICE_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class _Held:
    """One session's summary as held: what sorting and filtering need, and the JSON as it came
    (validated on arrival). A parsed model costs ~3.6 KB, this ~0.7 KB: 100,000 sessions fit in
    about 70 MB of the API."""

    risk: float
    project_id: str
    session_id: str
    state: str
    raw: bytes


class Fleet:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self.sessions: dict[str, _Held] = {}
        self.ready = False  # the watch has delivered what the bucket held when it started
        self._on_change = on_change
        self._changed = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, bucket: KeyValue) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(bucket)),
            asyncio.create_task(self._notice_changes()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def running(
        self, project_id: str | None, states: set[str], limit: int
    ) -> tuple[list[SessionSummary], int]:
        """The first `limit` sessions in `states`, nearest to a stop first, and how many there
        are in all.

        Across projects the page is shared fairly: each project's nearest `limit // projects`
        sessions come first, then the rest by risk. Risk is computed from the agent's own
        event times (a backdated `ts` makes a session look old), so one project's agent could
        otherwise fill the whole page and hide every other project's sessions."""
        found = [
            s
            for s in self.sessions.values()
            if s.state in states and (project_id is None or s.project_id == project_id)
        ]
        found.sort(key=lambda s: (-s.risk, s.project_id, s.session_id))
        fair = found
        if len(found) > limit:
            share = max(1, limit // len({s.project_id for s in found}))
            taken: dict[str, int] = {}
            first: list[_Held] = []
            rest: list[_Held] = []
            for held in found:
                count = taken.get(held.project_id, 0)
                (first if count < share else rest).append(held)
                taken[held.project_id] = count + 1
            fair = first + rest
        shown = [SessionSummary.model_validate_json(s.raw) for s in fair[:limit]]
        return shown, len(found)

    async def _watch(self, bucket: KeyValue) -> None:
        while True:
            watcher: KeyValue.KeyWatcher | None = None
            try:
                watcher = await bucket.watchall()
                self.sessions.clear()  # the watch delivers every current value again
                async for entry in watcher:
                    if entry is None:
                        self.ready = True
                        self._changed = True
                        continue
                    self._apply(entry.key, entry.value, entry.operation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: watch again from the current values
                log.warning("watching session summaries failed, again in 2 s: %r", exc)
                await asyncio.sleep(2)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in (KV_DEL, KV_PURGE) or not value:
            self.sessions.pop(key, None)
        else:
            try:
                summary = SessionSummary.model_validate_json(value)
                self.sessions[key] = _Held(
                    summary.risk, summary.project_id, summary.session_id, summary.state, value
                )
            except ValidationError as exc:
                log.warning("ignored a session summary under %s: %s", key, exc.errors()[:1])
                return
        self._changed = True

    async def _notice_changes(self) -> None:
        while True:
            await asyncio.sleep(CHANGE_NOTICE_INTERVAL_S)
            if self._changed:
                self._changed = False
                self._on_change()
