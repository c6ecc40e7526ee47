"""The pauser's tables: paused_sessions, intervention_actions, projects, sessions and
session_warnings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

import asyncpg
from yokeflow_agent.contract import Intervention, InterventionWarned, SessionEnded, SessionStarted

__all__ = [
    "OBSERVE_RESOLVER",
    "AlreadyResolved",
    "PausedSessionStore",
    "UnknownIntervention",
    "UnknownSession",
]

# `resolved_by` of an observed stop (observe mode): nothing was paused, so nothing waits for a
# human; it is recorded resolved, with nothing to announce, and shown as "would have stopped".
OBSERVE_RESOLVER = "observe-mode"


class UnknownIntervention(LookupError):
    pass


class UnknownSession(LookupError):
    pass


class AlreadyResolved(RuntimeError):
    pass


def _record(row: asyncpg.Record | None) -> dict[str, Any] | None:
    if row is None:
        return None
    record = dict(row)
    for key in ("blocker_info", "retry_stats", "intervention"):
        if isinstance(record.get(key), str):
            record[key] = json.loads(record[key])
    return record


_UPSERT_PROJECT = "INSERT INTO projects (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING"
_SESSION_STARTED = """
    INSERT INTO sessions (id, project_id, workspace, task_id, task_description, started_at,
                          resumed_from)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (project_id, id) DO UPDATE SET
        workspace = EXCLUDED.workspace,
        task_id = COALESCE(EXCLUDED.task_id, sessions.task_id),
        task_description = COALESCE(EXCLUDED.task_description, sessions.task_description),
        started_at = EXCLUDED.started_at,
        resumed_from = EXCLUDED.resumed_from"""
_SESSION_ENDED = """
    INSERT INTO sessions (id, project_id, ended_at, status, end_reason)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (project_id, id) DO UPDATE SET ended_at = EXCLUDED.ended_at,
        status = EXCLUDED.status, end_reason = EXCLUDED.end_reason"""


# The paused row and its first action, with the project and session rows they need, in one
# statement (atomic by itself, and one round trip where a transaction of five took six: the
# pause's own share of trigger -> paused). The action is only written with a new row.
_RECORD_PAUSE = """
    WITH project AS (
        INSERT INTO projects (id, name) VALUES ($3, $3) ON CONFLICT (id) DO NOTHING
    ), session AS (
        INSERT INTO sessions (id, project_id, workspace, task_id, task_description)
        VALUES ($2, $3, $19, $8, $9) ON CONFLICT (project_id, id) DO NOTHING
    ), paused AS (
        INSERT INTO paused_sessions (
            id, session_id, project_id, pause_reason, pause_type, blocker_info, retry_stats,
            current_task_id, current_task_description, paused_at, can_auto_resume, blocker_type,
            event_seq, detected_at, intervention, mode, resolved, resolved_at, resolved_by,
            resume_announced_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13, $14,
                $15::jsonb, $16, $17::boolean,
                CASE WHEN $17 THEN $10::timestamptz END,
                CASE WHEN $17 THEN $18::text END,
                CASE WHEN $17 THEN $10::timestamptz END)
        ON CONFLICT DO NOTHING
        RETURNING *
    ), action AS (
        INSERT INTO intervention_actions (paused_session_id, action_type, action_status,
                                          action_details)
        SELECT id, $20, 'succeeded', $21::jsonb FROM paused
    )
    SELECT * FROM paused"""


def _lifecycle_row(event: SessionStarted | SessionEnded) -> tuple[str, tuple[object, ...]]:
    """The statement recording the event, and its arguments."""
    if isinstance(event, SessionStarted):
        task = event.task
        return _SESSION_STARTED, (
            event.session_id,
            event.project_id,
            event.workspace,
            task.id if task else None,
            task.description if task else None,
            event.ts,
            event.resumed_from,
        )
    status = "paused" if event.reason == "paused" else "ended"
    return _SESSION_ENDED, (event.session_id, event.project_id, event.ts, status, event.reason)


class PausedSessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_lifecycle(self, events: Sequence[SessionStarted | SessionEnded]) -> None:
        """Record sessions' starts and ends, in their order, in one transaction: a fleet starts
        sessions by the hundred a second, and a commit each (with its project's upsert) took
        the pauser and PostgreSQL more than half a core between them at 100,000 sessions."""
        # Rows locked in one order by every replica (a session's own events keep theirs): two
        # batches cannot deadlock.
        projects = sorted({event.project_id for event in events})
        ordered = sorted(events, key=lambda event: (event.project_id, event.session_id))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_UPSERT_PROJECT, [(project,) for project in projects])
            rows = [_lifecycle_row(event) for event in ordered]
            for statement, run in groupby(rows, itemgetter(0)):
                await conn.executemany(statement, [arguments for _, arguments in run])

    async def record_warning(self, warning: InterventionWarned) -> None:
        """Record a warning once (a redelivery finds its row)."""
        await self.pool.execute(
            """INSERT INTO session_warnings (warning_id, project_id, session_id, trigger, reason,
                                             advice, event_seq, detected_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (warning_id) DO NOTHING""",
            warning.warning_id,
            warning.project_id,
            warning.session_id,
            warning.trigger,
            warning.reason,
            warning.advice,
            warning.event_seq,
            warning.detected_at,
        )

    async def check_session(self, project_id: str, session_id: str) -> None:
        """Raise UnknownSession unless the project has this session."""
        found = await self.pool.fetchval(
            "SELECT 1 FROM sessions WHERE project_id = $1 AND id = $2", project_id, session_id
        )
        if found is None:
            raise UnknownSession(f"unknown session {session_id!r} of project {project_id!r}")

    async def record_pause(
        self, intervention: Intervention, paused_at: datetime
    ) -> tuple[dict[str, Any] | None, bool]:
        """Insert the paused row and its `paused` action once; return (row, created).

        The row is None when the session already has another unresolved pause. An observed
        stop's row is resolved as it is made, with its `observed` action: it paused nothing.
        """
        task = intervention.task
        observed = intervention.mode == "observe"
        inserted = await self.pool.fetchrow(
            _RECORD_PAUSE,
            intervention.intervention_id,
            intervention.session_id,
            intervention.project_id,
            intervention.reason,
            intervention.trigger,
            json.dumps(
                {
                    "blocker_type": intervention.blocker_type,
                    "error_excerpt": intervention.error_excerpt,
                    "suggested_recovery": intervention.suggested_recovery,
                    "workspace": intervention.workspace,
                    "client": intervention.client,
                }
            ),
            intervention.retry_stats.model_dump_json(),
            task.id if task else None,
            task.description if task else None,
            paused_at,
            intervention.can_auto_resume,
            intervention.blocker_type,
            intervention.event_seq,
            intervention.detected_at,
            intervention.model_dump_json(),
            intervention.mode,
            observed,
            OBSERVE_RESOLVER,
            intervention.workspace,
            "observed" if observed else "paused",
            json.dumps({"trigger": intervention.trigger, "reason": intervention.reason}),
        )
        if inserted is not None:
            return _record(inserted), True
        existing = await self.get(intervention.intervention_id)
        return existing, False

    @staticmethod
    async def _action(
        conn: asyncpg.Connection,
        intervention_id: str,
        kind: str,
        status: str,
        details: dict[str, Any],
    ) -> None:
        await conn.execute(
            """INSERT INTO intervention_actions (paused_session_id, action_type, action_status,
                                                 action_details)
               VALUES ($1, $2, $3, $4::jsonb)""",
            intervention_id,
            kind,
            status,
            json.dumps(details, default=str),
        )

    async def get(self, intervention_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM paused_sessions WHERE id = $1", intervention_id
        )
        return _record(row)

    async def active_for_session(self, project_id: str, session_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM active_interventions WHERE project_id = $1 AND session_id = $2",
            project_id,
            session_id,
        )
        return _record(row)

    async def resolve(
        self,
        intervention_id: str,
        resolved_by: str,
        notes: str,
        resume_context: str,
        false_stop_note: str | None = None,
    ) -> dict[str, Any]:
        """Mark resolved exactly once: of two racing resumes, one wins, one is told why not.
        With a `false_stop_note` (possibly empty), the stop is marked a false stop too."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """UPDATE paused_sessions
                   SET resolved = true, resolved_at = now(), resolved_by = $2,
                       resolution_notes = $3, resume_context = $4
                   WHERE id = $1 AND NOT resolved
                   RETURNING *""",
                intervention_id,
                resolved_by,
                notes,
                resume_context,
            )
            if row is None:
                exists = await conn.fetchval(
                    "SELECT resolved_by FROM paused_sessions WHERE id = $1", intervention_id
                )
                if exists is None:
                    raise UnknownIntervention(f"unknown intervention {intervention_id!r}")
                raise AlreadyResolved(
                    f"intervention {intervention_id} is already resolved (by {exists})"
                )
            await self._action(
                conn,
                intervention_id,
                "resumed",
                "succeeded",
                {"resolved_by": resolved_by, "notes": notes},
            )
            if false_stop_note is not None:  # kept as it is if it was marked before the resume
                marking = (conn, intervention_id, resolved_by, false_stop_note)
                row = await self._mark_false_stop(*marking) or row
        resolved = _record(row)
        assert resolved is not None
        return resolved

    async def mark_false_stop(
        self, intervention_id: str, marked_by: str, note: str
    ) -> dict[str, Any]:
        """Mark a stop a false stop once (a second mark changes nothing and is told so by the
        row it gets back, marked by whoever was first)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._mark_false_stop(conn, intervention_id, marked_by, note)
        found = _record(row) or await self.get(intervention_id)
        if found is None:
            raise UnknownIntervention(f"unknown intervention {intervention_id!r}")
        return found

    @classmethod
    async def _mark_false_stop(
        cls, conn: asyncpg.Connection, intervention_id: str, marked_by: str, note: str
    ) -> asyncpg.Record | None:
        """The row marked now, with its audit action; None if it was marked before (or is
        unknown)."""
        row: asyncpg.Record | None = await conn.fetchrow(
            """UPDATE paused_sessions
               SET false_stop = true, false_stop_by = $2, false_stop_at = now(),
                   false_stop_note = $3
               WHERE id = $1 AND NOT false_stop
               RETURNING *""",
            intervention_id,
            marked_by,
            note,
        )
        if row is not None:
            details = {"marked_by": marked_by, "note": note}
            await cls._action(conn, intervention_id, "false_stop", "succeeded", details)
        return row

    async def _acting_on(
        self, conn: asyncpg.Connection, intervention_id: str, project_id: str | None
    ) -> dict[str, Any]:
        """The row, locked; unknown unless it belongs to `project_id` (when given), so an id
        copied from another project's notice finds nothing."""
        row = _record(
            await conn.fetchrow(
                "SELECT * FROM paused_sessions WHERE id = $1 FOR UPDATE", intervention_id
            )
        )
        if row is None or (project_id is not None and row["project_id"] != project_id):
            where = f" of project {project_id!r}" if project_id is not None else ""
            raise UnknownIntervention(f"unknown intervention {intervention_id!r}{where}")
        if row["resolved"]:
            raise AlreadyResolved(
                f"intervention {intervention_id} is already resolved (by {row['resolved_by']})"
            )
        return row

    async def acknowledge(
        self, intervention_id: str, by: str, via: str, project_id: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Record the first acknowledgement; (row, changed). A second click, from the same or
        another channel, changes nothing and is told who was first."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._acting_on(conn, intervention_id, project_id)
            if row["acknowledged_at"] is not None:
                return row, False
            updated = _record(
                await conn.fetchrow(
                    """UPDATE paused_sessions SET acknowledged_at = now(), acknowledged_by = $2,
                                                  acknowledged_via = $3
                       WHERE id = $1 RETURNING *""",
                    intervention_id,
                    by,
                    via,
                )
            )
            details = {"acknowledged_by": by, "via": via}
            await self._action(conn, intervention_id, "acknowledged", "succeeded", details)
        assert updated is not None
        return updated, True

    async def snooze(
        self, intervention_id: str, by: str, via: str, project_id: str | None, minutes: int
    ) -> tuple[dict[str, Any], bool]:
        """Put repeats off for `minutes`; (row, changed). While a snooze runs, another (a double
        click, a second channel) changes nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._acting_on(conn, intervention_id, project_id)
            running = await conn.fetchval(
                "SELECT snoozed_until > now() FROM paused_sessions WHERE id = $1", intervention_id
            )
            if running:
                return row, False
            updated = _record(
                await conn.fetchrow(
                    """UPDATE paused_sessions
                       SET snoozed_until = now() + make_interval(mins => $2)
                       WHERE id = $1 RETURNING *""",
                    intervention_id,
                    minutes,
                )
            )
            assert updated is not None
            until = updated["snoozed_until"].isoformat()
            details = {"snoozed_by": by, "via": via, "until": until}
            await self._action(conn, intervention_id, "snoozed", "succeeded", details)
        return updated, True

    async def mark_resume_announced(self, intervention_id: str) -> None:
        await self.pool.execute(
            """UPDATE paused_sessions SET resume_announced_at = now()
               WHERE id = $1 AND resume_announced_at IS NULL""",
            intervention_id,
        )

    async def unannounced_resumes(self, older_than_s: float) -> list[dict[str, Any]]:
        """Resolved rows whose announcement has not been confirmed for a while: the outbox."""
        rows = await self.pool.fetch(
            """SELECT * FROM paused_sessions
               WHERE resolved AND resume_announced_at IS NULL
                 AND resolved_at < now() - make_interval(secs => $1)
               ORDER BY resolved_at LIMIT 100""",
            older_than_s,
        )
        return [r for r in map(_record, rows) if r is not None]

    async def set_next_session(self, intervention_id: str, session_id: str) -> bool:
        """Record the session started to continue; False if one was recorded before."""
        async with self.pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(
                """UPDATE paused_sessions SET next_session_id = $2
                   WHERE id = $1 AND next_session_id IS NULL RETURNING id""",
                intervention_id,
                session_id,
            )
            if updated is None:
                if await conn.fetchval(
                    "SELECT 1 FROM paused_sessions WHERE id = $1", intervention_id
                ):
                    return False
                raise UnknownIntervention(f"unknown intervention {intervention_id!r}")
            await self._action(
                conn, intervention_id, "next_session", "started", {"session_id": session_id}
            )
        return True
