"""PausedSessionManager: every pause and resume goes through here.

Each step is idempotent (row keyed by intervention id, KV put of the same state, publish with a
Nats-Msg-Id), so a redelivered message, or a pauser killed between any two steps, ends in the
same state with nothing duplicated.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from yokeflow_agent.contract import (
    ControlKeys,
    Intervention,
    InterventionAcknowledged,
    InterventionPaused,
    InterventionResumed,
    InterventionSnoozed,
    RetryStats,
    SessionControl,
    Subjects,
    Task,
)

from yokeflow_intervention.shared import interventions
from yokeflow_intervention.shared.bus import publish_event
from yokeflow_intervention.shared.commands import (
    AcknowledgeRequest,
    FalseStopRequest,
    PauseRequest,
    ResumeRequest,
    SnoozeRequest,
)
from yokeflow_intervention.shared.provenance import notes_source

from .briefs import resume_brief
from .store import PausedSessionStore, UnknownIntervention

__all__ = ["PausedSessionManager"]

log = logging.getLogger(__name__)


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


class PausedSessionManager:
    def __init__(self, store: PausedSessionStore, js: JetStreamContext, control: KeyValue) -> None:
        self.store = store
        self.js = js
        self.control = control

    async def handle_detected(self, intervention: Intervention) -> dict[str, Any] | None:
        row, created = await self.store.record_pause(intervention, datetime.now(UTC))
        if row is None:
            log.info(
                "session already paused by another intervention; %s not recorded",
                intervention.intervention_id,
                extra={
                    "intervention_id": intervention.intervention_id,
                    "session_id": intervention.session_id,
                },
            )
            return None
        if intervention.mode == "observe":
            if created:
                ids = {
                    "intervention_id": intervention.intervention_id,
                    "session_id": intervention.session_id,
                }
                log.info(
                    "observed (would have stopped) session %s: %s",
                    intervention.session_id,
                    intervention.reason,
                    extra=ids,
                )
            return row  # recorded only: the session runs on, so no pause and nobody paged
        if row["resolved"]:
            return row  # resumed since; re-pausing now would undo the human's decision
        await self.control.put(
            ControlKeys.session(intervention.project_id, intervention.session_id),
            SessionControl.paused_by(intervention, row["paused_at"]).model_dump_json().encode(),
        )
        paused = InterventionPaused(**intervention.model_dump(), paused_at=row["paused_at"])
        await publish_event(
            self.js,
            Subjects.paused(intervention.project_id),
            paused,
            msg_id=f"{intervention.intervention_id}:paused",
        )
        if created:
            log.info(
                "paused session %s: %s",
                intervention.session_id,
                intervention.reason,
                extra={
                    "intervention_id": intervention.intervention_id,
                    "session_id": intervention.session_id,
                },
            )
        return row

    async def pause_session(self, request: PauseRequest) -> dict[str, Any]:
        """A human's pause: published as an intervention like any other, then applied."""
        project_id = request.project_id
        await self.store.check_session(project_id, request.session_id)
        existing = await self.store.active_for_session(project_id, request.session_id)
        if existing is not None:
            return _json_safe(existing)
        session = await self.store.pool.fetchrow(
            """SELECT workspace, task_id, task_description FROM sessions
               WHERE project_id = $1 AND id = $2""",
            project_id,
            request.session_id,
        )
        now = datetime.now(UTC)
        intervention = Intervention(
            intervention_id=str(uuid.uuid4()),
            project_id=project_id,
            session_id=request.session_id,
            trigger="manual",
            reason=f"Paused by {request.paused_by}: {request.reason}",
            retry_stats=RetryStats(),
            task=Task(id=session["task_id"], description=session["task_description"] or "")
            if session and session["task_id"]
            else None,
            detected_at=now,
            workspace=session["workspace"] if session else None,
        )
        await publish_event(
            self.js,
            Subjects.detected(project_id),
            intervention,
            msg_id=intervention.intervention_id,
        )
        row = await self.handle_detected(intervention)
        assert row is not None
        return _json_safe(row)

    async def resume_session(self, request: ResumeRequest) -> dict[str, Any]:
        row = await self.store.get(request.intervention_id)
        if row is None:
            raise UnknownIntervention(f"unknown intervention {request.intervention_id!r}")
        brief = resume_brief(row, request.resolved_by, request.resolution_notes)
        resolved = await self.store.resolve(
            request.intervention_id,
            request.resolved_by,
            request.resolution_notes,
            brief,
            request.false_stop_note if request.false_stop else None,
        )
        try:
            await self.announce_resume(resolved)
        except (NatsError, TimeoutError) as exc:
            # Committed: the resume stands, and the outbox announces it once NATS answers.
            log.warning(
                "resume committed, announcing it failed (the outbox retries): %r",
                exc,
                extra={"intervention_id": request.intervention_id},
            )
        return _json_safe(resolved)

    async def acknowledge(self, request: AcknowledgeRequest) -> dict[str, Any]:
        """One transition however many clicks: only the first publishes (the dashboard and the
        terminal hear core NATS, where a stream's deduplication does not reach)."""
        row, changed = await self.store.acknowledge(
            request.intervention_id, request.by, request.via, request.project_id
        )
        if changed:
            event = InterventionAcknowledged(
                intervention_id=row["id"],
                project_id=row["project_id"],
                session_id=row["session_id"],
                acknowledged_by=row["acknowledged_by"],
                via=row["acknowledged_via"],
                acknowledged_at=row["acknowledged_at"],
            )
            subject = Subjects.acknowledged(row["project_id"])
            await self._publish_act(subject, event, f"{row['id']}:acknowledged")
        return {**_json_safe(row), "changed": changed}

    async def snooze(self, request: SnoozeRequest) -> dict[str, Any]:
        row, changed = await self.store.snooze(
            request.intervention_id, request.by, request.via, request.project_id, request.minutes
        )
        if changed:
            until = row["snoozed_until"]
            event = InterventionSnoozed(
                intervention_id=row["id"],
                project_id=row["project_id"],
                session_id=row["session_id"],
                snoozed_by=request.by,
                via=request.via,
                until=until,
                snoozed_at=datetime.now(UTC),
            )
            await self._publish_act(
                Subjects.snoozed(row["project_id"]), event, f"{row['id']}:snoozed:{until:%s}"
            )
        return {**_json_safe(row), "changed": changed}

    async def _publish_act(
        self, subject: str, event: InterventionAcknowledged | InterventionSnoozed, msg_id: str
    ) -> None:
        try:
            await publish_event(self.js, subject, event, msg_id=msg_id)
        except (NatsError, TimeoutError) as exc:
            # Committed: the act stands (and shows in the API and dashboard); only its
            # announcement is lost, as the log says.
            ids = {"intervention_id": event.intervention_id}
            log.warning("recorded, announcing it failed: %r", exc, extra=ids)

    async def announce_resume(self, row: dict[str, Any]) -> None:
        """Set the session running and publish the resume (both idempotent)."""
        resumed = InterventionResumed(
            intervention_id=row["id"],
            project_id=row["project_id"],
            session_id=row["session_id"],
            resolved_by=row["resolved_by"],
            resolution_notes=row["resolution_notes"] or "",
            resolution_source=notes_source(row["resolved_by"]),
            resolved_at=row["resolved_at"],
            resume_context=row["resume_context"] or "",
            workspace=(row.get("blocker_info") or {}).get("workspace"),
            false_stop=bool(row.get("false_stop")),
        )
        await self.control.put(
            ControlKeys.session(row["project_id"], row["session_id"]),
            SessionControl(
                state="running", intervention_id=row["id"], updated_at=row["resolved_at"]
            )
            .model_dump_json()
            .encode(),
        )
        await self.control.put(
            ControlKeys.brief(row["project_id"]), resumed.model_dump_json().encode()
        )
        await publish_event(
            self.js, Subjects.resumed(row["project_id"]), resumed, msg_id=f"{row['id']}:resumed"
        )
        await self.store.mark_resume_announced(row["id"])

    async def mark_false_stop(self, request: FalseStopRequest) -> dict[str, Any]:
        """A stop marked false after the fact: recorded and counted, nothing published (the
        session was resumed, or never paused, already)."""
        row = await self.store.mark_false_stop(
            request.intervention_id, request.marked_by, request.note
        )
        return _json_safe(row)

    async def announce_missed_resumes(self, older_than_s: float = 5.0) -> int:
        """Announce again the resumes committed but not announced (NATS failed over, or this
        process died, between the commit and the publish). The publish's message id makes a
        second announcement of the same resume a no-op for consumers."""
        rows = await self.store.unannounced_resumes(older_than_s)
        for row in rows:
            await self.announce_resume(row)
            log.info(
                "announced a missed resume",
                extra={"intervention_id": row["id"], "session_id": row["session_id"]},
            )
        return len(rows)

    async def list(
        self, project_id: str | None, active_only: bool, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        rows, _ = await interventions.list_interventions(
            self.store.pool, project_id, active_only, limit, offset
        )
        return [_json_safe(r.model_dump()) for r in rows]

    async def get_intervention(self, intervention_id: str) -> dict[str, Any]:
        row = await interventions.get_intervention(self.store.pool, intervention_id)
        if row is None:
            raise UnknownIntervention(f"unknown intervention {intervention_id!r}")
        actions = await interventions.intervention_actions(self.store.pool, intervention_id)
        return {
            **_json_safe(row.model_dump()),
            "actions": [_json_safe(a.model_dump()) for a in actions],
        }
