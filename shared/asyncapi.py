"""The public contract as a FastStream application, for its AsyncAPI document only.

It is never started: `make asyncapi` runs `python -m yokeflow_intervention.shared.asyncapi`,
which renders it with every mapping's keys sorted (FastStream's own order differs between two
virtual environments built from the same lock), and the result is committed as
docs/asyncapi.yaml; a test fails when it is stale. Every schema comes from the contract module
(`yokeflow_agent.contract`), so the document cannot drift from what the services publish.
"""

from __future__ import annotations

import yaml
from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from yokeflow_agent.contract import (
    AgentEvent,
    DeadLetter,
    Intervention,
    InterventionAcknowledged,
    InterventionNotified,
    InterventionPaused,
    InterventionResumed,
    InterventionSnoozed,
    InterventionWarned,
    RecoveryOutcome,
    Verdict,
)

__all__ = ["app", "broker", "render"]

broker = NatsBroker(
    "nats://localhost:4222",
    description="NATS with JetStream (streams AGENT_EVENTS, INTERVENTIONS, DEAD_LETTERS)",
)


@broker.subscriber(
    "agent.events.{project_id}.{session_id}",
    title="agent.events",
    description=(
        "Every event of an agent session (stream AGENT_EVENTS). Publish with the header "
        "Nats-Msg-Id = event_id: a re-published event is dropped. The stream stores it as "
        "agent.events.{project_id}.{session_id}.{partition} (the detector partition of the "
        "session, 0-15): read a session's events with the filter "
        "agent.events.{project_id}.{session_id}.*. Consumed by the detector. The detector's "
        "clock ticks share the stream as empty messages on agent.events.$clock.tick.{partition} "
        "(no session: skip them); the watchdog counts time by the stream's timestamps."
    ),
)
async def agent_event(event: AgentEvent) -> None:
    """Documentation only."""


_LIFECYCLE = (
    (
        "intervention.detected.{project_id}",
        Intervention,
        "A session is stuck (detector, or a manual pause). Nats-Msg-Id = intervention_id.",
    ),
    (
        "intervention.paused.{project_id}",
        InterventionPaused,
        "The pause is durable: row written, session_control set to paused. "
        "Nats-Msg-Id = <id>:paused.",
    ),
    (
        "intervention.resumed.{project_id}",
        InterventionResumed,
        "A human or automatic recovery resumed the session; "
        "resume_context is the next session's brief.",
    ),
    (
        "intervention.notified.{project_id}",
        InterventionNotified,
        "Every channel has an outcome (or the notice was rate-limited or muted).",
    ),
    (
        "intervention.recovery.{project_id}",
        RecoveryOutcome,
        "A step of an automatic fix: attempted, succeeded, failed or refused.",
    ),
    (
        "intervention.warned.{project_id}",
        InterventionWarned,
        "A session one step from a stop was warned (its agent told what to try instead), once per "
        "pattern, before any human is paged. Added to v1. Nats-Msg-Id = warning_id.",
    ),
    (
        "intervention.acknowledged.{project_id}",
        InterventionAcknowledged,
        "A human took the incident (who, and from where: API, CLI, a signed link in an email, SMS "
        "or Discord notice, a Slack button). Once per intervention, however many clicks. Added to "
        "v1. Nats-Msg-Id = <id>:acknowledged.",
    ),
    (
        "intervention.snoozed.{project_id}",
        InterventionSnoozed,
        "A human put the incident's repeated notices off until `until`; the session stays paused. "
        "Added to v1. Nats-Msg-Id = <id>:snoozed:<until>.",
    ),
    (
        "intervention.waiting.{project_id}",
        Intervention,
        "A session has waited waiting_notification_after for a person (a permission prompt, a "
        "question): trigger waiting, the reason says what is asked. Nothing is paused; "
        "the notifier tells the project's humans. Added to v1. Nats-Msg-Id = intervention_id.",
    ),
    (
        "agent.verdicts.{project_id}.{session_id}",
        Verdict,
        "The detector's answer to each agent event, for the agent that published it (core NATS, "
        "not stored): continue, warn, or stop with the pause. Added to v1.",
    ),
    ("agent.dlq", DeadLetter, "An agent event that breaks the contract, with the reason."),
    (
        "intervention.dlq",
        DeadLetter,
        "An intervention message that could not be processed, with the reason.",
    ),
)

for _subject, _model, _description in _LIFECYCLE:
    broker.publisher(
        _subject,
        schema=_model,
        title=_subject.split(".{")[0],
        description=_description,
    )

app = FastStream(
    broker,
    specification=AsyncAPI(
        title="YokeFlow Intervention events",
        version="1.0.0",
        description=(
            "Contract v1. Subscribe to intervention.> through a JetStream consumer on the "
            "INTERVENTIONS stream; fields may be added (ignore unknown ones), never removed."
        ),
    ),
)


def render() -> str:
    """The AsyncAPI document as YAML, the same on every machine."""
    return yaml.safe_dump(
        app.schema.to_specification().to_jsonable(),
        sort_keys=True,
        allow_unicode=True,
        width=100,
    )


if __name__ == "__main__":
    print(render(), end="")
