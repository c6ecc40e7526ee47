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
from typing import Any

import asyncpg

from .channels import Delivery, Outcome

__all__ = ["Ledger"]


class Ledger:
    def __init__(self, pool: asyncpg.Pool, replica: str) -> None:
        self.pool = pool
        self.replica = replica

    async def decide(
        self, intervention_id: str, project_id: str, interval_s: int, wanted: bool
    ) -> tuple[str, int]:
        """notify / suppressed / muted, and how many were suppressed before this one.

        Serialised per project by a row lock, so any number of replicas agree; remembered per
        intervention, so a redelivered message gets the same answer. Times are clock_timestamp(),
        not now(): now() is when the transaction began, before it waited for the lock.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO notification_throttle (project_id) VALUES ($1) ON CONFLICT DO NOTHING",
                project_id,
            )
            throttle = await conn.fetchrow(
                """SELECT last_notified_at, suppressed_since,
                          last_notified_at IS NULL
                          OR last_notified_at <= clock_timestamp() - make_interval(secs => $2) AS due
                   FROM notification_throttle WHERE project_id = $1 FOR UPDATE""",
                project_id,
                float(interval_s),
            )
            earlier = await conn.fetchrow(
                "SELECT decision, suppressed_before FROM notification_decisions WHERE intervention_id = $1",
                intervention_id,
            )
            if earlier is not None:
                return str(earlier["decision"]), int(earlier["suppressed_before"])
            before = 0
            if not wanted:
                decision = "muted"
            elif throttle["due"]:
                decision, before = "notify", int(throttle["suppressed_since"])
                await conn.execute(
                    """UPDATE notification_throttle
                       SET last_notified_at = clock_timestamp(), suppressed_since = 0
                       WHERE project_id = $1""",
                    project_id,
                )
            else:
                decision = "suppressed"
                await conn.execute(
                    """UPDATE notification_throttle SET suppressed_since = suppressed_since + 1
                       WHERE project_id = $1""",
                    project_id,
                )
            await conn.execute(
                """INSERT INTO notification_decisions
                       (intervention_id, project_id, decision, suppressed_before)
                   VALUES ($1, $2, $3, $4)""",
                intervention_id,
                project_id,
                decision,
                before,
            )
            return decision, before

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
                    """UPDATE notification_deliveries SET status = 'unknown', detail = $4, updated_at = now()
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
