"""Configuration, in one place: defaults < `.yokeflow.yaml` (`intervention:`) < environment.

Per-project notification preferences stored in PostgreSQL sit above all of these; the notifier
applies them. Every error names the key and the layer it came from, because a typo in a YAML
file should never silently fall back to a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from yokeflow_agent.contract import DETECTOR_PARTITIONS, DetectionMode

from .bus import DEFAULT_STREAM_MAX_BYTES

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEMO_PROJECT",
    "DETECTION_KEYS",
    "DetectionMode",
    "ProjectRegistration",
    "RecoveryAction",
    "Settings",
    "SettingsError",
    "check_webhook_url",
    "config_file_in_use",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path(".yokeflow.yaml")
DEMO_PROJECT = "demo-shop"  # the project of the scripted demo agent (`up --demo`)


class SettingsError(ValueError):
    """A configuration problem; the message names the key and where it was set."""


def check_webhook_url(url: str) -> str:
    """Everything about a webhook URL that can be known without the network, so a bad one is
    refused when it is saved rather than failing every notice later."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ValueError("webhook_url must not contain spaces or control characters (CR, LF, …)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("webhook_url must be an http(s) URL")
    if not parts.hostname:
        raise ValueError("webhook_url has no host")
    if parts.username or parts.password:
        raise ValueError("webhook_url must not carry credentials")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError("webhook_url has a port outside 1-65535") from None
    if parts.port == 0:
        raise ValueError("webhook_url has a port outside 1-65535")
    return url


RecoveryAction = Literal[
    "free_port", "start_redis", "restart_postgres", "install_module", "run_command"
]


# The Settings keys a project may set for itself under `projects.<id>.detection`: what the
# detector's rules read. Each keeps its validation from Settings (DetectionOverrides below).
DETECTION_KEYS = (
    "enabled",
    "max_retries",
    "detect_infrastructure_errors",
    "loop_repeat_threshold",
    "max_retries_rotating",
    "no_progress_window",
    "monologue_limit",
    "empty_reply_limit",
    "repeated_message_limit",
    "reply_repeat_limit",
    "missing_dependency_repeats",
    "signature_ignore_keys",
    "error_rate_threshold",
    "error_rate_window",
    "error_rate_min_results",
    "session_duration_limit",
    "warn_before_stop",
    "duration_warning_share",
    "critical_patterns",
    "auto_recovery_blockers",
    "tool_call_timeout",
    "tool_call_timeouts",
    "silence_timeout",
    "waiting_notification_after",
)


