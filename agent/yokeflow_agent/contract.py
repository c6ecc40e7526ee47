"""Contract v1: every event, subject, stream, consumer and bucket the services share.

This module is the public contract. Services import it and never redefine a subject or a
schema; downstream consumers can rely on what is written here (and in docs/asyncapi.yaml).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from . import names

__all__ = [
    "AGENT_EVENTS_STREAM",
    "AUTO_RECOVERY_RESOLVER",
    "CLOCK_NAME",
    "CLOCK_TICK_TTL_S",
    "CONSUMERS",
    "CONTRACT_VERSION",
    "CONTROL_BUCKET",
    "DEAD_LETTER_STREAM",
    "DETECTOR_CHECKPOINT_BUCKET",
    "DETECTOR_PARTITIONS",
    "FIRST_TRIGGERS",
    "INTERVENTIONS_STREAM",
    "KNOWN_BLOCKER_TYPES",
    "KV_BUCKETS",
    "MAX_EVENT_BYTES",
    "MAX_EVENT_DEPTH",
    "MAX_SEQ",
    "SESSION_SUMMARY_BUCKET",
    "SESSION_SUMMARY_TTL_S",
    "STREAMS",
    "ActingChannel",
    "AgentEvent",
    "AgentMessage",
    "BlockerType",
    "ChannelOutcome",
    "CommandError",
    "CommandReply",
    "ConsumerSpec",
    "Consumers",
    "ContractError",
    "ControlKeys",
    "DeadLetter",
    "DetectionMode",
    "ErrorEvent",
    "ExcerptText",
    "Heartbeat",
    "Identifier",
    "Intervention",
    "InterventionAcknowledged",
    "InterventionNotified",
    "InterventionPaused",
    "InterventionResumed",
    "InterventionSnoozed",
    "InterventionWarned",
    "OpenTrigger",
    "PathText",
    "RecoveryOutcome",
    "RetryStats",
    "RiskKind",
    "SessionControl",
    "SessionEnded",
    "SessionStarted",
    "SessionSummary",
    "ShortText",
    "StreamSpec",
    "Subjects",
    "SummaryText",
    "Task",
    "Text",
    "ToolCall",
    "ToolResult",
    "ToolResultBody",
    "Trigger",
    "Verdict",
    "Waiting",
    "WaitingKind",
    "agent_inbox_prefix",
    "incident_key",
    "intervention_id_for",
    "parse_agent_event",
    "parse_message",
    "warning_id_for",
]

CONTRACT_VERSION = 1

# Ids travel as NATS subject tokens and KV keys, so they must be valid for both.
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]

Trigger = Literal[
    "critical_error",
    "retry_limit",
    "loop_pattern",
    "error_rate",
    "session_duration",
    "manual",
    "no_progress",  # added in contract v1: results that bring nothing new (detection rules)
    # Added to v1 (the watchdog): a tool call with no result past its limit; no event at all
    # from an open session past its limit.
    "tool_call_timeout",
    "silence",
    # Not a stop: the notice that a session has waited long for a person (`Waiting`), on
    # intervention.waiting; it never pauses the session.
    "waiting",
]
# A project's detection mode: enforce stops stuck sessions, observe only records the stops it
# would have made (projects.<id>.detection_mode in the configuration).
DetectionMode = Literal["enforce", "observe"]

# The triggers of the first release of contract v1: what its clients can read in a pause.
FIRST_TRIGGERS = frozenset(
    ("critical_error", "retry_limit", "loop_pattern", "error_rate", "session_duration", "manual")
)


def _known_or_text(value: object) -> object:
    """A trigger this client does not know stays a string (clipped), so a client released
    before a new trigger was added still obeys the pause that carries it."""
    if isinstance(value, str) and len(value) > 64:
        return value[:64]
    return value


# What an agent reads: any trigger, known or not (a newer server may send a newer one).
OpenTrigger = Annotated[Trigger | str, BeforeValidator(_known_or_text)]
# Built-in blocker types; configuration may add its own (snake_case) ones.
KNOWN_BLOCKER_TYPES = (
    "prisma_schema_error",
    "port_conflict",
    "redis_unavailable",
    "db_connection",
    "module_not_found",
    "missing_dependency",
)
BlockerType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]

# `seq` and `event_seq` are stored as PostgreSQL integers.
MAX_SEQ = 2**31 - 1
# The largest agent event the bus stores (payload and headers): the AGENT_EVENTS stream refuses a
# larger one in its acknowledgement, and an agent's account cuts a connection that sends one
# much larger. Events clip their long fields far below this (a tool input at 16 KiB, excerpts
# at 4,000 characters), so only a flood of padding reaches it.
MAX_EVENT_BYTES = 256 * 1024
# JSON nesting an agent event may have (a tool's input included); deeper is refused.
MAX_EVENT_DEPTH = 64


def _clean_text(value: str) -> str:
    """Text that can be stored and shown anywhere: a NUL (binary tool output) or a lone UTF-16
    surrogate (broken JSON escapes) becomes U+FFFD instead of failing in PostgreSQL later."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


