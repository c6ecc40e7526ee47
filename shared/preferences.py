"""Per-project notification preferences: one validated model, read by the notifier and written
by the API and CLI. Where a project has no row, the configuration supplies the defaults."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Literal
from urllib.parse import urlsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .settings import Settings

__all__ = [
    "NotificationPreferences",
    "UnsafeWebhookError",
    "check_webhook_target",
    "load_preferences",
    "save_preferences",
    "webhook_kind_of",
]

WebhookKind = Literal["auto", "slack", "discord", "generic"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class UnsafeWebhookError(ValueError):
    pass


def _check_url_shape(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("webhook_url must be an http(s) URL")
    if not parts.hostname:
        raise ValueError("webhook_url has no host")
    if parts.username or parts.password:
        raise ValueError("webhook_url must not carry credentials")
    return url


class NotificationPreferences(BaseModel):
    """The columns of notification_preferences; bad values are refused with the field named."""

    model_config = ConfigDict(extra="forbid")

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
    min_notification_interval: int = Field(default=300, ge=0, le=86400)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if not value else _check_url_shape(value.strip())

    @field_validator("email_addresses")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("sms_numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for number in value:
            if not _E164.match(number):
                raise ValueError(f"{number!r} is not an E.164 phone number like +15551234567")
        return value

    def wants(self, trigger: str) -> bool:
        """Whether this trigger is one the project asked to be told about."""
        if trigger == "critical_error":
            return self.notify_on_critical_error
        if trigger == "session_duration":
            return self.notify_on_timeout
        if trigger == "manual":
            return self.notify_on_manual_pause
        return self.notify_on_retry_limit  # retry_limit, loop_pattern, error_rate: stuck loops

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


def check_webhook_target(url: str, allow_private: bool) -> None:
    """Refuse private, loopback, link-local and other internal targets unless allowed."""
    _check_url_shape(url)
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeWebhookError(f"webhook host {host!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UnsafeWebhookError(
                f"webhook host {host!r} resolves to the internal address {address}; "
                "set allow_private_webhooks to send there"
            )


_COLUMNS = tuple(NotificationPreferences.model_fields)


async def load_preferences(
    conn: asyncpg.Pool | asyncpg.Connection, project_id: str
) -> NotificationPreferences | None:
    row = await conn.fetchrow(
        f"SELECT {', '.join(_COLUMNS)} FROM notification_preferences WHERE project_id = $1",  # noqa: S608
        project_id,
    )
    return None if row is None else NotificationPreferences(**dict(row))


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