class ProjectRegistration(BaseModel):
    """What an operator registered for one project. Recovery and the orchestrator act on these
    facts only, never on what an agent's event claims (a workspace path, a port, a command).
    The detector reads the project's detection mode and overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # enforce: a stuck session is stopped and a human paged. observe: the stop is detected and
    # recorded as "would have stopped", the session runs on, nobody is paged: a project's
    # trial of the detector before it may stop anything.
    detection_mode: DetectionMode = "enforce"
    # Detection keys (DETECTION_KEYS) that differ for this project; the rest are the global
    # ones. A list or mapping given here replaces the global one.
    detection: DetectionOverrides = Field(default_factory=lambda: DetectionOverrides())

    # Every workspace of the project's agents lies under this folder (checked with realpath).
    workspace_root: Path
    # The OS user the project's agents run as: workspace actions and next sessions run as this
    # user, and only its processes may be stopped. Unset: this service's own user.
    user: str | None = None
    # The project's dev-server ports: the only ports whose listener may be stopped.
    dev_ports: list[int] = Field(default_factory=list)
    # The automatic fixes allowed for this project; none unless listed.
    recovery_actions: list[RecoveryAction] = Field(default_factory=list)
    # Ports on which recovery may start a Redis for this project.
    redis_ports: list[int] = Field(default_factory=list)
    # The interpreter pip runs with, named by the operator. Nothing found in a workspace runs
    # unless it is named here, and one the project's user could change is refused (its verdict
    # resumes the session): a root-owned venv whose site-packages alone is the user's, say.
    python: str | None = None
    # The NATS URL (with this project's agent credentials) handed to its next sessions.
    agent_nats_url: SecretStr | None = None

    @field_validator("workspace_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("workspace_root must be an absolute path")
        return value

    @field_validator("dev_ports", "redis_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        for port in value:
            if not 1024 <= port <= 65535:
                raise ValueError(f"port {port} must be between 1024 and 65535")
        return value


class Settings(BaseSettings):
    """Every setting of every service. Field names are the YAML keys of `intervention:`."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    # Infrastructure: unset means "launch the embedded servers under data_dir".
    nats_url: str | None = None
    # This process's user on the bus (its role: detector, pauser, …; docs/security.md), when
    # the credentials are not in nats_url itself (deployments keep them in a secret).
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    database_url: str | None = None
    data_dir: Path = Path(".yokeflow")
    # Copies of every stream, consumer and bucket: 3 on a 3-node NATS cluster.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # The bytes each stream agents can fill keeps (AGENT_EVENTS, DEAD_LETTERS; the oldest
    # messages go first), applied by `provision`: bounded so that no flood fills the server.
    stream_max_bytes: int = Field(default=DEFAULT_STREAM_MAX_BYTES, ge=2**20)

    # Detection rules.
    enabled: bool = True
    max_retries: int = Field(default=3, ge=1)
    detect_infrastructure_errors: bool = True
    loop_repeat_threshold: int = Field(default=4, ge=2)
    # A failing call whose error text rotates between a few texts (each change of text counts as
    # progress for max_retries) is still stopped after this many failures in a row.
    max_retries_rotating: int = Field(default=5, ge=2)
    # Progress is the judge: this many tool results in a row that bring nothing new (a call
    # seen before returning an outcome seen before) stop the session.
    no_progress_window: int = Field(default=15, ge=2)
    # Agent text turns: this many messages in a row with no tool call, or empty, or the same.
    monologue_limit: int = Field(default=8, ge=2)
    empty_reply_limit: int = Field(default=3, ge=2)
    repeated_message_limit: int = Field(default=3, ge=2)
    # One reply (40 words or more) that says the same thing this many times over (its word
    # trigrams against its distinct ones; prose, code and JSON stay under 3) is a loop.
    reply_repeat_limit: int = Field(default=10, ge=3)
    # `command not found` pauses only when the same command is missing this many times: one
    # typo followed by the corrected command is not an infrastructure blocker.
    missing_dependency_repeats: int = Field(default=2, ge=1)
    # Input keys that carry commentary or progress, not what the call does: left out of a call's
    # signature, so two calls that differ only there count as the same call.
    signature_ignore_keys: list[str] = Field(
        default_factory=lambda: ["description", "task_progress", "explanation"]
    )
    # Budgets, off unless set (failing often and running long are not signs of being stuck):
    # strictly more than this share of the last error_rate_window results failed, once
    # error_rate_min_results exist; seconds of event time since the session started.
    error_rate_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    error_rate_window: int = Field(default=50, ge=1)
    error_rate_min_results: int = Field(default=20, ge=1)
    session_duration_limit: float | None = Field(default=None, gt=0)
    # Warn before the stop: a session one step from a stop is told so (in its agent's own
    # context, through the hook or the SDK), once per pattern, and `intervention.warned` is
    # published, so the agent gets one chance to change course before a human is paged.
    warn_before_stop: bool = True
    # The share of session_duration_limit after which the session is warned of its budget.
    duration_warning_share: float = Field(default=0.8, gt=0.0, lt=1.0)
    # A session with no event for this long (seconds, wall clock) leaves the detector's memory:
    # its state goes to its checkpoint and comes back, exactly, with its next event.
    detector_idle_evict_s: float = Field(default=600.0, gt=0)
    # The watchdog (docs/architecture.md, "Timers"): limits in seconds of the bus's clock (the
    # stream's timestamps, never an agent's `ts`); 0 turns one off. A tool call with no result
    # for `tool_call_timeout` is stopped: 15 minutes outlasts the test suites, builds and
    # installs of agent sessions, and stops a foreground dev server or a command waiting on
    # stdin in a quarter of an hour rather than the hours users report.
    tool_call_timeout: float = Field(default=900.0, ge=0)
    # Calls known to run longer: a regular expression searched in "<tool> <command>" (e.g.
    # "Bash npm run e2e") -> that call's limit; the first that matches wins.
    tool_call_timeouts: dict[str, float] = Field(default_factory=dict)
    # An open session (started, not ended) with no call open and no event for this long is
    # stopped: its next event is the model's next turn, which comes in seconds or a few minutes
    # of thinking. Heartbeats do not count: they say the process lives, not that it moves.
    silence_timeout: float = Field(default=300.0, ge=0)
    # A session that waits for a person (a permission prompt, a question) is never stopped for
    # its silence; after this long a human is told what is asked (0: never). Two minutes: a
    # person at the terminal answers a prompt within one; after two, nobody is watching it.
    waiting_notification_after: float = Field(default=120.0, ge=0)
    # How often the watchdog's clock ticks in each partition: a deadline is seen at most this
    # late. Each tick is an empty message that expires from the stream after a minute.
    watchdog_tick_s: float = Field(default=5.0, gt=0, le=60)
    # Every this many seconds the detector collects what is new and freezes what survived
    # (`gc.freeze`), so full collections never walk the sessions it holds: their pauses stay
    # bounded by the event rate instead of growing with the fleet (docs/performance.md): a round
    # walks what the last second created. 0: off.
    detector_gc_freeze_s: float = Field(default=1.0, ge=0)
    # Detector replicas share the partitions of agent sessions: replica i of n owns the
    # partitions whose index is i mod n and stands by for the others (taking one over when its
    # owner stops). Any count works without them; they balance the work.
    detector_replicas: int = Field(default=1, ge=1, le=DETECTOR_PARTITIONS)
    detector_replica: int = Field(default=0, ge=0)
    # Extra regular expressions per blocker type, checked after the built-in ones.
    critical_patterns: dict[str, list[str]] = Field(default_factory=dict)
    # Blocker types the recovery service has an automatic action for.
    auto_recovery_blockers: list[str] = Field(
        default_factory=lambda: [
            "port_conflict",
            "redis_unavailable",
            "db_connection",
            "module_not_found",
        ]
    )

    # Resume: the command that starts the agent's next session (an argument list, never a
    # shell string). The resume brief is passed in a file named by YOKEFLOW_RESUME_CONTEXT_FILE.
    agent_command: list[str] = Field(default_factory=list)

    # Notifications: what a project without preferences of its own gets.
    webhook_url: str | None = None
    webhook_kind: Literal["auto", "slack", "discord", "generic"] = "auto"
    webhook_secret: SecretStr | None = None  # Standard Webhooks signing secret, "whsec_..."
    allow_private_webhooks: bool = False  # loopback/private targets (tests, on-premise hooks)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    email_from: str = "yokeflow@localhost"
    email_addresses: list[str] = Field(default_factory=list)
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = None  # a local peer in tests; unset means Twilio itself
    sms_numbers: list[str] = Field(default_factory=list)
    min_notification_interval: int = Field(default=0, ge=0, le=86400)
    # Repeat, escalate, group (docs/notifications.md, with the reasons for these defaults).
    notification_repeat_interval: int = Field(default=1800, ge=0, le=7 * 86400)
    notification_escalate_after: int = Field(default=3600, ge=0, le=7 * 86400)
    notification_group_window: int = Field(default=300, ge=0, le=86400)
    # How often a notifier looks for incidents due a repeat or an escalation.
    notification_sweep_interval: float = Field(default=15.0, gt=0, le=3600)
    # The Slack app (docs/notifications.md): with a bot token, a project with a `slack_channel`
    # gets notices with buttons posted by chat.postMessage and edited as the incident changes;
    # the signing secret authenticates the clicks. The Web API's base URL is Slack's own
    # unless set (a local peer in tests).
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_base_url: str = "https://slack.com/api/"
    # PagerDuty Events API v2; a project's `pagerduty_routing_key` turns the channel on.
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    notification_timeout: float = Field(default=10.0, gt=0)
    notification_max_attempts: int = Field(default=4, ge=1, le=10)
    # Notifications one notifier replica sends at once (a slow webhook must not hold up others).
    notifier_concurrency: int = Field(default=16, ge=1, le=256)

    # Recovery: safe automatic fixes. Nothing from an event ever becomes a shell string; event
    # text only yields validated parameters (a port number, a package name).
    recovery_enabled: bool = True
    recovery_auto_resume: bool = True
    recovery_dry_run: bool = False
    # Recoveries one replica runs at once, and at most this many of one project's: the rest of
    # a project's wait (their messages come back later) while other projects' go ahead, so a
    # project's hanging installs never hold up another's port fix. Each run of a command is
    # stopped at recovery_timeout; an intervention's recovery runs once.
    recovery_concurrency: int = Field(default=8, ge=1, le=64)
    recovery_project_concurrency: int = Field(default=2, ge=1, le=64)
    # Per project: what recovery and the orchestrator may act on (see ProjectRegistration).
    projects: dict[str, ProjectRegistration] = Field(default_factory=dict)
    # Set by `up --demo`: the demo project is registered, its workspace under data_dir, and its
    # next sessions get its agents' credentials.
    demo: bool = False
    demo_agent_nats_url: SecretStr | None = None
    # Process names (not command lines) a port's listener may have to be stopped.
    recovery_process_pattern: str = (
        r"^(node|npm|npx|vite|next|python[0-9.]*|uvicorn|gunicorn|flask|ruby|rails|java|deno|bun)$"
    )
    recovery_kill_grace: float = Field(default=3.0, gt=0)
    # Helpers (Redis, restarts, installs, commands) run as the project's user, never root or
    # this service (docs/security.md). Redis: "{port}" and "{dir}" (its own folder) substituted;
    # unset, the bundled redis-server with its admin commands off.
    recovery_redis_command: list[str] = Field(default_factory=list)
    # The project's own PostgreSQL (no default: never this service's database); both needed.
    recovery_postgres_command: list[str] = Field(default_factory=list)
    recovery_postgres_url: str | None = None  # what "answers a query" means after a restart
    recovery_pip_options: list[str] = Field(default_factory=list)
    recovery_npm_options: list[str] = Field(default_factory=list)
    # npm installs use this registry (a workspace's .npmrc is overridden) and run no scripts.
    recovery_npm_registry: str = "https://registry.npmjs.org/"
    recovery_npm_scripts: bool = False
    recovery_module_allowlist: list[str] = Field(default_factory=list)  # empty: any valid name
    recovery_module_packages: dict[str, str] = Field(default_factory=dict)
    recovery_commands: dict[str, list[str]] = Field(default_factory=dict)  # blocker -> argv
    recovery_timeout: float = Field(default=120.0, gt=0)

    # API and dashboard.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8765, ge=0, le=65535)
    api_token: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)  # CORS is off unless listed
    dashboard_url: str | None = None
    # Signed action links in notices (email, SMS, Discord) point at <dashboard_url>/actions/…:
    # HMAC-SHA256 with this secret; none, no links. The previous secret still verifies during
    # a rotation (docs/notifications.md). A day: a stop at night can be taken in the morning;
    # a link is single-use anyway, and dead once its incident is resolved.
    action_link_secret: SecretStr | None = None
    action_link_previous_secret: SecretStr | None = None
    action_link_ttl: int = Field(default=86400, ge=60, le=7 * 86400)

    # Logging and metrics (Prometheus /metrics on this port in every service; 0 = off).
    log_level: str = "INFO"
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges the layers itself so each error can name its layer.
        return (init_settings,)

    @model_validator(mode="after")
    def _replica_in_range(self) -> Settings:
        if self.detector_replica >= self.detector_replicas:
            raise ValueError(
                f"detector_replica {self.detector_replica} is not one of detector_replicas "
                f"{self.detector_replicas} (0 to {self.detector_replicas - 1})"
            )
        return self

    @field_validator("critical_patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for blocker, patterns in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", blocker):
                raise ValueError(f"blocker type {blocker!r} must be snake_case")
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{blocker}: bad regular expression {pattern!r}: {exc}"
                    ) from exc
        return value

    @field_validator("tool_call_timeouts")
    @classmethod
    def _timeouts_compile(cls, value: dict[str, float]) -> dict[str, float]:
        for pattern, limit in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
            if limit < 0:
                raise ValueError(f"{pattern!r}: a limit is seconds, 0 or more, not {limit}")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return None if not value else check_webhook_url(value.strip())

    @field_validator("projects")
    @classmethod
    def _project_ids(cls, value: dict[str, ProjectRegistration]) -> dict[str, ProjectRegistration]:
        for project in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", project):
                raise ValueError(f"{project!r} is not a project id")
        return value

    @field_validator("recovery_process_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression: {exc}") from exc
        return value

    @field_validator(
        "agent_command", "recovery_redis_command", "recovery_postgres_command", mode="before"
    )
    @classmethod
    def _command_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a list of arguments, not a shell string")
        return value

    def registration(self, project_id: str) -> ProjectRegistration | None:
        """What the operator registered for a project (the demo's own, under `up --demo`)."""
        found = self.projects.get(project_id)
        if found is None and self.demo and project_id == DEMO_PROJECT:
            return ProjectRegistration(
                workspace_root=(self.data_dir / "demo-workspace").resolve(),
                dev_ports=[5173],
                recovery_actions=["free_port"],
                agent_nats_url=self.demo_agent_nats_url,
            )
        return found

    def detection_settings(self, project_id: str) -> Settings:
        """The settings a project's sessions are judged by: these, with the project's own
        detection overrides (validated when loaded, so the copy needs no second check)."""
        found = self.projects.get(project_id)
        overrides = found.detection.model_dump(exclude_unset=True) if found else {}
        return self.model_copy(update=overrides) if overrides else self

    def detection_mode(self, project_id: str) -> DetectionMode:
        found = self.projects.get(project_id)
        return found.detection_mode if found else "enforce"

    @property
    def embedded(self) -> bool:
        return self.nats_url is None or self.database_url is None


