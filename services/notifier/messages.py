"""One notice, formatted for each medium (Slack, Discord, generic JSON, email, SMS)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from yokeflow_agent.contract import InterventionPaused

__all__ = [
    "DISCORD_LIMITS",
    "Notice",
    "canonical_json",
    "discord_escape",
    "discord_payload",
    "email_message",
    "generic_payload",
    "slack_escape",
    "slack_payload",
    "sms_text",
]

TITLE = "YokeFlow Session Blocked"
# Colours per trigger: red for infrastructure, orange for loops, yellow for budgets (of time:
# the session's, a call's, silence's), blue for a person (a manual pause, a waiting notice).
COLOURS = {
    "critical_error": 0xD92D20,
    "retry_limit": 0xF79009,
    "loop_pattern": 0xF79009,
    "error_rate": 0xF79009,
    "session_duration": 0xEAAA08,
    "tool_call_timeout": 0xEAAA08,
    "silence": 0xEAAA08,
    "manual": 0x2E90FA,
    "waiting": 0x2E90FA,  # a person is asked something: nothing is stopped
}
# Discord's documented embed limits.
DISCORD_LIMITS = {"title": 256, "description": 4096, "field_name": 256, "field_value": 1024,
                  "fields": 25, "footer": 2048, "total": 6000}  # fmt: skip


# Slack: no documented limit per attachment field, 40,000 characters per message; keep each
# field readable and the whole message far below that.
SLACK_FIELD_LIMIT = 1000
LINK_FACT = "Where to Look"  # our own link, never agent text
_DISCORD_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\*_~`|>[]()#"})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escape(text: str) -> str:
    """Slack's own escaping for message text: `&`, `<` and `>`. Without it, agent text could
    ping `<!channel>`, mention `<@U…>` or hide a link as `<https://evil|click>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def discord_escape(text: str) -> str:
    """Backslash-escape Discord markdown, so agent text cannot format itself into a masked
    link (`[click](https://evil)`), a code fence or a heading; mentions are disabled by
    `allowed_mentions` on the whole message."""
    return text.translate(_DISCORD_MARKDOWN)


@dataclass(frozen=True)
class Notice:
    intervention: InterventionPaused
    suppressed_before: int = 0
    dashboard_url: str | None = None
    # A follow-up (what automatic recovery did) replaces the title and leads with its outcome.
    title: str = TITLE
    follow_up: str | None = None

    @property
    def colour(self) -> int:
        return COLOURS.get(self.intervention.trigger, 0x667085)

    @property
    def link(self) -> str | None:
        if not self.dashboard_url:
            return None
        if self.intervention.trigger == "waiting":  # no pause to open: the live sessions
            return f"{self.dashboard_url.rstrip('/')}/"
        return (
            f"{self.dashboard_url.rstrip('/')}/#/interventions/{self.intervention.intervention_id}"
        )

    @property
    def headline(self) -> str:
        return self.follow_up or self.intervention.reason

    def facts(self) -> list[tuple[str, str]]:
        """The original format's fields, in order."""
        i = self.intervention
        stats = i.retry_stats
        facts = [
            ("Project", i.project_id),
            ("Session", i.session_id),
            ("Time", i.paused_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("Trigger", i.trigger),
            ("Blocker Type", i.blocker_type or "none"),
            ("Error", _clip(i.error_excerpt or i.reason, 900)),
            ("Retry Statistics", f"{stats.total_retries} retries, max {stats.max_retries_on_single_command} on one command, {stats.unique_errors} unique errors"),
            ("Action Required", i.suggested_recovery or "Review the blocker and resume the session with notes."),
            (LINK_FACT, self.link or f"yokeflow-intervention interventions show {i.intervention_id}"),
        ]  # fmt: skip
        if i.task is not None:
            facts.insert(2, ("Task", f"{i.task.id} - {i.task.description}"))
        if self.suppressed_before:
            facts.append(
                (
                    "Suppressed",
                    f"{self.suppressed_before} more intervention(s) since the last notification",
                )
            )
        return facts

    def text(self) -> str:
        lines = [self.title, "", self.headline, ""]
        lines += [f"{name}: {value}" for name, value in self.facts()]
        return "\n".join(lines)


def slack_payload(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook message with a colour-coded attachment."""
    i = notice.intervention
    short = {"Project", "Session", "Trigger", "Blocker Type", "Time", "Task"}
    return {
        "text": f":rotating_light: *{notice.title}*: {i.project_id}/{i.session_id}",
        "attachments": [
            {
                "color": f"#{notice.colour:06x}",
                "title": slack_escape(_clip(notice.headline, 150)),
                "title_link": notice.link,
                "fields": [
                    {
                        "title": name,
                        "value": slack_escape(_clip(value, SLACK_FIELD_LIMIT)),
                        "short": name in short,
                    }
                    for name, value in notice.facts()
                ],
                "footer": slack_escape(f"intervention {i.intervention_id}"),
                "ts": int(i.paused_at.timestamp()),
            }
        ],
    }


def discord_payload(notice: Notice) -> dict[str, Any]:
    """An embed within Discord's length limits (6,000 characters in all)."""
    i = notice.intervention
    limits = DISCORD_LIMITS
    embed: dict[str, Any] = {
        "title": _clip(notice.title, limits["title"]),
        "description": _clip(discord_escape(notice.headline), limits["description"]),
        "color": notice.colour,
        "timestamp": i.paused_at.isoformat(),
        "footer": {"text": _clip(f"intervention {i.intervention_id}", limits["footer"])},
        "fields": [],
    }
    if notice.link:
        embed["url"] = notice.link
    budget = (
        limits["total"]
        - len(embed["title"])
        - len(embed["description"])
        - len(embed["footer"]["text"])
    )
    for name, value in notice.facts()[: limits["fields"]]:
        field: dict[str, Any] = {"name": _clip(name, limits["field_name"]),
                 "value": _clip((value if name == LINK_FACT else discord_escape(value)) or "-",
                                min(limits["field_value"], max(budget - len(name), 1))),
                 "inline": len(value) < 40}  # fmt: skip
        budget -= len(field["name"]) + len(field["value"])
        if budget < 0:
            break
        embed["fields"].append(field)
    # No @everyone, role or user pings, whatever the text says.
    return {"username": "YokeFlow", "embeds": [embed], "allowed_mentions": {"parse": []}}


def generic_payload(notice: Notice) -> dict[str, Any]:
    """The full intervention record, for a team's own receiver."""
    return {
        "type": "intervention.recovery" if notice.follow_up else "intervention.paused",
        "title": notice.title,
        "follow_up": notice.follow_up,
        "suppressed_before": notice.suppressed_before,
        "dashboard_url": notice.link,
        "intervention": notice.intervention.model_dump(mode="json"),
    }


def email_message(notice: Notice, sender: str, recipients: list[str]) -> EmailMessage:
    """Multipart: plain text first, then HTML."""
    i = notice.intervention
    message = EmailMessage()
    message["Subject"] = (
        f"[YokeFlow] {notice.title.removeprefix('YokeFlow ')}: {i.project_id} ({i.trigger})"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["X-YokeFlow-Intervention"] = i.intervention_id
    message.set_content(notice.text())
    rows = "".join(
        f"<tr><th align='left' style='padding:4px 12px 4px 0'>{html.escape(k)}</th>"
        f"<td style='padding:4px 0'>{html.escape(v)}</td></tr>"
        for k, v in notice.facts()
    )
    message.add_alternative(
        f"""<html><body style="font-family:sans-serif">
<h2 style="color:#{notice.colour:06x}">{html.escape(notice.title)}</h2>
<p>{html.escape(notice.headline)}</p>
<table>{rows}</table>
</body></html>""",
        subtype="html",
    )
    return message


def sms_text(notice: Notice) -> str:
    """Concise: one SMS segment where it can (160 characters)."""
    i = notice.intervention
    blocker = f" {i.blocker_type}" if i.blocker_type else ""
    if notice.follow_up:
        return _clip(f"YokeFlow: {i.project_id}: {notice.follow_up}", 300)
    text = f"YokeFlow: session blocked in {i.project_id} ({i.trigger}{blocker}). {i.reason}"
    if notice.suppressed_before:
        text += f" (+{notice.suppressed_before} more)"
    return _clip(text, 300)


def canonical_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
