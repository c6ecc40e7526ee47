"""Notifier service: intervention.paused in, people told, intervention.notified out.

Any number of replicas share one durable consumer (deliver group `notifier`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

import httpx
from yokeflow_agent.contract import (
    CONSUMERS,
    Intervention,
    InterventionAcknowledged,
    InterventionPaused,
    InterventionResumed,
    InterventionSnoozed,
    RecoveryOutcome,
)

from yokeflow_intervention.shared.service import Binding, Consume, Every, Resources, run_service

from .channels import Senders
from .service import Notifier

__all__ = ["build", "main"]

EDITS = "Shows each change of an incident on Slack and PagerDuty; a resume, where paged."


async def build(resources: Resources) -> Sequence[Binding]:
    settings = resources.settings
    concurrency = settings.notifier_concurrency
    pool = await resources.database(max_size=concurrency + 2)
    http = await resources.stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
    senders = Senders(settings, http)
    resources.stack.push_async_callback(senders.close)
    replica = f"{socket.gethostname()}:{os.getpid()}"
    notifier = Notifier(settings, pool, resources.js, senders, replica)
    return [
        Consume(
            CONSUMERS.notifier_paused,
            InterventionPaused,
            notifier.handle,
            "Tells the project's humans about each paused session.",
            concurrency,
            keepalive=True,
        ),
        Consume(
            CONSUMERS.notifier_recovery,
            RecoveryOutcome,
            notifier.follow_up,
            "Tells the same people what automatic recovery did.",
            concurrency,
            keepalive=True,
        ),
        Consume(
            CONSUMERS.notifier_acknowledged,
            InterventionAcknowledged,
            lambda event: notifier.changed(event.intervention_id, "acknowledged"),
            EDITS,
            concurrency,
        ),
        Consume(
            CONSUMERS.notifier_snoozed,
            InterventionSnoozed,
            lambda event: notifier.changed(event.intervention_id, "snoozed"),
            EDITS,
            concurrency,
        ),
        Consume(
            CONSUMERS.notifier_resumed,
            InterventionResumed,
            lambda event: notifier.changed(event.intervention_id, "resumed", event.resolved_by),
            EDITS,
            concurrency,
        ),
        Consume(
            CONSUMERS.notifier_waiting,
            Intervention,
            notifier.tell_waiting,
            "Tells the project's humans a session has long waited for them.",
            concurrency,
            keepalive=True,
        ),
        Every(settings.notification_sweep_interval, notifier.sweep, "repeating and escalating"),
    ]


def main() -> None:
    run_service("notifier", build)
