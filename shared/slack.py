"""What the notifier (posts and edits incident messages) and the API (answers their buttons)
share about the Slack app: the Web API client and the names of the buttons and the modal."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from .settings import Settings

__all__ = ["BUTTONS", "RESUME_WITH_NOTES", "web_client"]

# action_id -> label of the buttons on an open incident, in their order; "open" is a link.
BUTTONS = {
    "acknowledge": "Acknowledge",
    "resume": "Resume",
    "resume_with_notes": "Resume with notes",
    "snooze": "Snooze 1 h",
    "open": "Open",
}
RESUME_WITH_NOTES = "resume_with_notes"  # also the modal's callback_id


def web_client(settings: Settings) -> AsyncWebClient | None:
    """Slack's own client, at the configured Web API base URL; None without a bot token."""
    if settings.slack_bot_token is None:
        return None
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_base_url.rstrip("/") + "/",
        timeout=int(max(settings.notification_timeout, 1)),
    )