def _optional(field: FieldInfo) -> tuple[Any, FieldInfo]:
    """A Settings field as an override: the same type and checks, unset unless given."""
    override = FieldInfo.merge_field_infos(field, default=None, default_factory=None)
    return Optional[field.annotation], override  # noqa: UP045 - a type built at run time


def _value_only(check: Any) -> Any:
    """A Settings validator (a bound classmethod of one argument) as one pydantic calls with
    the value alone."""
    return lambda value: check(value)


# Built from the Settings fields themselves, and their validators, so a project's override is
# checked exactly as the global key is, and an unknown key is reported by name.
DetectionOverrides = create_model(  # type: ignore[call-overload]  # the fields are computed
    "DetectionOverrides",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __validators__={
        name: field_validator(*fields, mode=found.info.mode)(_value_only(found.func))
        for name, found in Settings.__pydantic_decorators__.field_validators.items()
        if (fields := [f for f in found.info.fields if f in DETECTION_KEYS])
    },
    **{name: _optional(Settings.model_fields[name]) for name in DETECTION_KEYS},
)
ProjectRegistration.model_rebuild()
Settings.model_rebuild()


# Environment variables with names of their own; every field is also YOKEFLOW_<FIELD>.
_NAMED_ENV = {
    "NATS_URL": "nats_url",
    "NATS_USER": "nats_user",
    "NATS_PASSWORD": "nats_password",
    "DATABASE_URL": "database_url",
    "API_TOKEN": "api_token",
    "YOKEFLOW_WEBHOOK_URL": "webhook_url",
    "INTERVENTION_WEBHOOK_URL": "webhook_url",
    "SMTP_HOST": "smtp_host",
    "SMTP_PORT": "smtp_port",
    "SMTP_USERNAME": "smtp_username",
    "SMTP_PASSWORD": "smtp_password",
    "EMAIL_ADDRESSES": "email_addresses",
    "TWILIO_ACCOUNT_SID": "twilio_account_sid",
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TWILIO_FROM_NUMBER": "twilio_from_number",
    "SMS_NUMBERS": "sms_numbers",
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
}
_LIST_FIELDS = {
    "signature_ignore_keys",
    "auto_recovery_blockers",
    "agent_command",
    "email_addresses",
    "sms_numbers",
    "recovery_redis_command",
    "recovery_postgres_command",
    "recovery_pip_options",
    "recovery_npm_options",
    "recovery_module_allowlist",
    "cors_origins",
}
_MAPPING_FIELDS = {
    "critical_patterns",
    "recovery_module_packages",
    "recovery_commands",
    "projects",
    "tool_call_timeouts",
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, environ: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise SettingsError(f"{where}: environment variable ${{{name}}} is not set")

        return _VAR.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, environ, f"{where}.{k}") for k, v in value.items()}
    return value


