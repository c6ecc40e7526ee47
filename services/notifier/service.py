"""The notifier's work for one paused intervention: decide, deliver in parallel, record, publish."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import asyncpg
from nats.js import JetStreamContext
from yokeflow_agent.contract import (
    AUTO_RECOVERY_RESOLVER,
    ActingChannel,
    ChannelOutcome,
    Intervention,
    InterventionNotified,
    InterventionPaused,
    RecoveryOutcome,
    Subjects,
)

from yokeflow_intervention.shared.action_links import Action, ActionLink, sign_link
from yokeflow_intervention.shared.bus import publish_event
from yokeflow_intervention.shared.handling import NotReadyYet
from yokeflow_intervention.shared.metrics import NOTIFICATIONS
from yokeflow_intervention.shared.preferences import NotificationPreferences, load_preferences
from yokeflow_intervention.shared.settings import Settings

from .channels import Delivery, Outcome, Senders, webhook_delivery
from .ledger import Ledger
from .messages import Notice
from .slack_app import IncidentState

__all__ = ["NotDecidedYet", "Notifier", "deliveries_for"]

log = logging.getLogger(__name__)


WAITING_TITLE = "YokeFlow Session Waiting for a Person"
FOLLOW_UPS = {
    "succeeded": "YokeFlow Session Resumed Automatically",
    "failed": "YokeFlow Automatic Fix Failed",
    "refused": "YokeFlow Automatic Fix Refused",
}


# The signed links a notice carries, in this order (an SMS carries the first only).
LINK_ACTIONS: tuple[tuple[Action, str], ...] = (
    ("acknowledge", "Acknowledge"),
    ("resume", "Resume"),
    ("snooze", "Snooze 1 h"),
)
# Channels a person reads and clicks in; a generic webhook is a program, Slack has its buttons.
LINK_CHANNELS = frozenset({"email", "sms", "discord"})


def _paused_of(row: asyncpg.Record) -> InterventionPaused:
    return InterventionPaused(**json.loads(row["intervention"]), paused_at=row["paused_at"])


RESOLVED = "YokeFlow Session Resolved"


class NotDecidedYet(NotReadyYet):
    """A recovery outcome arrived before the first notification was decided, or while it is
    still being sent: retry shortly."""


def deliveries_for(
    preferences: NotificationPreferences, purpose: str = "paused", slack_app: bool = False
) -> list[Delivery]:
    found = []
    if preferences.pagerduty_routing_key and purpose == "paused":
        key = preferences.pagerduty_routing_key
        # A webhook in the notified event's outcomes (the contract's channels are unchanged).
        found.append(Delivery("webhook", f"PagerDuty …{key[-4:]}", key, purpose, api="pagerduty"))
    if slack_app and preferences.slack_channel:
        channel = preferences.slack_channel
        found.append(Delivery("slack", f"channel {channel}", channel, purpose, api="slack"))
    if preferences.webhook_enabled and preferences.webhook_url:
        hook = webhook_delivery(preferences.webhook_url, preferences.webhook_kind)
        found.append(Delivery(hook.channel, hook.recipient, hook.target, purpose))
    if preferences.email_enabled:
        found += [Delivery("email", a, a, purpose) for a in preferences.email_addresses]
    if preferences.sms_enabled:
        found += [Delivery("sms", n, n, purpose) for n in preferences.sms_numbers]
    return found


def escalation_deliveries(
    preferences: NotificationPreferences, purpose: str = "escalation"
) -> list[Delivery]:
    """Where an incident nobody acknowledged goes next: the project's escalation contacts."""
    return [Delivery("email", a, a, purpose) for a in preferences.escalation_email_addresses] + [
        Delivery("sms", n, n, purpose) for n in preferences.escalation_sms_numbers
    ]


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
        decided = await self.ledger.decide(paused, preferences, preferences.wants(paused.trigger))
        decision, before = decided.decision, decided.before
        outcomes: list[ChannelOutcome] = []
        if decision == "notify":
            notice = Notice(paused, before, self.settings.dashboard_url)
            deliveries = deliveries_for(preferences, slack_app=self.senders.slack is not None)
            results = await asyncio.gather(*(self._deliver(paused, d, notice) for d in deliveries))
            outcomes = [
                ChannelOutcome(
                    channel=d.channel,
                    recipient=d.recipient,
                    status=o.status,
                    detail=o.detail,
                    attempts=o.attempts,
                )
                for d, o in zip(deliveries, results, strict=True)
            ]
        else:
            NOTIFICATIONS.labels("all", decision).inc()
        if decision == "suppressed":
            await self.ledger.record_suppressed(
                paused.intervention_id, paused.project_id, decided.reason
            )
        if decided.grouped_into is not None:
            await self.refresh(decided.grouped_into)  # its Slack message lists this session
        status = (
            decision
            if decision != "notify"
            else (
                "sent"
                if outcomes and all(o.status == "sent" for o in outcomes)
                else "failed"
                if outcomes
                else "no_channels"
            )
        )
        await self.ledger.audit(
            paused.intervention_id,
            status,
            {
                "decision": decision,
                "reason": decided.reason,
                "grouped_into": decided.grouped_into,
                "suppressed_before": before,
                "channels": [o.model_dump() for o in outcomes],
            },
        )
        notified = InterventionNotified(
            intervention_id=paused.intervention_id,
            project_id=paused.project_id,
            session_id=paused.session_id,
            decision=decision,
            reason=decided.reason,
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
            "%s: %s",
            decision,
            ", ".join(f"{o.channel} {o.status}" for o in outcomes) or "no channels",
            extra={"intervention_id": paused.intervention_id, "project_id": paused.project_id},
        )
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
        # Its ending never reaches anyone before the pause itself: a fix can finish while the
        # pause notice is still being sent (a slow webhook, a retry), and a person would read
        # "resumed" above "blocked". The pause notice's own rows carry no ":purpose".
        sending = await self.pool.fetchval(
            """SELECT count(*) FROM notification_deliveries
               WHERE intervention_id = $1 AND status = 'sending'
                 AND position(':' in channel) = 0""",
            outcome.intervention_id,
        )
        if sending:
            raise NotDecidedYet(
                f"the pause notice of {outcome.intervention_id} is still being sent"
            )
        row = await self.pool.fetchrow(
            "SELECT intervention, paused_at FROM paused_sessions WHERE id = $1",
            outcome.intervention_id,
        )
        paused = _paused_of(row)
        preferences = await load_preferences(self.pool, paused.project_id)
        if preferences is None:
            preferences = NotificationPreferences.from_settings(self.settings)
        resumed = " and the session was resumed" if outcome.auto_resumed else ""
        notice = Notice(
            paused,
            0,
            self.settings.dashboard_url,
            FOLLOW_UPS[outcome.status],
            f"Automatic recovery {outcome.status}{resumed}",
            outcome.detail,  # what the fix saw (a command line): shown as agent text
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

    async def refresh(self, intervention_id: str) -> list[Outcome]:
        """Edit the incident's Slack message to show where it stands now. Reads the row, not
        the event: redelivered or out-of-order events all end in the same message."""
        posted = await self.pool.fetchrow(
            "SELECT channel, ts FROM slack_messages WHERE intervention_id = $1", intervention_id
        )
        if posted is None:
            return []
        row = await self.pool.fetchrow(
            "SELECT * FROM paused_sessions WHERE id = $1", intervention_id
        )
        notice = Notice(_paused_of(row), 0, self.settings.dashboard_url)
        state = IncidentState.of(dict(row))
        outcome = await self.senders.slack_update(
            posted["channel"], posted["ts"], notice, state, datetime.now(UTC)
        )
        await self.pool.execute(
            "UPDATE slack_messages SET updated_at = now() WHERE intervention_id = $1",
            intervention_id,
        )
        NOTIFICATIONS.labels("slack_app:update", outcome.status).inc()
        return [outcome]

    async def changed(self, intervention_id: str, kind: str, resolved_by: str = "") -> None:
        """An incident changed (acknowledged, snoozed, resumed): its Slack message shows it,
        PagerDuty follows it, and a resume is told, once, on the channels that were paged."""
        await self.refresh(intervention_id)
        if kind in ("acknowledged", "resumed"):
            await self._pagerduty_follows(
                intervention_id, "acknowledge" if kind == "acknowledged" else "resolve"
            )
        if kind == "resumed" and resolved_by != AUTO_RECOVERY_RESOLVER:
            # (an automatic resume was told by the recovery follow-up already)
            await self._resolved(intervention_id, resolved_by)

    async def _pagerduty_follows(self, intervention_id: str, action: str) -> None:
        triggered = await self.pool.fetchval(
            """SELECT 1 FROM notification_deliveries
               WHERE intervention_id = $1 AND channel = 'pagerduty' AND status = 'sent'""",
            intervention_id,
        )
        if triggered is None:
            return
        row = await self.pool.fetchrow(
            "SELECT * FROM paused_sessions WHERE id = $1", intervention_id
        )
        preferences = await self._preferences(row["project_id"])
        if not preferences.pagerduty_routing_key:
            return
        key = preferences.pagerduty_routing_key
        notice = Notice(_paused_of(row), 0, self.settings.dashboard_url)
        delivery = Delivery("webhook", f"PagerDuty …{key[-4:]}", key, action, api="pagerduty")
        recorded = await self.ledger.claim(intervention_id, row["project_id"], delivery)
        if recorded is None:
            outcome = await self.senders.pagerduty(key, action, notice)
            await self.ledger.finish(intervention_id, delivery, outcome)

    async def _resolved(self, intervention_id: str, resolved_by: str) -> list[Outcome]:
        decision = await self.pool.fetchval(
            "SELECT decision FROM notification_decisions WHERE intervention_id = $1",
            intervention_id,
        )
        if decision != "notify":
            return []  # nobody was paged about it
        rows = await self.pool.fetch(
            """SELECT channel, recipient FROM notification_deliveries
               WHERE intervention_id = $1 AND status = 'sent'""",
            intervention_id,
        )
        paged = {(r["channel"].split(":")[0], r["recipient"]) for r in rows}
        row = await self.pool.fetchrow(
            "SELECT * FROM paused_sessions WHERE id = $1", intervention_id
        )
        preferences = await self._preferences(row["project_id"])
        candidates = deliveries_for(preferences, "resolved") + escalation_deliveries(
            preferences, "resolved"
        )
        deliveries = list(
            {
                (d.channel, d.recipient): d for d in candidates if (d.channel, d.recipient) in paged
            }.values()
        )
        paused = _paused_of(row)
        notice = Notice(
            paused, 0, self.settings.dashboard_url, RESOLVED, f"Resolved by {resolved_by}"
        )
        results = await asyncio.gather(*(self._deliver(paused, d, notice) for d in deliveries))
        return list(results)

    async def _preferences(self, project_id: str) -> NotificationPreferences:
        found = await load_preferences(self.pool, project_id)
        return found or NotificationPreferences.from_settings(self.settings)

    async def _grouped(self, intervention_id: str) -> tuple[str, ...]:
        rows = await self.pool.fetch(
            """SELECT p.session_id FROM notification_decisions d
               JOIN paused_sessions p ON p.id = d.intervention_id
               WHERE d.grouped_into = $1 AND d.reason LIKE 'grouped%' ORDER BY d.decided_at""",
            intervention_id,
        )
        return tuple(r["session_id"] for r in rows)

    async def sweep(self) -> int:
        """Page again what nobody has taken: an unacknowledged, unsnoozed, unresolved incident
        is repeated every `notification_repeat_interval` on its channels and, once
        `notification_escalate_after` has passed since the stop, sent to the escalation
        addresses and numbers. Each page is claimed by an UPDATE first, so of several replicas
        one sends. Returns how many incidents were paged."""
        rows = await self.pool.fetch(
            """SELECT ip.intervention_id, ip.project_id, ip.escalated_at,
                      extract(epoch FROM now() - ip.last_paged_at) AS quiet_s,
                      extract(epoch FROM now() - p.paused_at) AS stopped_s
               FROM incident_pages ip JOIN paused_sessions p ON p.id = ip.intervention_id
               WHERE NOT p.resolved AND p.acknowledged_at IS NULL
                 AND (p.snoozed_until IS NULL OR p.snoozed_until <= now())
               ORDER BY ip.last_paged_at LIMIT 500"""
        )
        preferences: dict[str, NotificationPreferences] = {}
        paged = 0
        for row in rows:
            project = row["project_id"]
            if project not in preferences:
                preferences[project] = await load_preferences(
                    self.pool, project
                ) or NotificationPreferences.from_settings(self.settings)
            wanted = preferences[project]
            escalate = (
                wanted.notification_escalate_after > 0
                and row["escalated_at"] is None
                and row["stopped_s"] >= wanted.notification_escalate_after
                and bool(wanted.escalation_email_addresses or wanted.escalation_sms_numbers)
            )
            repeat = 0 < wanted.notification_repeat_interval <= row["quiet_s"]
            if escalate and await self.pool.fetchval(
                """UPDATE incident_pages SET escalated_at = now(), last_paged_at = now()
                   WHERE intervention_id = $1 AND escalated_at IS NULL RETURNING 1""",
                row["intervention_id"],
            ):
                await self._page(row["intervention_id"], wanted, "escalation")
                paged += 1
            elif repeat:
                repeats = await self.pool.fetchval(
                    """UPDATE incident_pages SET repeats = repeats + 1, last_paged_at = now()
                       WHERE intervention_id = $1
                         AND last_paged_at <= now() - make_interval(secs => $2)
                       RETURNING repeats""",
                    row["intervention_id"],
                    float(wanted.notification_repeat_interval),
                )
                if repeats is not None:
                    await self._page(row["intervention_id"], wanted, f"repeat{repeats}")
                    paged += 1
        return paged

    async def _page(
        self, intervention_id: str, preferences: NotificationPreferences, purpose: str
    ) -> list[Outcome]:
        row = await self.pool.fetchrow(
            "SELECT intervention, paused_at FROM paused_sessions WHERE id = $1", intervention_id
        )
        paused = _paused_of(row)
        if purpose == "escalation":
            title = "YokeFlow Session Blocked, Escalated: Nobody Has Acknowledged It"
            deliveries = escalation_deliveries(preferences)
        else:
            title = f"YokeFlow Session Still Blocked (reminder {purpose.removeprefix('repeat')})"
            deliveries = deliveries_for(preferences, purpose)
        grouped = await self._grouped(intervention_id)
        notice = Notice(paused, 0, self.settings.dashboard_url, title, grouped=grouped)
        results = await asyncio.gather(*(self._deliver(paused, d, notice) for d in deliveries))
        channels = [
            {"channel": d.ledger_channel, "status": r.status}
            for d, r in zip(deliveries, results, strict=True)
        ]
        status = "sent" if results and all(r.status == "sent" for r in results) else "failed"
        details = {"page": purpose, "channels": channels}
        await self.ledger.audit(intervention_id, status, details, kind=f"notification_{purpose}")
        return list(results)

    def _with_links(self, notice: Notice, delivery: Delivery) -> Notice:
        """The notice with links signed for this recipient, who each act is attributed to."""
        secret, base = self.settings.action_link_secret, self.settings.dashboard_url
        if (
            secret is None
            or not base
            or delivery.purpose in ("recovery", "resolved")
            or delivery.channel not in LINK_CHANNELS
        ):
            return notice
        i = notice.intervention
        expires = int(time.time()) + self.settings.action_link_ttl
        via = cast(ActingChannel, delivery.channel)
        actions = tuple(
            (
                label,
                f"{base.rstrip('/')}/actions/"
                + sign_link(
                    secret.get_secret_value(),
                    ActionLink(
                        i.intervention_id, i.project_id, action, via, delivery.recipient, expires
                    ),
                ),
            )
            for action, label in LINK_ACTIONS
        )
        return replace(notice, actions=actions)

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
        outcome = await self.senders.send(delivery, self._with_links(notice, delivery))
        await self.ledger.finish(paused.intervention_id, delivery, outcome)
        if delivery.api == "slack" and outcome.ref is not None:
            await self.pool.execute(
                """INSERT INTO slack_messages (intervention_id, project_id, channel, ts)
                   VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
                paused.intervention_id,
                paused.project_id,
                delivery.target,
                outcome.ref,
            )
        NOTIFICATIONS.labels(delivery.ledger_channel, outcome.status).inc()
        return outcome
