"""The recovery service's work for one paused intervention: plan, lock, run, verify, audit,
publish, and resume the session when the fix worked and configuration allows it."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from yokeflow_agent.contract import (
    AUTO_RECOVERY_RESOLVER,
    Intervention,
    InterventionPaused,
    RecoveryOutcome,
    Subjects,
)

from yokeflow_intervention.shared.bus import publish_event
from yokeflow_intervention.shared.commands import AlreadyResolvedError, PauserClient
from yokeflow_intervention.shared.handling import NotReadyYet
from yokeflow_intervention.shared.metrics import RECOVERIES
from yokeflow_intervention.shared.settings import Settings

from .actions import SHARED_ACTIONS, NoAction, Plan, Refused, Result, plan_recovery, run_plan

__all__ = ["Recovery"]

log = logging.getLogger(__name__)

# Outcomes after which an intervention's recovery never runs again.
_OUTCOMES = ("failed", "nothing_to_do", "refused")
# Advisory lock classes (two-key locks: a space of their own): one run of an intervention at a
# time, and one recovery at a time per resource, across every recovery replica.
_INTERVENTION_LOCK, _RESOURCE_LOCK = 1, 2


class Recovery:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        pauser: PauserClient,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.js = js
        self.pauser = pauser
        self.running: Counter[str] = Counter()  # project -> its recoveries running here

    async def handle(self, paused: InterventionPaused) -> RecoveryOutcome | None:
        row = await self.pool.fetchrow(
            """SELECT resolved, resolved_by, session_id, project_id, intervention
               FROM paused_sessions WHERE id = $1""",
            paused.intervention_id,
        )
        if (
            row is None
            or row["session_id"] != paused.session_id
            or row["project_id"] != paused.project_id
        ):
            # Nothing to attach an audit row to: the refusal is published and logged instead.
            return await self._publish(paused, "refused", detail="unknown intervention or session")
        # Plan from the pauser's record, never from the message: a forged or altered
        # intervention.paused cannot choose the blocker, the port, the module or the workspace.
        record = row["intervention"]
        stored = (
            Intervention.model_validate_json(record)
            if isinstance(record, str)
            else Intervention.model_validate(record)
        )
        try:
            plan = plan_recovery(stored, self.settings)
        except NoAction:
            return None
        except Refused as exc:
            if row["resolved"]:
                return None
            await self._audit(paused.intervention_id, "refused", {"reason": str(exc)})
            return await self._publish(paused, "refused", detail=str(exc))
        statuses = await self._statuses(paused.intervention_id)
        if "succeeded" in statuses and row["resolved"]:
            # Redelivered after the fix and the resume (whose reply a failover may have lost):
            # finish by publishing the outcome.
            resumed = row["resolved_by"] == AUTO_RECOVERY_RESOLVER
            return await self._publish(
                paused, "succeeded", plan, "fixed earlier", auto_resumed=resumed
            )
        if "succeeded" in statuses:
            return await self._resume(paused, plan, None)  # redelivered after the fix: finish
        if row["resolved"]:
            return None
        if "failed" in statuses:
            # One run per intervention: a redelivered or replayed message after a failure (a
            # failed install, say) runs nothing again; it only publishes the outcome once more,
            # in case the first publish was lost (the stream drops a duplicate).
            return await self._publish(
                paused, "failed", plan, "failed earlier: see the audit trail"
            )
        if any(status in statuses for status in _OUTCOMES):
            return None
        details: dict[str, Any] = {
            "action": plan.action,
            "command": plan.command,
            "description": plan.description,
        }
        if self.settings.recovery_dry_run:
            await self._audit(paused.intervention_id, "dry_run", details)
            return await self._publish(
                paused, "attempted", plan, detail=f"dry run: would {plan.description}", dry_run=True
            )
        return await self._run_fairly(paused, plan, details)

    async def _run_fairly(
        self, paused: InterventionPaused, plan: Plan, details: dict[str, Any]
    ) -> RecoveryOutcome | None:
        """Run the plan when the project has a free slot here, no replica is running this
        intervention and none holds the resource; otherwise give the message back for later
        (NotReadyYet), so one project's slow or hanging work never holds up another's."""
        project = paused.project_id
        limit = self.settings.recovery_project_concurrency
        if self.running[project] >= limit:
            raise NotReadyYet(f"project {project} already has {limit} recoveries running")
        self.running[project] += 1
        try:
            async with self.pool.acquire() as conn:
                held: list[tuple[int, str]] = []
                try:
                    keys = [
                        (_INTERVENTION_LOCK, paused.intervention_id),
                        (_RESOURCE_LOCK, plan.resource),
                    ]
                    for key in keys:
                        if not await conn.fetchval(
                            "SELECT pg_try_advisory_lock($1, hashtext($2))", *key
                        ):
                            raise NotReadyYet(f"{key[1]} is busy with another recovery")
                        held.append(key)
                    return await self._run_once(paused, plan, details)
                finally:
                    for key in held:
                        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", *key)
        finally:
            self.running[project] -= 1
            if not self.running[project]:
                del self.running[project]

    async def _run_once(
        self, paused: InterventionPaused, plan: Plan, details: dict[str, Any]
    ) -> RecoveryOutcome | None:
        """Under the intervention's lock: no other run of it is in progress anywhere."""
        statuses = await self._statuses(paused.intervention_id)
        if any(status in statuses for status in (*_OUTCOMES, "succeeded")):
            return None  # another replica finished it meanwhile
        # A `started` without an outcome is a run cut short (this service killed, a failover):
        # an action on the project's own things, which checks before it acts, is run once more
        # to reach an outcome; shared infrastructure is never restarted twice.
        runs = 1 if plan.action in SHARED_ACTIONS else 2
        if statuses.count("started") >= runs:
            detail = "an earlier attempt was interrupted; not run again"
            await self._audit(paused.intervention_id, "failed", {**details, "detail": detail})
            return await self._publish(paused, "failed", plan, detail)
        try:
            await self._audit(paused.intervention_id, "started", details)
            await self._publish(paused, "attempted", plan, detail=plan.description)
            result = await run_plan(plan, self.settings)
        except Refused as exc:
            await self._audit(paused.intervention_id, "refused", {**details, "reason": str(exc)})
            return await self._publish(paused, "refused", plan, detail=str(exc))
        if result.nothing_to_do and "started" in statuses:
            # An earlier attempt (cut short: this service was killed, a failover) did the fix.
            result.succeeded, result.nothing_to_do = True, False
            result.detail = (
                f"an earlier attempt fixed it: {result.detail.removeprefix('nothing to do: ')}"
            )
        if result.nothing_to_do:
            await self._audit(
                paused.intervention_id, "nothing_to_do", {**details, "detail": result.detail}
            )
            return await self._publish(
                paused, "nothing_to_do", plan, result.detail, result.verification
            )
        await self._audit(
            paused.intervention_id,
            "succeeded" if result.succeeded else "failed",
            {
                **details,
                "detail": result.detail,
                "exit_code": result.exit_code,
                "output_excerpt": result.output[-1000:],
                "duration_ms": result.duration_ms,
                "verification": result.verification,
            },
        )
        log.info(
            "%s %s: %s (%s)",
            plan.action,
            "succeeded" if result.succeeded else "failed",
            result.detail,
            result.verification,
            extra={"intervention_id": paused.intervention_id, "session_id": paused.session_id},
        )
        if not result.succeeded:
            return await self._publish(paused, "failed", plan, result.detail, result.verification)
        return await self._resume(paused, plan, result)

    async def _resume(
        self, paused: InterventionPaused, plan: Plan, result: Result | None
    ) -> RecoveryOutcome:
        detail = result.detail if result else "fixed earlier"
        verification = result.verification if result else ""
        resumed = False
        if self.settings.recovery_auto_resume:
            notes = (
                f"Automatic recovery: {plan.description}. {detail}. "
                f"Verified: {verification or 'see the audit trail'}."
            )
            try:
                await self.pauser.resume_session(
                    paused.intervention_id, AUTO_RECOVERY_RESOLVER, notes
                )
                resumed = True
            except AlreadyResolvedError:
                resumed = False
        return await self._publish(
            paused, "succeeded", plan, detail, verification, auto_resumed=resumed
        )

    async def _statuses(self, intervention_id: str) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT action_status FROM intervention_actions
               WHERE paused_session_id = $1 AND action_type = 'recovery' ORDER BY id""",
            intervention_id,
        )
        return [r["action_status"] for r in rows]

    async def _audit(self, intervention_id: str, status: str, details: dict[str, Any]) -> None:
        """One row per attempt for started/succeeded/failed; one in all for a refusal, a dry run
        or nothing to do, which a redelivered message would otherwise record again."""
        await self.pool.execute(
            """INSERT INTO intervention_actions (paused_session_id, action_type, action_status,
                                                 action_details)
               SELECT $1, 'recovery', $2, $3::jsonb
               WHERE $2 NOT IN ('refused', 'dry_run', 'nothing_to_do') OR NOT EXISTS (
                   SELECT 1 FROM intervention_actions WHERE paused_session_id = $1
                   AND action_type = 'recovery' AND action_status = $2)""",
            intervention_id,
            status,
            json.dumps(details, default=str),
        )

    async def _publish(
        self,
        paused: InterventionPaused,
        status: str,
        plan: Plan | None = None,
        detail: str = "",
        verification: str = "",
        dry_run: bool = False,
        auto_resumed: bool = False,
    ) -> RecoveryOutcome:
        outcome = RecoveryOutcome(
            intervention_id=paused.intervention_id,
            project_id=paused.project_id,
            session_id=paused.session_id,
            status=status,
            action=plan.action if plan else None,
            detail=detail,
            command=plan.command if plan else [],
            verification=verification,
            dry_run=dry_run,
            auto_resumed=auto_resumed,
        )
        RECOVERIES.labels(outcome.action or "none", status).inc()
        await publish_event(
            self.js,
            Subjects.recovery(paused.project_id),
            outcome,
            msg_id=f"{paused.intervention_id}:recovery:{status}",
        )
        return outcome
