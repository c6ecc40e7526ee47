"""Senders for each channel, and the retry policy they share.

429, 5xx, timeouts and connection errors are retried with exponential backoff and full jitter,
honouring Retry-After, up to a bound; any other 4xx (and Twilio errors such as 21211) is a
permanent failure, not retried. Secrets (webhook URLs, passwords, tokens) never reach a log line
or an outcome's detail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import aiosmtplib
import httpx
from slack_sdk.errors import SlackApiError
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client as TwilioClient

from yokeflow_intervention.shared.preferences import (
    UnsafeWebhookError,
    redact_url,
    resolve_webhook_target,
    webhook_kind_of,
)
from yokeflow_intervention.shared.settings import Settings
from yokeflow_intervention.shared.slack import web_client

from .messages import (
    Notice,
    canonical_json,
    discord_payload,
    email_message,
    generic_payload,
    pagerduty_event,
    slack_payload,
    sms_text,
)
from .slack_app import IncidentState, incident_blocks, incident_text

__all__ = [
    "Delivery",
    "Outcome",
    "RetryPolicy",
    "Senders",
    "sign_standard_webhook",
    "webhook_delivery",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One (channel, recipient) a notice goes to; `recipient` is what the ledger may store."""

    channel: str
    recipient: str
    target: str  # the real address: URL, email or phone number
    purpose: str = "paused"  # or "recovery": a follow-up is a delivery of its own
    # An API of its own instead of a plain POST: "slack" (the Slack app posts to the channel in
    # `target`), "pagerduty" (Events API v2 with the routing key in `target`).
    api: str = ""

    @property
    def ledger_channel(self) -> str:
        if self.api:
            name = "slack_app" if self.api == "slack" else self.api
            return name if self.purpose == "paused" else f"{name}:{self.purpose}"
        return self.channel if self.purpose == "paused" else f"{self.channel}:{self.purpose}"

    def message_id(self, intervention_id: str) -> str:
        """Standard Webhooks' `webhook-id`: the same on every resend of this notice, so the
        receiver can drop a repeat; different for the pause and its recovery follow-up."""
        return intervention_id if self.purpose == "paused" else f"{intervention_id}:{self.purpose}"

    @property
    def resend_is_safe(self) -> bool:
        """Only a Standard Webhooks receiver deduplicates on an id; Slack, Discord, SMTP and
        Twilio would show a repeat to a person."""
        return self.channel == "webhook"


@dataclass(frozen=True)
class Outcome:
    status: str  # sent, failed
    detail: str
    attempts: int
    ref: str | None = None  # the message's id at the receiver, where it can be edited (Slack ts)