def _read_yaml(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    section = document.get("intervention") or {}
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: intervention: expected a mapping")
    expanded: dict[str, Any] = _expand(section, environ, f"{path}: intervention")
    return expanded


def _read_environment(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Field name -> (variable name, raw value)."""
    found: dict[str, tuple[str, str]] = {}
    for name in Settings.model_fields:
        variable = f"YOKEFLOW_{name.upper()}"
        if variable in environ:
            found[name] = (variable, environ[variable])
    for variable, name in _NAMED_ENV.items():
        if environ.get(variable):
            found[name] = (variable, environ[variable])
    return found


def _environment_value(name: str, raw: str) -> Any:
    if name in _LIST_FIELDS:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if name in _MAPPING_FIELDS:
        return yaml.safe_load(raw)
    return raw


def config_file_in_use(
    config_file: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The file the settings come from: the one named (`--config`, else `YOKEFLOW_CONFIG`),
    which must exist, or `./.yokeflow.yaml` if there is one."""
    env = os.environ if environ is None else environ
    explicit = config_file or env.get("YOKEFLOW_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"{path}: configuration file not found")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(
    config_file: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from the layers. A missing default file is fine; a named one must exist."""
    env = os.environ if environ is None else environ
    origin: dict[str, str] = {}
    values: dict[str, Any] = {}

    path = config_file_in_use(config_file, env)
    if path is not None:
        for key, value in _read_yaml(path, env).items():
            values[key] = value
            origin[key] = f"{path}: intervention.{key}"
    for name, (variable, raw) in _read_environment(env).items():
        values[name] = _environment_value(name, raw)
        origin[name] = f"environment {variable}"

    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            key = str(item["loc"][0]) if item["loc"] else "?"
            where = origin.get(key, f"intervention.{key}")
            detail = ".".join(str(p) for p in item["loc"][1:])
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            problems.append(f"{where}{'.' + detail if detail else ''}: {message}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