def _clipper(limit: int) -> AfterValidator:
    def clip(value: str) -> str:
        value = _clean_text(value)
        if len(value) <= limit:
            return value
        marker = f" … [{len(value) - limit} characters clipped]"
        return value[: limit - len(marker)] + marker

    return AfterValidator(clip)


# Free text (much of it from agents): cleaned, and where it is copied into interventions and
# notifications, clipped, so every message fits the server's max_payload and every store.
Text = Annotated[str, AfterValidator(_clean_text)]


# Clipped text: longer text is cut and says how much was cut.
ShortText = Annotated[str, _clipper(200)]  # names, ids, tools
SummaryText = Annotated[str, _clipper(2000)]  # reasons, task descriptions, suggestions
ExcerptText = Annotated[str, _clipper(4000)]  # error excerpts
PathText = Annotated[str, _clipper(4096)]  # workspace paths


class ContractError(ValueError):
    """An incoming message that does not follow the contract; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Model(BaseModel):
    # Unknown fields are ignored so that a newer producer never breaks an older consumer. A
    # field with a default is always there in what is sent, so the schema of what is sent (the
    # API's responses, the dashboard's generated types) says it is.
    model_config = ConfigDict(
        extra="ignore", frozen=True, json_schema_serialization_defaults_required=True
    )


class Task(_Model):
    id: ShortText
    description: SummaryText = ""


class ToolResultBody(_Model):
    ok: bool
    exit_code: int | None = Field(default=None, ge=-(2**31), le=MAX_SEQ)
    output: Text = ""
    error: Text = ""
    duration_ms: int | None = Field(default=None, ge=0, le=2**53)

    @property
    def failure_text(self) -> str:
        """The text a failure is judged by: the error, then the output."""
        return f"{self.error}\n{self.output}".strip()


class _EventBase(_Model):
    v: Literal[1] = 1
    event_id: str = Field(min_length=1, max_length=200)
    project_id: Identifier
    session_id: Identifier
    seq: int = Field(ge=1, le=MAX_SEQ)
    ts: datetime
    task: Task | None = None

    @field_validator("ts")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("ts must carry a timezone (RFC 3339, e.g. 2026-10-05T14:00:00Z)")
        return value.astimezone(UTC)


class SessionStarted(_EventBase):
    type: Literal["session_started"] = "session_started"
    workspace: PathText | None = None
    # Set by an agent session started to continue after a resume.
    resumed_from: ShortText | None = None
    # Which agent CLI runs the session (`claude`, `gemini`, `codex`), as its hook adapter
    # names it; None for agents that embed the Python client. Shown, never trusted.
    client: ShortText | None = None


class ToolCall(_EventBase):
    type: Literal["tool_call"] = "tool_call"
    tool: Annotated[ShortText, Field(min_length=1)]
    input: dict[str, Any] = Field(default_factory=dict)
    call_id: ShortText | None = None


class ToolResult(_EventBase):
    type: Literal["tool_result"] = "tool_result"
    call_id: ShortText | None = None
    tool: ShortText | None = None
    result: ToolResultBody


class ErrorEvent(_EventBase):
    type: Literal["error"] = "error"
    message: Text


class Heartbeat(_EventBase):
    type: Literal["heartbeat"] = "heartbeat"


class SessionEnded(_EventBase):
    type: Literal["session_ended"] = "session_ended"
    reason: ShortText | None = None


class AgentMessage(_EventBase):
    """What the agent said in a turn (its text, not its tool calls); added to v1: consumers that
    do not know the type ignore it. The detector catches monologues, empty replies and the same
    text again and again."""

    type: Literal["agent_message"] = "agent_message"
    text: Text = ""


# What a session waits for a person for: a permission or approval prompt, a question (an
# elicitation), or its next instruction (idle). Open: an adapter may report a later kind.
WaitingKind = Annotated[
    Literal["permission", "question", "idle"] | str, BeforeValidator(_known_or_text)
]


class Waiting(_EventBase):
    """The agent waits for a person (added to v1): a permission or approval prompt nobody has
    answered, a question, or its next instruction. Cleared by the agent's next event (any but a
    heartbeat). While it waits, its silence is no stall; after `waiting_notification_after` a
    human is told what is asked, and the session is not paused. Consumers that do not know the
    type ignore it."""

    type: Literal["waiting"] = "waiting"
    kind: WaitingKind = "question"
    prompt: SummaryText = ""  # what is asked, as the agent shows it (agent text: untrusted)
    tool: ShortText | None = None  # for a permission: the tool it is for


AgentEvent = Annotated[
    SessionStarted
    | ToolCall
    | ToolResult
    | ErrorEvent
    | Heartbeat
    | SessionEnded
    | AgentMessage
    | Waiting,
    Field(discriminator="type"),
]
_agent_event_adapter: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)


def _describe(error: ValidationError, tag: object = None) -> str:
    parts = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]  # the union member's name says nothing a reader needs
        where = ".".join(str(p) for p in loc) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _too_deep(payload: Any, limit: int) -> bool:
    """Whether JSON values nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in value)
    return False


