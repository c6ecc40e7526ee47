"""The recovery service's work for one paused intervention: plan, lock, run, verify, audit,
publish, and resume the session when the fix worked and configuration allows it."""

from __future__ import annotations

import json
import logging
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
from yokeflow_intervention.shared.metrics import RECOVERIES
from yokeflow_intervention.shared.settings import Settings

from .actions import SHARED_ACTIONS, NoAction, Plan, Refused, Result, plan_recovery, run_plan

__all__ = ["Recovery"]

log = logging.getLogger(__name__)


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
        earlier = await self.pool.fetch(
            """SELECT action_status FROM intervention_actions
               WHERE paused_session_id = $1 AND action_type = 'recovery'""",
            paused.intervention_id,
        )
        statuses = [r["action_status"] for r in earlier]
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
        attempts = 1 if plan.action in SHARED_ACTIONS else self.settings.recovery_max_attempts
        if statuses.count("started") >= attempts or "nothing_to_do" in statuses:
            return None
        details: dict[str, Any] = {"action": plan.action, "command": plan.command,
                                   "description": plan.description}  # fmt: skip
        if self.settings.recovery_dry_run:
            await self._audit(paused.intervention_id, "dry_run", details)
            return await self._publish(
                paused, "attempted", plan, detail=f"dry run: would {plan.description}", dry_run=True
            )
        async with self.pool.acquire() as lock:
            # One recovery at a time per resource, across every recovery replica.
            await lock.execute("SELECT pg_advisory_lock(hashtext($1))", plan.resource)
            try:
                await self._audit(paused.intervention_id, "started", details)
                await self._publish(paused, "attempted", plan, detail=plan.description)
                result = await run_plan(plan, self.settings)
            except Refused as exc:
                await self._audit(
                    paused.intervention_id, "refused", {**details, "reason": str(exc)}
                )
                return await self._publish(paused, "refused", plan, detail=str(exc))
            finally:
                await lock.execute("SELECT pg_advisory_unlock(hashtext($1))", plan.resource)
        if result.nothing_to_do and "started" in statuses:
            # An earlier attempt (cut short: this service was killed, a failover) did the fix.
            result.succeeded, result.nothing_to_do = True, False
            result.detail = (
                f"an earlier attempt fixed it: {result.detail.removeprefix('nothing to do: ')}"
            )
        if result.nothing_to_do:
            await self._audit(paused.intervention_id, "nothing_to_do",
                              {**details, "detail": result.detail})  # fmt: skip
            return await self._publish(paused, "nothing_to_do", plan, result.detail,
                                       result.verification)  # fmt: skip
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
            notes = (f"Automatic recovery: {plan.description}. {detail}. "
                     f"Verified: {verification or 'see the audit trail'}.")  # fmt: skip
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
