"""Per-project notification preferences: one validated model, read by the notifier and written
by the API and CLI. Where a project has no row, the configuration supplies the defaults."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .commands import describe_validation
from .settings import Settings, check_webhook_url

__all__ = [
    "NotificationPreferences",
    "UnsafeWebhookError",
    "WebhookTarget",
    "load_preferences",
    "redact_url",
    "resolve_webhook_target",
    "save_preferences",
    "webhook_kind_of",
]

WebhookKind = Literal["auto", "slack", "discord", "generic"]
# One address: a dot-atom local part (no commas, spaces or quotes, so it can never become two
# recipients) at a domain name.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SLACK_ID = r"^[A-Z0-9]{2,40}$"  # channel, team and user ids: C0123ABCD, T…, U…/W…


class UnsafeWebhookError(ValueError):
    pass


class NotificationPreferences(BaseModel):
    """The columns of notification_preferences; bad values are refused with the field named."""

    # Shown in full (every field, those with a default too): the schema of a response says so.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    webhook_enabled: bool = False
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_kind: WebhookKind = "auto"
    email_enabled: bool = False
    email_addresses: list[str] = Field(default_factory=list, max_length=50)
    sms_enabled: bool = False
    sms_numbers: list[str] = Field(default_factory=list, max_length=20)
    notify_on_retry_limit: bool = True
    notify_on_critical_error: bool = True
    notify_on_timeout: bool = True
    notify_on_manual_pause: bool = False
    # A project-wide cap on notices, whatever the blocker: off by default, since grouping (below)
    # already keeps one outage to one notice and a different incident must still be paged.
    min_notification_interval: int = Field(default=0, ge=0, le=86400)
    # Incidents: an unacknowledged stop is paged again every `notification_repeat_interval` s
    # and, after `notification_escalate_after` s, to the escalation addresses and numbers; stops
    # with the same blocker within `notification_group_window` s join the first one's notice
    # (0 turns each off). The first notice always goes out at once.
    notification_repeat_interval: int = Field(default=1800, ge=0, le=7 * 86400)
    notification_escalate_after: int = Field(default=3600, ge=0, le=7 * 86400)
    notification_group_window: int = Field(default=300, ge=0, le=86400)
    escalation_email_addresses: list[str] = Field(default_factory=list, max_length=50)
    escalation_sms_numbers: list[str] = Field(default_factory=list, max_length=20)
    # PagerDuty Events API v2: the integration's routing key (a secret: shown masked, as
    # `****` and its last four characters, which saved back keeps the stored key).
    pagerduty_routing_key: str | None = Field(
        default=None, pattern=r"^([A-Za-z0-9]{20,64}|\*{4}[A-Za-z0-9]{4})$"
    )
    # The Slack app: the channel its notices go to (an id), and who may act on them. Empty lists:
    # anyone who can click in that channel; otherwise the user's id, or their team's, must be
    # listed.
    slack_channel: str | None = Field(default=None, pattern=_SLACK_ID)
    slack_allowed_team_ids: list[Annotated[str, Field(pattern=_SLACK_ID)]] = Field(
        default_factory=list, max_length=50
    )
    slack_allowed_user_ids: list[Annotated[str, Field(pattern=_SLACK_ID)]] = Field(
        default_factory=list, max_length=500
    )

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if not value else check_webhook_url(value.strip())

    @field_validator("email_addresses", "escalation_email_addresses")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("sms_numbers", "escalation_sms_numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for number in value:
            if not _E164.match(number):
                raise ValueError(f"{number!r} is not an E.164 phone number like +15551234567")
        return value

    def may_act_in_slack(self, team_id: str, user_id: str) -> bool:
        """Whether this Slack user may act on the project's incidents (the channel is checked
        by the caller, from where the click came)."""
        if self.slack_allowed_user_ids and user_id not in self.slack_allowed_user_ids:
            return False
        return not self.slack_allowed_team_ids or team_id in self.slack_allowed_team_ids

    def wants(self, trigger: str) -> bool:
        """Whether this trigger is one the project asked to be told about."""
        if trigger == "critical_error":
            return self.notify_on_critical_error
        if trigger in ("session_duration", "tool_call_timeout", "silence", "waiting"):
            # Budgets of time: the session's, a call's, silence's, a person's answer's.
            return self.notify_on_timeout
        if trigger == "manual":
            return self.notify_on_manual_pause
        return self.notify_on_retry_limit  # retry_limit, loop_pattern, no_progress, error_rate

    @classmethod
    def from_settings(cls, settings: Settings) -> NotificationPreferences:
        """What a project without a row of its own gets."""
        return cls(
            webhook_enabled=bool(settings.webhook_url),
            webhook_url=settings.webhook_url,
            webhook_kind=settings.webhook_kind,
            email_enabled=bool(settings.smtp_host and settings.email_addresses),
            email_addresses=settings.email_addresses,
            sms_enabled=bool(settings.twilio_account_sid and settings.sms_numbers),
            sms_numbers=settings.sms_numbers,
            min_notification_interval=settings.min_notification_interval,
            notification_repeat_interval=settings.notification_repeat_interval,
            notification_escalate_after=settings.notification_escalate_after,
            notification_group_window=settings.notification_group_window,
        )


def webhook_kind_of(url: str, kind: str = "auto") -> Literal["slack", "discord", "generic"]:
    """Slack and Discord by their hosts or their webhook paths; anything else is generic."""
    if kind in ("slack", "discord", "generic"):
        return kind  # type: ignore[return-value]
    parts = urlsplit(url)
    host, path = (parts.hostname or "").lower(), parts.path
    if host == "hooks.slack.com" or path.startswith("/services/"):
        return "slack"
    if host.endswith(("discord.com", "discordapp.com")) or path.startswith("/api/webhooks/"):
        return "discord"
    return "generic"


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL pinned to the address that was checked: the request goes to `url` (the
    address in place of the host name), with the original `host` header and TLS server name, so
    DNS cannot answer differently between the check and the connection (rebinding)."""

    url: str
    host: str  # the Host header: the original host[:port]
    server_name: str  # TLS SNI and certificate name