def parse_agent_event(data: bytes | str | dict[str, Any]) -> AgentEvent:
    """Validate one agent event; raise ContractError naming what is wrong."""
    if isinstance(data, dict):
        payload = data
    else:
        raw = data.encode() if isinstance(data, str) else data
        brackets = raw.count(b"[") + raw.count(b"{")
        if brackets <= MAX_EVENT_DEPTH:
            # Most events: parsed and validated in one pass by pydantic's JSON parser, about
            # twice as fast as json.loads and validating the objects. What it accepts, the path
            # below accepts alike; anything it refuses is parsed again below, so an event is
            # refused for the same reason in the same words. (A try, not contextlib.suppress:
            # that costs a tenth of the validation, on every event.)
            try:
                return _agent_event_adapter.validate_json(raw)
            except ValidationError:
                pass
        try:
            payload = json.loads(data)
        except RecursionError:
            raise ContractError(f"JSON nested deeper than {MAX_EVENT_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(f"not valid JSON: {exc}") from exc
        # Fewer brackets than the limit cannot nest past it: most events skip the walk.
        if brackets > MAX_EVENT_DEPTH and _too_deep(payload, MAX_EVENT_DEPTH):
            raise ContractError(f"JSON nested deeper than {MAX_EVENT_DEPTH} levels")
    if not isinstance(payload, dict):
        raise ContractError("an event must be a JSON object")
    if payload.get("v", 1) != CONTRACT_VERSION:
        raise ContractError(f"v: unsupported contract version {payload.get('v')!r}")
    try:
        return _agent_event_adapter.validate_python(payload)
    except ValidationError as exc:
        raise ContractError(_describe(exc, payload.get("type"))) from exc


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_message(model: type[ModelT], data: bytes | str) -> ModelT:
    """Validate a message of the contract; raise ContractError naming what is wrong."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise ContractError(f"{model.__name__}: {_describe(exc)}") from exc


class RetryStats(_Model):
    total_retries: int = 0
    max_retries_on_single_command: int = 0
    unique_errors: int = 0


_INTERVENTION_NAMESPACE = uuid.UUID("6f1d3c8e-2b7a-4f5e-9c0d-1a2b3c4d5e6f")


def intervention_id_for(project_id: str, session_id: str, event_id: str) -> str:
    """Deterministic id: the same triggering event always yields the same intervention."""
    return str(uuid.uuid5(_INTERVENTION_NAMESPACE, f"{project_id}/{session_id}/{event_id}"))


class Intervention(_Model):
    """Published on intervention.detected.<project_id>: a session is stuck."""

    v: Literal[1] = 1
    intervention_id: Identifier
    project_id: Identifier
    session_id: Identifier
    trigger: Trigger
    blocker_type: BlockerType | None = None
    reason: SummaryText
    error_excerpt: ExcerptText = ""
    event_seq: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    event_id: str | None = Field(default=None, max_length=200)
    retry_stats: RetryStats = Field(default_factory=RetryStats)
    task: Task | None = None
    detected_at: datetime
    can_auto_resume: bool = False
    suggested_recovery: SummaryText | None = None
    workspace: PathText | None = None
    # Added to v1. "observe": the project is in observe mode, so this is a stop that would
    # have been made: it is recorded and shown, the session runs on, and nobody is paged (no
    # intervention.paused follows).
    mode: DetectionMode = "enforce"
    # The agent CLI the session runs (from its session_started), for the notice and views.
    client: ShortText | None = None


class InterventionWarned(_Model):
    """Published on intervention.warned.<project_id>: a session is one step from a stop, and its
    agent was told so (what pattern it is in, what to try instead), once, before a human is
    paged. Added to v1: consumers that do not read this subject are unaffected."""

    v: Literal[1] = 1
    warning_id: Identifier
    project_id: Identifier
    session_id: Identifier
    trigger: Trigger  # the stop this warns of
    reason: SummaryText  # what pattern the session is in
    advice: SummaryText  # what the agent is told to try instead
    event_seq: int = Field(ge=0, le=MAX_SEQ)
    event_id: str = Field(max_length=200)
    task: Task | None = None
    detected_at: datetime


def warning_id_for(project_id: str, session_id: str, event_id: str) -> str:
    """Deterministic too: a replayed event never warns twice."""
    return str(uuid.uuid5(_INTERVENTION_NAMESPACE, f"warning:{project_id}/{session_id}/{event_id}"))


class InterventionPaused(Intervention):
    """Published on intervention.paused.<project_id> once the pause is durable."""

    paused_at: datetime


# `resolved_by` of the resumes the recovery service makes after a fix it verified.
AUTO_RECOVERY_RESOLVER = "auto-recovery"


class InterventionResumed(_Model):
    """Published on intervention.resumed.<project_id>; carries the next session's brief."""

    v: Literal[1] = 1
    intervention_id: Identifier
    project_id: Identifier
    session_id: Identifier
    resolved_by: str
    resolution_notes: str = ""
    # Whose notes they are: "human" (an authenticated person's: shown as notes) or "automatic"
    # (automatic recovery's, which repeat what an agent's processes said: shown quoted).
    resolution_source: Literal["human", "automatic"] = "human"
    resolved_at: datetime
    resume_context: str
    workspace: str | None = None
    # Added to v1: the human who resumed marked the stop as a false stop (the session was
    # not stuck), so operators can count how often each trigger is wrong.
    false_stop: bool = False


def incident_key(project_id: str, intervention_id: str) -> str:
    """The incident's deduplication key: one intervention is one incident, wherever it is paged
    (PagerDuty's dedup_key, a Slack message's metadata, a link's subject). Stable because the
    intervention id is."""
    return f"yokeflow/{project_id}/{intervention_id}"


# Where a human acted from: the API's token holders, the CLI, the dashboard, or a signed link or
# button in a notice on that channel.
ActingChannel = Literal["api", "cli", "dashboard", "email", "sms", "discord", "slack"]


class InterventionAcknowledged(_Model):
    """Published on intervention.acknowledged.<project_id> once, when a human first takes the
    incident: repeats and escalation stop, and everyone paged sees who is on it. Added to v1:
    consumers that do not read this subject are unaffected."""

    v: Literal[1] = 1
    intervention_id: Identifier
    project_id: Identifier
    session_id: Identifier
    acknowledged_by: ShortText  # a person: a Slack user, an email address, a phone number, a name
    via: ActingChannel
    acknowledged_at: datetime


class InterventionSnoozed(_Model):
    """Published on intervention.snoozed.<project_id> when a human puts the incident's repeats
    off until `until` (the session stays paused). Added to v1."""

    v: Literal[1] = 1
    intervention_id: Identifier
    project_id: Identifier
    session_id: Identifier
    snoozed_by: ShortText
    via: ActingChannel
    until: datetime
    snoozed_at: datetime


class ChannelOutcome(_Model):
    channel: Literal["slack", "discord", "webhook", "email", "sms"]
    recipient: str  # redacted for webhooks: their URLs are secrets
    status: Literal["sent", "failed", "suppressed", "unknown"]
    detail: str = ""
    attempts: int = 0


class InterventionNotified(_Model):
    """Published on intervention.notified.<project_id> once every channel has an outcome."""

    v: Literal[1] = 1
    intervention_id: Identifier
    project_id: Identifier
    session_id: Identifier
    decision: Literal["notify", "suppressed", "muted"]
    # Why not notified: "grouped into <id>" (the same blocker as an open incident), "inhibited
    # by <id>" (a loop stop during an infrastructure incident), the rate limit, or muted.
    # Added to v1.
    reason: str = ""
    suppressed_before: int = 0
    outcomes: list[ChannelOutcome] = Field(default_factory=list)
    notified_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class RecoveryOutcome(_Model):
    """Published on intervention.recovery.<project_id> for each step of an automatic fix."""

    v: Literal[1] = 1
    intervention_id: Identifier
    project_id: Identifier
    session_id: Identifier
    # nothing_to_do: the problem was already gone (say, the port was free); nothing was run.
    status: Literal["attempted", "succeeded", "failed", "refused", "nothing_to_do"]
    action: str | None = None
    detail: str = ""
    command: list[str] = Field(default_factory=list)
    verification: str = ""
    dry_run: bool = False
    auto_resumed: bool = False
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class DeadLetter(_Model):
    """Published on a dead-letter subject: a message that could not be processed, and why."""

    v: Literal[1] = 1
    reason: str
    original_subject: str
    payload: str
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    consumer: str | None = None  # the durable consumer that gave up on it


class SessionControl(_Model):
    """Value of the session_control KV entry the agent watches (key: ControlKeys.session)."""

    state: Literal["running", "paused"]
    intervention_id: Identifier | None = None
    reason: str = ""
    # One of the first release's triggers, or unset: clients released before a trigger was
    # added read it as a closed set, and must still read the pause. Open from this release on,
    # so a pause with a trigger this client does not know is still a pause.
    trigger: OpenTrigger | None = None
    # The trigger of the pause, whichever it is (`trigger` leaves the later ones unset).
    cause: OpenTrigger | None = None
    blocker_type: BlockerType | None = None
    error_excerpt: str = ""
    retry_stats: RetryStats = Field(default_factory=RetryStats)
    task: Task | None = None
    suggested_recovery: str | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def paused_by(cls, intervention: Intervention, at: datetime) -> SessionControl:
        return cls(
            state="paused",
            intervention_id=intervention.intervention_id,
            reason=intervention.reason,
            trigger=intervention.trigger if intervention.trigger in FIRST_TRIGGERS else None,
            cause=intervention.trigger,
            blocker_type=intervention.blocker_type,
            error_excerpt=intervention.error_excerpt,
            retry_stats=intervention.retry_stats,
            task=intervention.task,
            suggested_recovery=intervention.suggested_recovery,
            updated_at=at,
        )


class Verdict(_Model):
    """The detector's answer to one agent event, on agent.verdicts.<project>.<session> (core
    NATS, not stored), sent as soon as the event is evaluated. An agent subscribes before it
    announces a tool call and waits for the answer with a short deadline instead of sleeping: a
    call that trips a rule is refused before it runs. With no answer by the deadline (the
    detector is down or behind) the agent goes on; the control state still stops it later."""

    v: Literal[1] = 1
    seq: int = Field(ge=1, le=MAX_SEQ)
    decision: Literal["continue", "warn", "stop"]
    warning: SummaryText | None = None  # for warn: what the agent is told, in its own context
    control: SessionControl | None = None  # for stop: the pause, as the control state will say


RiskKind = Literal["retry_limit", "error_rate", "session_duration", "no_progress"]


class SessionSummary(_Model):
    """A running session as the detector sees it, for the operators' fleet view: its live risk
    signals against the limits that would stop it. Put (at most about once a second per
    session) in the KV bucket `session_summaries` under `<project>.<session>`; entries expire
    an hour after a session's last event. `risk` is the largest share of a limit used (1.0: the
    next step of that kind stops the session), so sorting by it puts the nearest stop first."""

    v: Literal[1] = 1
    project_id: Identifier
    session_id: Identifier
    state: Literal["running", "stopped", "ended"]
    intervention_id: Identifier | None = None
    task: Task | None = None
    started_at: datetime | None = None
    last_event_at: datetime | None = None  # None for an epoch that has had no event yet
    events: int = Field(ge=0)
    retry_streak: int = Field(ge=0)  # identical failures in a row of one call
    max_retries: int = Field(ge=0)
    error_rate: float = Field(ge=0)  # failed share of the last `results` tool results
    results: int = Field(ge=0)
    error_rate_threshold: float = Field(ge=0)
    error_rate_min_results: int = Field(ge=0)
    elapsed_s: float = Field(ge=0)  # event time since the session (or its resume) started
    duration_limit_s: float = Field(ge=0)
    warnings: list[ShortText] = Field(default_factory=list)  # the stops it was warned of
    # How much of each limit is used (1.0: the next step of that kind stops the session);
    # `risk` is the largest and `nearest` its kind.
    shares: dict[RiskKind, float] = Field(default_factory=dict)
    risk: float = Field(ge=0)
    nearest: RiskKind | None = None
    client: ShortText | None = None  # the agent CLI the session runs, when its hook says
    # Added to v1: what the session waits for a person for (a `waiting` event not yet
    # cleared), as "<kind>: <prompt>"; None when it does not wait.
    waiting: SummaryText | None = None


class CommandError(_Model):
    code: Literal["not_found", "already_resolved", "invalid", "unavailable", "internal"]
    message: str


class CommandReply(_Model):
    """Reply to every request/reply command: either `result` or `error`."""

    ok: bool
    result: Any = None
    error: CommandError | None = None


# The project token of the watchdog's clock ticks (Subjects.clock): not a valid Identifier.
CLOCK_NAME = "$clock"
# How long a tick stays in the stream: it matters only until the partition's owner read it.
CLOCK_TICK_TTL_S = 60


class Subjects:
    """Subject names. Ids are validated tokens, so formatting them in is safe."""

    AGENT_EVENTS_ALL = "agent.events.>"
    # What an agent publishes; the stream stores it one token longer, with its partition.
    AGENT_EVENTS_PUBLISHED = "agent.events.*.*"
    AGENT_DLQ = "agent.dlq"
    INTERVENTION_DLQ = "intervention.dlq"
    DETECTED_ALL = "intervention.detected.>"
    PAUSED_ALL = "intervention.paused.>"
    RESUMED_ALL = "intervention.resumed.>"
    NOTIFIED_ALL = "intervention.notified.>"
    RECOVERY_ALL = "intervention.recovery.>"
    WAITING_ALL = "intervention.waiting.>"
    WARNED_ALL = "intervention.warned.>"
    ACKNOWLEDGED_ALL = "intervention.acknowledged.>"
    SNOOZED_ALL = "intervention.snoozed.>"
    VERDICTS_ALL = "agent.verdicts.>"
    # Request/reply commands served by the pauser (core NATS, queue group "pauser").
    COMMAND_PREFIX = "intervention.cmd"

    agent_events = staticmethod(names.agent_events_subject)
    verdicts = staticmethod(names.verdicts_subject)

    @staticmethod
    def agent_events_stored(project_id: str, session_id: str) -> str:
        """A session's events as the AGENT_EVENTS stream stores them (any partition: a
        session's events all land in one)."""
        return f"{names.agent_events_subject(project_id, session_id)}.*"

    @staticmethod
    def partition(index: int) -> str:
        """The stored agent events of every session in one detector partition."""
        return f"agent.events.*.*.{index}"

    @staticmethod
    def clock(partition: int) -> str:
        """A tick of the watchdog's clock in one detector partition: an empty message whose only
        content is the time the stream stored it at. Delivered in order with the partition's
        agent events, so a silence is judged against everything stored before it. `$clock` is
        no project id, so no agent (nor its events) can stand for it."""
        return f"agent.events.{CLOCK_NAME}.tick.{partition}"

    @staticmethod
    def detected(project_id: str) -> str:
        return f"intervention.detected.{project_id}"

    @staticmethod
    def paused(project_id: str) -> str:
        return f"intervention.paused.{project_id}"

    @staticmethod
    def resumed(project_id: str) -> str:
        return f"intervention.resumed.{project_id}"

    @staticmethod
    def notified(project_id: str) -> str:
        return f"intervention.notified.{project_id}"

    @staticmethod
    def recovery(project_id: str) -> str:
        return f"intervention.recovery.{project_id}"

    @staticmethod
    def waiting(project_id: str) -> str:
        """An Intervention with trigger `waiting`: a session has waited long for a person.
        Never a pause: the pauser does not read it; the notifier tells the project's humans."""
        return f"intervention.waiting.{project_id}"

    @staticmethod
    def warned(project_id: str) -> str:
        return f"intervention.warned.{project_id}"

    @staticmethod
    def acknowledged(project_id: str) -> str:
        return f"intervention.acknowledged.{project_id}"

    @staticmethod
    def snoozed(project_id: str) -> str:
        return f"intervention.snoozed.{project_id}"

    @staticmethod
    def command(name: str) -> str:
        return f"intervention.cmd.{name}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    duplicate_window_s: float = 120.0
    max_age_s: float = 7 * 24 * 3600.0
    # (source, destination): how the stream rewrites a subject as it stores the message.
    subject_transform: tuple[str, str] | None = None
    # Direct gets: any replica answers reads (a session's history, without a consumer).
    allow_direct: bool = False
    # The largest message the stream stores (-1: the server's max_payload).
    max_msg_size: int = -1
    # Bounded by bytes (the deployment's setting), the stream discards its oldest messages to
    # make room: a flood from one tenant never refuses the others' new messages.
    bounded: bool = False
    # Messages may carry their own age limit (Nats-TTL): the watchdog's clock ticks expire.
    allow_msg_ttl: bool = False


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable push consumer with a deliver group: replicas of a service share its work.
    Each replica's subscription runs its handler one message at a time, in stream order.

    With a `priority_group`, a pull consumer with JetStream's pinned-client policy instead: one
    replica at a time (the pinned one) receives all its messages, in order; when it stops
    pulling for `priority_timeout_s`, the server pins another (takeover). `pulled`: a plain
    pull consumer, whose replicas each pull what waits, in bursts (a view that may lag).
    """

    stream: str
    durable: str
    filter_subject: str
    max_deliver: int = -1
    ack_wait_s: float = 30.0
    max_ack_pending: int = 1000
    priority_group: str | None = None
    priority_timeout_s: float = 0.0
    pulled: bool = False

    @property
    def push(self) -> bool:
        """Delivered to a subject (a deliver group), not pulled."""
        return self.priority_group is None and not self.pulled

    @property
    def group(self) -> str:
        return self.durable

    @property
    def deliver_subject(self) -> str:
        return f"_yokeflow.deliver.{self.durable}"


# Agent sessions are spread over this many detector partitions by the server's own hash of
# (project, session): a session's events all land in one partition, in order. Each partition
# has one owner at a time among the detector replicas, so at most this many replicas share
# the work. Changing it re-partitions sessions (docs/architecture.md, "Detector replicas").
DETECTOR_PARTITIONS = 16

AGENT_EVENTS_STREAM = StreamSpec(
    name="AGENT_EVENTS",
    subjects=(Subjects.AGENT_EVENTS_ALL,),
    description="Every agent event; Nats-Msg-Id = event_id, so a re-published event is dropped.",
    duplicate_window_s=600.0,
    allow_direct=True,
    max_msg_size=MAX_EVENT_BYTES,
    bounded=True,
    allow_msg_ttl=True,
    subject_transform=(
        Subjects.AGENT_EVENTS_PUBLISHED,
        "agent.events.{{wildcard(1)}}.{{wildcard(2)}}"
        f".{{{{partition({DETECTOR_PARTITIONS},1,2)}}}}",
    ),
)
INTERVENTIONS_STREAM = StreamSpec(
    name="INTERVENTIONS",
    subjects=(
        Subjects.DETECTED_ALL,
        Subjects.PAUSED_ALL,
        Subjects.RESUMED_ALL,
        Subjects.NOTIFIED_ALL,
        Subjects.RECOVERY_ALL,
        Subjects.WARNED_ALL,
        Subjects.ACKNOWLEDGED_ALL,
        Subjects.SNOOZED_ALL,
        Subjects.WAITING_ALL,
    ),
    description="The public intervention lifecycle; Nats-Msg-Id keeps every step unique.",
    duplicate_window_s=3600.0,
    max_age_s=90 * 24 * 3600.0,
)
DEAD_LETTER_STREAM = StreamSpec(
    name="DEAD_LETTERS",
    subjects=(Subjects.AGENT_DLQ, Subjects.INTERVENTION_DLQ),
    description="Messages that could not be processed, each with the reason.",
    max_age_s=30 * 24 * 3600.0,
    bounded=True,  # an agent's malformed events land here
)
STREAMS = (AGENT_EVENTS_STREAM, INTERVENTIONS_STREAM, DEAD_LETTER_STREAM)

CONTROL_BUCKET = names.CONTROL_BUCKET
agent_inbox_prefix = names.agent_inbox_prefix


class ControlKeys:
    """Keys of the session_control bucket, always scoped by project: a session id (chosen by an
    agent) never names another project's entry. `session` holds a SessionControl, `brief` the
    project's latest InterventionResumed."""

    session = staticmethod(names.session_key)
    brief = staticmethod(names.brief_key)


DETECTOR_CHECKPOINT_BUCKET = "detector_checkpoints"
SESSION_SUMMARY_BUCKET = "session_summaries"
SESSION_SUMMARY_TTL_S = 3600.0
KV_BUCKETS = (CONTROL_BUCKET, DETECTOR_CHECKPOINT_BUCKET, SESSION_SUMMARY_BUCKET)


@dataclass(frozen=True)
class Consumers:
    """Durable consumers; created by provisioning, bound (never re-declared) by services."""

    # One per partition; a takeover needs priority_timeout_s, and the dead owner's unfinished
    # messages come back after ack_wait_s.
    detector_events: tuple[ConsumerSpec, ...] = field(
        default=tuple(
            ConsumerSpec(
                "AGENT_EVENTS",
                f"detector-{index}",
                Subjects.partition(index),
                ack_wait_s=10.0,
                max_ack_pending=1024,
                priority_group="detector",
                priority_timeout_s=5.0,
            )
            for index in range(DETECTOR_PARTITIONS)
        )
    )
    detector_resumes: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "detector-resumes", Subjects.RESUMED_ALL)
    )
    pauser_detected: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "pauser", Subjects.DETECTED_ALL)
    )
    # The session registry: every agent event, for the few it keeps, read in bursts.
    pauser_sessions: ConsumerSpec = field(
        default=ConsumerSpec(
            "AGENT_EVENTS", "pauser-registry", Subjects.AGENT_EVENTS_ALL, pulled=True
        )
    )
    pauser_warnings: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "pauser-warnings", Subjects.WARNED_ALL)
    )
    orchestrator_resumes: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "orchestrator", Subjects.RESUMED_ALL)
    )
    # Sends can outlast ack_wait (retries honouring Retry-After): the handler reports progress.
    notifier_paused: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "notifier", Subjects.PAUSED_ALL, ack_wait_s=15.0)
    )
    notifier_recovery: ConsumerSpec = field(
        default=ConsumerSpec(
            "INTERVENTIONS", "notifier-recovery", Subjects.RECOVERY_ALL, ack_wait_s=15.0
        )
    )
    # Every change of an incident edits its Slack message (and a resume sends the "resolved"
    # follow-up): one consumer per subject, the same handler.
    notifier_acknowledged: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "notifier-acknowledged", Subjects.ACKNOWLEDGED_ALL)
    )
    notifier_snoozed: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "notifier-snoozed", Subjects.SNOOZED_ALL)
    )
    notifier_resumed: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "notifier-resumed", Subjects.RESUMED_ALL)
    )
    # A waiting notice is delivered at most once (a crash mid-send drops it, never repeats it):
    # it pauses nothing, and the session's next waiting event earns another.
    notifier_waiting: ConsumerSpec = field(
        default=ConsumerSpec(
            "INTERVENTIONS",
            "notifier-waiting",
            Subjects.WAITING_ALL,
            max_deliver=1,
            ack_wait_s=30.0,
        )
    )
    recovery_paused: ConsumerSpec = field(
        default=ConsumerSpec("INTERVENTIONS", "recovery", Subjects.PAUSED_ALL, ack_wait_s=15.0)
    )

    def all(self) -> tuple[ConsumerSpec, ...]:
        return (
            *self.detector_events,
            self.detector_resumes,
            self.pauser_detected,
            self.pauser_sessions,
            self.pauser_warnings,
            self.orchestrator_resumes,
            self.notifier_paused,
            self.notifier_recovery,
            self.notifier_acknowledged,
            self.notifier_snoozed,
            self.notifier_resumed,
            self.notifier_waiting,
            self.recovery_paused,
        )


CONSUMERS = Consumers()
