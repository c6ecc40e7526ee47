"""The delivery ledger and the per-project rate limit, both in PostgreSQL.

Claims are rows with a unique (intervention, channel, recipient) key: whoever inserts the row
sends; anyone else finds it. A row still `sending` when the message comes back means the replica
that claimed it died mid-send, and the notice may have reached the recipient. A generic webhook
is sent again under the same `webhook-id`, which a Standard Webhooks receiver deduplicates on.
Any other channel is marked `unknown` and not sent again: a person would see the repeat, and a
duplicate page at 3 a.m. is worse than a visible gap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from yokeflow_agent.contract import InterventionPaused

from yokeflow_intervention.shared.preferences import NotificationPreferences

from .channels import Delivery, Outcome

__all__ = ["LOOP_TRIGGERS", "Decision", "Ledger"]

# The triggers of a session stuck in a loop, which an infrastructure outage causes.
LOOP_TRIGGERS = frozenset({"retry_limit", "loop_pattern", "error_rate"})


@dataclass(frozen=True)
class Decision:
    decision: str  # notify, suppressed, muted
    before: int = 0  # rate-limited since the last notice (the project-wide cap)
    reason: str = ""
    grouped_into: str | None = None  # the incident this stop was grouped into or inhibited by


class Ledger:
    def __init__(self, pool: asyncpg.Pool, replica: str) -> None:
        self.pool = pool
        self.replica = replica

    async def decide(
        self, paused: InterventionPaused, preferences: NotificationPreferences, wanted: bool
    ) -> Decision:
        """notify / suppressed / muted, and why.

        In order: a trigger the project does not want is muted; a stuck-loop stop while the
        project has an open critical infrastructure incident notified within the group window
        is inhibited (the outage caused it); a stop with the same blocker (or, without one, the
        same trigger) as an open incident notified within the group window joins that incident;
        past the project-wide cap (`min_notification_interval`, off by default) it is
        suppressed; otherwise it is notified, at once.

        Serialised per project by a row lock, so any number of replicas agree; remembered per
        intervention, so a redelivered message gets the same answer. Times are clock_timestamp(),
        not now(): now() is when the transaction began, before it waited for the lock.
        """
        project_id, group = paused.project_id, paused.blocker_type or paused.trigger
        window = float(preferences.notification_group_window)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO notification_throttle (project_id) VALUES ($1) ON CONFLICT DO NOTHING",
                project_id,
            )
            throttle = await conn.fetchrow(
                """SELECT last_notified_at, suppressed_since,
                          last_notified_at IS NULL
                          OR last_notified_at
                             <= clock_timestamp() - make_interval(secs => $2) AS due
                   FROM notification_throttle WHERE project_id = $1 FOR UPDATE""",
                project_id,
                float(preferences.min_notification_interval),
            )
            earlier = await conn.fetchrow(
                """SELECT decision, suppressed_before, reason, grouped_into
                   FROM notification_decisions WHERE intervention_id = $1""",
                paused.intervention_id,
            )
            if earlier is not None:
                return Decision(
                    str(earlier["decision"]),
                    int(earlier["suppressed_before"]),
                    str(earlier["reason"]),
                    earlier["grouped_into"],
                )
            open_incident = """SELECT d.intervention_id FROM notification_decisions d
                   JOIN paused_sessions p ON p.id = d.intervention_id
                   WHERE d.project_id = $1 AND d.decision = 'notify' AND NOT p.resolved
                     AND d.decided_at > clock_timestamp() - make_interval(secs => $2)
                     AND {condition}
                   ORDER BY d.decided_at DESC LIMIT 1"""
            decision = Decision("notify")
            inhibitor = grouped = None
            if window > 0 and wanted:
                if paused.trigger in LOOP_TRIGGERS:
                    inhibitor = await conn.fetchval(
                        open_incident.format(condition="p.pause_type = 'critical_error'"),
                        project_id,
                        window,
                    )
                grouped = await conn.fetchval(
                    open_incident.format(condition="d.group_key = $3"), project_id, window, group
                )
            if not wanted:
                decision = Decision("muted", reason="the project does not want this trigger")
            elif inhibitor is not None:
                decision = Decision("suppressed", 0, f"inhibited by {inhibitor}", inhibitor)
            elif grouped is not None:
                decision = Decision("suppressed", 0, f"grouped into {grouped}", grouped)
            elif throttle["due"]:
                decision = Decision("notify", int(throttle["suppressed_since"]))
                await conn.execute(
                    """UPDATE notification_throttle
                       SET last_notified_at = clock_timestamp(), suppressed_since = 0
                       WHERE project_id = $1""",
                    project_id,
                )
            else:
                decision = Decision(
                    "suppressed",
                    reason="rate limit: one notification per "
                    f"{preferences.min_notification_interval} s",
                )
            if decision.decision == "suppressed" and decision.grouped_into is None:
                await conn.execute(
                    """UPDATE notification_throttle SET suppressed_since = suppressed_since + 1
                       WHERE project_id = $1""",
                    project_id,
                )
            await conn.execute(
                """INSERT INTO notification_decisions
                       (intervention_id, project_id, decision, suppressed_before, group_key,
                        grouped_into, reason)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                paused.intervention_id,
                project_id,
                decision.decision,
                decision.before,
                group,
                decision.grouped_into,
                decision.reason,
            )
            if decision.decision == "notify":
                await conn.execute(
                    """INSERT INTO incident_pages (intervention_id, project_id)
                       VALUES ($1, $2) ON CONFLICT DO NOTHING""",
                    paused.intervention_id,
                    project_id,
                )
            return decision

    async def claim(
        self, intervention_id: str, project_id: str, delivery: Delivery
    ) -> Outcome | None:
        """None when this replica should send; else the delivery's recorded outcome."""
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                """INSERT INTO notification_deliveries
                       (intervention_id, project_id, channel, recipient, status, claimed_by)
                   VALUES ($1, $2, $3, $4, 'sending', $5)
                   ON CONFLICT (intervention_id, channel, recipient) DO NOTHING RETURNING id""",
                intervention_id,
                project_id,
                delivery.ledger_channel,
                delivery.recipient,
                self.replica,
            )
            if claimed is not None:
                return None
            row = await conn.fetchrow(
                """SELECT status, detail, attempts FROM notification_deliveries
                   WHERE intervention_id = $1 AND channel = $2 AND recipient = $3 FOR UPDATE""",
                intervention_id,
                delivery.ledger_channel,
                delivery.recipient,
            )
            if row["status"] == "sending" and delivery.resend_is_safe:
                await conn.execute(
                    """UPDATE notification_deliveries SET claimed_by = $4, updated_at = now()
                       WHERE intervention_id = $1 AND channel = $2 AND recipient = $3""",
                    intervention_id,
                    delivery.ledger_channel,
                    delivery.recipient,
                    self.replica,
                )
                return None
            if row["status"] == "sending":
                detail = (
                    "the replica sending it stopped mid-send; not sent again to avoid a duplicate"
                )
                await conn.execute(
                    """UPDATE notification_deliveries
                       SET status = 'unknown', detail = $4, updated_at = now()
                       WHERE intervention_id = $1 AND channel = $2 AND recipient = $3""",
                    intervention_id,
                    delivery.ledger_channel,
                    delivery.recipient,
                    detail,
                )
                return Outcome("unknown", detail, int(row["attempts"]))
            return Outcome(str(row["status"]), str(row["detail"]), int(row["attempts"]))

    async def finish(self, intervention_id: str, delivery: Delivery, outcome: Outcome) -> None:
        await self.pool.execute(
            """UPDATE notification_deliveries
               SET status = $4, detail = $5, attempts = $6, updated_at = now()
               WHERE intervention_id = $1 AND channel = $2 AND recipient = $3""",
            intervention_id,
            delivery.ledger_channel,
            delivery.recipient,
            outcome.status,
            outcome.detail[:1000],
            outcome.attempts,
        )

    async def record_suppressed(self, intervention_id: str, project_id: str, reason: str) -> None:
        await self.pool.execute(
            """INSERT INTO notification_deliveries
                   (intervention_id, project_id, channel, recipient, status, detail)
               VALUES ($1, $2, 'all', '-', 'suppressed', $3)
               ON CONFLICT (intervention_id, channel, recipient) DO NOTHING""",
            intervention_id,
            project_id,
            reason,
        )

    async def audit(
        self, intervention_id: str, status: str, details: dict[str, Any], kind: str = "notification"
    ) -> None:
        """One row of this kind in the intervention's audit trail, however often retried."""
        await self.pool.execute(
            """INSERT INTO intervention_actions (paused_session_id, action_type, action_status,
                                                 action_details)
               SELECT $1, $4, $2, $3::jsonb
               WHERE NOT EXISTS (SELECT 1 FROM intervention_actions
                                 WHERE paused_session_id = $1 AND action_type = $4)""",
            intervention_id,
            status,
            json.dumps(details),
            kind,
        )