class _Transient(Exception):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class _Permanent(Exception):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))  # noqa: S311

    async def run(self, send: Callable[[], Awaitable[str]]) -> Outcome:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return Outcome("sent", await send(), attempt)
            except _Permanent as exc:
                return Outcome("failed", str(exc), attempt)
            except _Transient as exc:
                if attempt == self.max_attempts:
                    return Outcome("failed", f"gave up after {attempt} attempts: {exc}", attempt)
                await asyncio.sleep(self.delay(attempt, exc.retry_after))
            except Exception as exc:
                # Unforeseen: a failure of this channel only, never of the other channels'
                # deliveries of the same notice.
                return Outcome("failed", f"error: {type(exc).__name__}: {exc}"[:300], attempt)
        raise AssertionError("unreachable")


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` value: v1,<base64 HMAC-SHA256>."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            return None


def _classify(response: httpx.Response) -> str:
    if response.status_code < 300:
        return f"HTTP {response.status_code}"
    detail = f"HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code == 429 or response.status_code >= 500:
        raise _Transient(detail, _retry_after(response))
    raise _Permanent(detail)


class Senders:
    """Holds the connections and settings each channel needs; one per notifier process."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.policy = RetryPolicy(max_attempts=settings.notification_max_attempts)
        self._twilio_http = AsyncTwilioHttpClient(timeout=settings.notification_timeout)
        self._twilio: TwilioClient | None = None
        self.slack = web_client(settings)

    async def close(self) -> None:
        await self._twilio_http.close()

    async def send(self, delivery: Delivery, notice: Notice) -> Outcome:
        if delivery.api == "pagerduty":
            event = pagerduty_event(delivery.target, "trigger", notice)
            return await self.policy.run(lambda: self._pagerduty(event))
        if delivery.api == "slack":
            posted: list[str] = []
            outcome = await self.policy.run(
                lambda: self._slack_post(delivery.target, notice, posted)
            )
            return replace(outcome, ref=posted[0] if posted else None)
        senders: dict[str, Callable[[], Awaitable[str]]] = {
            "slack": lambda: self._post(delivery.target, slack_payload(notice)),
            "discord": lambda: self._post(_discord_url(delivery.target), discord_payload(notice)),
            "webhook": lambda: self._post(
                delivery.target,
                generic_payload(notice),
                message_id=delivery.message_id(notice.intervention.intervention_id),
            ),
            "email": lambda: self._email(delivery.target, notice),
            "sms": lambda: self._sms(delivery.target, notice),
        }
        return await self.policy.run(senders[delivery.channel])

    async def _slack_post(self, channel: str, notice: Notice, posted: list[str]) -> str:
        state = IncidentState()
        blocks = incident_blocks(notice, state, notice.intervention.paused_at)
        response = await _slack_call(
            self.slack,
            "chat_postMessage",
            channel=channel,
            text=incident_text(notice, state),
            blocks=blocks,
            unfurl_links=False,
        )
        posted.append(str(response["ts"]))
        return f"Slack message {response['ts']} in {response['channel']}"

    async def slack_update(
        self, channel: str, ts: str, notice: Notice, state: IncidentState, now: datetime
    ) -> Outcome:
        """Edit the incident's message to show where it stands."""
        blocks = incident_blocks(notice, state, now)

        async def update() -> str:
            text = incident_text(notice, state)
            await _slack_call(
                self.slack, "chat_update", channel=channel, ts=ts, text=text, blocks=blocks
            )
            return f"Slack message {ts} updated"

        return await self.policy.run(update)

    async def pagerduty(self, routing_key: str, action: str, notice: Notice) -> Outcome:
        """Acknowledge or resolve the PagerDuty incident of this notice (same dedup key)."""
        event = pagerduty_event(routing_key, action, notice)
        return await self.policy.run(lambda: self._pagerduty(event))

    async def _pagerduty(self, event: dict[str, Any]) -> str:
        try:
            response = await self.http.post(
                self.settings.pagerduty_events_url,
                content=canonical_json(event),
                headers={"content-type": "application/json"},
                timeout=self.settings.notification_timeout,
            )
        except httpx.TimeoutException:
            raise _Transient("timed out") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed: {type(exc).__name__}") from None
        return f"PagerDuty {event['event_action']}: " + _classify(response)

    async def _post(self, url: str, payload: dict[str, Any], message_id: str | None = None) -> str:
        """POST JSON; with a message_id, as a Standard Webhooks message (signed when a secret
        is configured)."""
        body = canonical_json(payload)
        headers = {"content-type": "application/json", "user-agent": "YokeFlow-Intervention/1"}
        if message_id is not None:
            timestamp = int(time.time())
            headers["webhook-id"] = message_id
            headers["webhook-timestamp"] = str(timestamp)
            secret = self.settings.webhook_secret
            if secret is not None:
                headers["webhook-signature"] = sign_standard_webhook(
                    secret.get_secret_value(), message_id, timestamp, body
                )
        try:
            target = await resolve_webhook_target(url, self.settings.allow_private_webhooks)
        except UnsafeWebhookError as exc:
            raise _Permanent(f"refused: {exc}") from None
        except ValueError as exc:
            raise _Permanent(f"refused: {exc}") from None
        headers["host"] = target.host
        try:
            response = await self.http.post(
                target.url,
                content=body,
                headers=headers,
                timeout=self.settings.notification_timeout,
                extensions={"sni_hostname": target.server_name},
            )
        except httpx.TimeoutException:
            raise _Transient("timed out") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed: {type(exc).__name__}") from None
        return _classify(response)

    async def _email(self, address: str, notice: Notice) -> str:
        s = self.settings
        if not s.smtp_host:
            raise _Permanent("no SMTP server configured (SMTP_HOST)")
        message = email_message(notice, s.email_from, [address])
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                timeout=s.notification_timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            detail = f"SMTP {exc.code}: {exc.message[:200]}"
            if 400 <= exc.code < 500:
                raise _Transient(detail) from None
            raise _Permanent(detail) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _Transient(f"SMTP: {type(exc).__name__}") from None
        return "accepted by the SMTP server"

    def _twilio_client(self) -> TwilioClient:
        s = self.settings
        if not (s.twilio_account_sid and s.twilio_auth_token and s.twilio_from_number):
            raise _Permanent(
                "Twilio is not configured (TWILIO_ACCOUNT_SID, _AUTH_TOKEN, _FROM_NUMBER)"
            )
        if self._twilio is None:
            self._twilio = TwilioClient(
                s.twilio_account_sid,
                s.twilio_auth_token.get_secret_value(),
                http_client=self._twilio_http,
            )
            if s.twilio_api_base_url:
                self._twilio.api.base_url = s.twilio_api_base_url
        return self._twilio

    async def _sms(self, number: str, notice: Notice) -> str:
        client = self._twilio_client()
        try:
            message = await client.messages.create_async(
                to=number, from_=self.settings.twilio_from_number, body=sms_text(notice)
            )
        except TwilioRestException as exc:
            detail = f"Twilio {exc.status} (code {exc.code}): {str(exc.msg)[:200]}"
            if exc.status == 429 or exc.status >= 500:
                raise _Transient(detail) from None
            raise _Permanent(detail) from None
        except (OSError, TimeoutError) as exc:
            raise _Transient(f"Twilio: {type(exc).__name__}") from None
        return f"Twilio message {message.sid}"


async def _slack_call(client: Any, method: str, **arguments: Any) -> Any:
    """One Web API call: rate limits and server errors are transient (Retry-After honoured),
    any other `ok: false` (channel_not_found, invalid_auth, not_in_channel) permanent."""
    if client is None:
        raise _Permanent("the Slack app is not configured (SLACK_BOT_TOKEN)")
    try:
        return await getattr(client, method)(**arguments)
    except SlackApiError as exc:
        status, error = exc.response.status_code, exc.response.get("error", "unknown")
        if status == 429 or status >= 500:
            raise _Transient(f"Slack {status}: {error}", _retry_after_of(exc)) from None
        raise _Permanent(f"Slack {method.replace('_', '.')}: {error}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _Transient(f"Slack: {type(exc).__name__}") from None


def _retry_after_of(exc: SlackApiError) -> float | None:
    value = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _discord_url(url: str) -> str:
    """Discord answers with the created message (and real errors) only with ?wait=true, and
    shows a webhook's link buttons only with ?with_components=true."""
    return url + ("&" if "?" in url else "?") + "wait=true&with_components=true"


def webhook_delivery(url: str, kind: str) -> Delivery:
    channel = {"slack": "slack", "discord": "discord", "generic": "webhook"}[
        webhook_kind_of(url, kind)
    ]
    return Delivery(channel, redact_url(url), url)
