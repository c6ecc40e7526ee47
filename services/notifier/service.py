"""The notifier's work for one paused intervention: decide, deliver in parallel, record, publish."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
from nats.js import JetStreamContext
from yokeflow_agent.contract import (
    ChannelOutcome,
    Intervention,
    InterventionNotified,
    InterventionPaused,
    RecoveryOutcome,
    Subjects,
)

from yokeflow_intervention.shared.bus import publish_event
from yokeflow_intervention.shared.handling import NotReadyYet
from yokeflow_intervention.shared.metrics import NOTIFICATIONS
from yokeflow_intervention.shared.preferences import NotificationPreferences, load_preferences
from yokeflow_intervention.shared.settings import Settings

from .channels import Delivery, Outcome, Senders, webhook_delivery
from .ledger import Ledger
from .messages import Notice

__all__ = ["NotDecidedYet", "Notifier", "deliveries_for"]

log = logging.getLogger(__name__)


WAITING_TITLE = "YokeFlow Session Waiting for a Person"
FOLLOW_UPS = {
    "succeeded": "YokeFlow Session Resumed Automatically",
    "failed": "YokeFlow Automatic Fix Failed",
    "refused": "YokeFlow Automatic Fix Refused",
}


class NotDecidedYet(NotReadyYet):
    """A recovery outcome arrived before the first notification was decided: retry shortly."""


def deliveries_for(preferences: NotificationPreferences, purpose: str = "paused") -> list[Delivery]:
    found = []
    if preferences.webhook_enabled and preferences.webhook_url:
        hook = webhook_delivery(preferences.webhook_url, preferences.webhook_kind)
        found.append(Delivery(hook.channel, hook.recipient, hook.target, purpose))
    if preferences.email_enabled:
        found += [Delivery("email", a, a, purpose) for a in preferences.email_addresses]
    if preferences.sms_enabled:
        found += [Delivery("sms", n, n, purpose) for n in preferences.sms_numbers]
    return found


class Notifier:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        senders: Senders,
        replica: str,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.js = js
        self.senders = senders
        self.ledger = Ledger(pool, replica)

    async def handle(self, paused: InterventionPaused) -> InterventionNotified:
        preferences = await load_preferences(self.pool, paused.project_id)
        if preferences is None:
            preferences = NotificationPreferences.from_settings(self.settings)
        decision, before = await self.ledger.decide(
            paused.intervention_id,
            paused.project_id,
            preferences.min_notification_interval,
            preferences.wants(paused.trigger),
        )
        outcomes: list[ChannelOutcome] = []
        if decision == "notify":
            notice = Notice(paused, before, self.settings.dashboard_url)
            deliveries = deliveries_for(preferences)
            results = await asyncio.gather(*(self._deliver(paused, d, notice) for d in deliveries))
            outcomes = [
                ChannelOutcome(channel=d.channel, recipient=d.recipient, status=o.status,
                               detail=o.detail, attempts=o.attempts)
                for d, o in zip(deliveries, results, strict=True)
            ]  # fmt: skip
        else:
            NOTIFICATIONS.labels("all", decision).inc()
        if decision == "suppressed":
            await self.ledger.record_suppressed(
                paused.intervention_id,
                paused.project_id,
                f"rate limit: one notification per {preferences.min_notification_interval} s",
            )
        status = decision if decision != "notify" else (
            "sent" if outcomes and all(o.status == "sent" for o in outcomes) else "failed"
            if outcomes else "no_channels"
        )  # fmt: skip
        await self.ledger.audit(
            paused.intervention_id,
            status,
            {
                "decision": decision,
                "suppressed_before": before,
                "channels": [o.model_dump() for o in outcomes],
            },
        )
        notified = InterventionNotified(
            intervention_id=paused.intervention_id,
            project_id=paused.project_id,
            session_id=paused.session_id,
            decision=decision,
            suppressed_before=before,
            outcomes=outcomes,
        )
        await publish_event(
            self.js,
            Subjects.notified(paused.project_id),
            notified,
            msg_id=f"{paused.intervention_id}:notified",
        )
        log.info(
            "%s: %s", decision, ", ".join(f"{o.channel} {o.status}" for o in outcomes) or "no channels",
            extra={"intervention_id": paused.intervention_id, "project_id": paused.project_id},
        )  # fmt: skip
        return notified

    async def follow_up(self, outcome: RecoveryOutcome) -> list[Outcome]:
        """Tell the same people what automatic recovery did, once per channel and recipient."""
        if outcome.status not in FOLLOW_UPS or outcome.dry_run:
            return []
        decision = await self.pool.fetchval(
            "SELECT decision FROM notification_decisions WHERE intervention_id = $1",
            outcome.intervention_id,
        )
        if decision is None:
            raise NotDecidedYet(f"no notification decided yet for {outcome.intervention_id}")
        if decision != "notify":
            return []  # they were not told about the pause; do not start with its ending
        row = await self.pool.fetchrow(
            "SELECT intervention, paused_at FROM paused_sessions WHERE id = $1",
            outcome.intervention_id,
        )
        paused = InterventionPaused(**json.loads(row["intervention"]), paused_at=row["paused_at"])
        preferences = await load_preferences(self.pool, paused.project_id)
        if preferences is None:
            preferences = NotificationPreferences.from_settings(self.settings)
        resumed = " and the session was resumed" if outcome.auto_resumed else ""
        headline = f"Automatic recovery {outcome.status}{resumed}"
        if outcome.detail:
            headline += f": {outcome.detail}"
        notice = Notice(
            paused,
            0,
            self.settings.dashboard_url,
            FOLLOW_UPS[outcome.status],
            headline,
        )
        deliveries = deliveries_for(preferences, "recovery")
        results = await asyncio.gather(*(self._deliver(paused, d, notice) for d in deliveries))
        channels = [
            {"channel": d.channel, "status": r.status}
            for d, r in zip(deliveries, results, strict=True)
        ]
        await self.ledger.audit(
            outcome.intervention_id,
            "sent" if results and all(r.status == "sent" for r in results) else "failed",
            {"recovery": outcome.status, "channels": channels},
            kind="notification_followup",
        )
        return list(results)

    async def tell_waiting(self, waiting: Intervention) -> list[Outcome]:
        """A session has waited long for a person (trigger `waiting`): tell the project's
        humans what is asked, on the channels a pause would use. Nothing is paused, so there is
        no pause to record: the consumer delivers each notice at most once instead."""
        preferences = await load_preferences(self.pool, waiting.project_id)
        if preferences is None:
            preferences = NotificationPreferences.from_settings(self.settings)
        if not preferences.wants(waiting.trigger):
            NOTIFICATIONS.labels("all", "muted").inc()
            return []
        asked = InterventionPaused(**waiting.model_dump(), paused_at=waiting.detected_at)
        notice = Notice(asked, 0, self.settings.dashboard_url, WAITING_TITLE)
        deliveries = deliveries_for(preferences, "waiting")
        results = await asyncio.gather(*(self.senders.send(d, notice) for d in deliveries))
        for delivery, outcome in zip(deliveries, results, strict=True):
            NOTIFICATIONS.labels(delivery.ledger_channel, outcome.status).inc()
        log.info(
            "waiting notice %s: %s",
            waiting.intervention_id,
            ", ".join(f"{d.channel} {o.status}" for d, o in zip(deliveries, results, strict=True))
            or "no channels",
        )
        return list(results)

    async def _deliver(
        self, paused: InterventionPaused, delivery: Delivery, notice: Notice
    ) -> Outcome:
        recorded = await self.ledger.claim(paused.intervention_id, paused.project_id, delivery)
        if recorded is not None:
            return recorded
        outcome = await self.senders.send(delivery, notice)
        await self.ledger.finish(paused.intervention_id, delivery, outcome)
        NOTIFICATIONS.labels(delivery.ledger_channel, outcome.status).inc()
        return outcome