async def resolve_webhook_target(url: str, allow_private: bool) -> WebhookTarget:
    """Resolve once, refuse private, loopback, link-local and other internal addresses unless
    allowed, and pin the request to the address that passed."""
    check_webhook_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookError(f"webhook host {host!r} does not resolve") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not address.is_global:
                raise UnsafeWebhookError(
                    f"webhook host {host!r} resolves to the internal address {address}; "
                    "set allow_private_webhooks to send there"
                )
    if not addresses:
        raise UnsafeWebhookError(f"webhook host {host!r} does not resolve")
    pinned = sorted(addresses, key=lambda a: a.version)[0]  # IPv4 first, as most peers listen
    literal = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return WebhookTarget(urlunsplit(parts._replace(netloc=netloc)), host_header, host)


def redact_url(url: str) -> str:
    """Webhook URLs carry their secret in the path: keep the host and a short fingerprint."""
    parts = urlsplit(url)
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    # The netloc as written (a bad port must not break the redaction), without credentials.
    host = parts.netloc.rsplit("@", 1)[-1][:100]
    return f"{parts.scheme}://{host}/…#{digest}"


_COLUMNS = tuple(NotificationPreferences.model_fields)
log = logging.getLogger(__name__)


async def load_preferences(
    conn: asyncpg.Pool | asyncpg.Connection, project_id: str
) -> NotificationPreferences | None:
    row = await conn.fetchrow(
        f"SELECT {', '.join(_COLUMNS)} FROM notification_preferences WHERE project_id = $1",  # noqa: S608
        project_id,
    )
    if row is None:
        return None
    try:
        return NotificationPreferences(**dict(row))
    except ValidationError as exc:
        # A row saved before a check existed: keep it as stored, so each channel is tried and a
        # bad one fails alone, with its reason, instead of every channel of every notice.
        log.warning("preferences of %s do not validate: %s", project_id, describe_validation(exc))
        return NotificationPreferences.model_construct(**dict(row))


async def save_preferences(
    conn: asyncpg.Pool | asyncpg.Connection, project_id: str, preferences: NotificationPreferences
) -> None:
    values = preferences.model_dump()
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS)
    placeholders = ", ".join(f"${i}" for i in range(2, len(_COLUMNS) + 2))
    await conn.execute(
        "INSERT INTO projects (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING", project_id
    )
    await conn.execute(
        f"""INSERT INTO notification_preferences (project_id, {", ".join(_COLUMNS)})
            VALUES ($1, {placeholders})
            ON CONFLICT (project_id) DO UPDATE SET {assignments}, updated_at = now()""",  # noqa: S608
        project_id,
        *(values[c] for c in _COLUMNS),
    )
