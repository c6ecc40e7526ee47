"""Preferences and settings refuse bad values with the field named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from yokeflow_intervention.services.notifier.channels import sign_standard_webhook
from yokeflow_intervention.shared.preferences import (
    NotificationPreferences,
    UnsafeWebhookError,
    redact_url,
    resolve_webhook_target,
    webhook_kind_of,
)
from yokeflow_intervention.shared.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("webhook_url", "ftp://example.com/hook", "http(s)"),
        ("webhook_url", "https://user:pw@example.com/hook", "credentials"),
        ("email_addresses", ["not-an-address"], "not an email address"),
        ("sms_numbers", ["555-1234"], "E.164"),
        ("min_notification_interval", -1, "greater than or equal to 0"),
        ("webhook_kind", "teams", "slack"),
        ("colour", "blue", "Extra inputs"),
    ],
)
def test_bad_preferences_name_the_field(field, value, message):
    with pytest.raises(ValidationError) as error:
        NotificationPreferences(**{field: value})
    text = str(error.value)
    assert field in text and message in text


def test_webhook_kind_is_detected_and_can_be_forced():
    assert webhook_kind_of("https://hooks.slack.com/services/T/B/x") == "slack"
    assert webhook_kind_of("https://discord.com/api/webhooks/1/abc") == "discord"
    assert webhook_kind_of("https://example.com/yokeflow") == "generic"
    assert webhook_kind_of("https://example.com/yokeflow", "slack") == "slack"


async def test_internal_webhook_targets_are_refused_unless_allowed():
    for url in (
        "http://127.0.0.1:8080/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest",
        "http://[::1]:9/x",
        "http://localhost:9/x",
    ):
        with pytest.raises(UnsafeWebhookError):
            await resolve_webhook_target(url, allow_private=False)
        await resolve_webhook_target(url, allow_private=True)
    with pytest.raises(ValueError, match="http"):
        await resolve_webhook_target("file:///etc/passwd", allow_private=True)


async def test_a_webhook_is_sent_to_the_address_that_was_checked():
    """The check and the connection use one resolution: no DNS-rebinding window."""
    target = await resolve_webhook_target("http://localhost:8123/hook?x=1", allow_private=True)
    assert target.url == "http://127.0.0.1:8123/hook?x=1"
    assert (target.host, target.server_name) == ("localhost:8123", "localhost")
    v6 = await resolve_webhook_target("https://[::1]/hook", allow_private=True)
    assert (v6.url, v6.server_name) == ("https://[::1]/hook", "::1")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://example.com:99999/x", "port outside"),
        ("https://example.com:0/x", "port outside"),
        ("https://example.com/x\r\nX-Injected: 1", "control characters"),
        ("https://example.com/a b", "spaces"),
        ("https://user:pw@example.com/x", "credentials"),
        ("ftp://example.com/x", "http"),
    ],
)
def test_a_webhook_url_that_could_never_be_sent_is_refused_when_saved(url, problem):
    with pytest.raises(ValidationError, match=problem):
        NotificationPreferences(webhook_enabled=True, webhook_url=url)


@pytest.mark.parametrize("address", ["a,b@c.d", "a b@c.d", "a@b", "<a@b.c>", "a@b.c\nBcc: x@y.z"])
def test_one_email_entry_is_exactly_one_address(address):
    with pytest.raises(ValidationError, match="not an email address"):
        NotificationPreferences(email_enabled=True, email_addresses=[address])
    NotificationPreferences(email_enabled=True, email_addresses=["ops.team+yf@mail.example.com"])


def test_standard_webhooks_signature_matches_the_spec_example():
    # The example from the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign_standard_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_webhook_urls_are_redacted():
    redacted = redact_url("https://hooks.slack.com/services/T0/B0/secret-token")
    assert "secret-token" not in redacted and redacted.startswith("https://hooks.slack.com/")


def test_settings_layers_and_errors(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "intervention:\n  max_retries: 5\n  webhook_url: ${HOOK}\n  min_notification_interval: 60\n"
    )
    settings = load_settings(
        config,
        {
            "HOOK": "https://example.com/h",
            "YOKEFLOW_MAX_RETRIES": "7",
            "EMAIL_ADDRESSES": "a@x.io, b@x.io",
            "SMTP_PASSWORD": "pw",
        },
    )
    assert settings.max_retries == 7  # environment beats the file
    assert settings.webhook_url == "https://example.com/h"
    assert settings.email_addresses == ["a@x.io", "b@x.io"]
    assert "pw" not in repr(settings)  # secrets are not printed
    with pytest.raises(SettingsError, match=r"\$\{MISSING\} is not set"):
        config.write_text("intervention:\n  webhook_url: ${MISSING}\n")
        load_settings(config, {})
    with pytest.raises(SettingsError, match="environment YOKEFLOW_ERROR_RATE_THRESHOLD"):
        load_settings(None, {"YOKEFLOW_ERROR_RATE_THRESHOLD": "2"})
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.yaml", {})
    config.write_text('intervention:\n  agent_command: "python -m agent"\n')
    with pytest.raises(SettingsError, match=r"intervention\.agent_command: .*not a shell string"):
        load_settings(config, {})
