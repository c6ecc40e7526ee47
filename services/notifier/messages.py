"""One notice, formatted for each medium (Slack, Discord, generic JSON, email, SMS)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from yokeflow_agent.contract import InterventionPaused, incident_key

__all__ = [
    "DISCORD_LIMITS",
    "Notice",
    "canonical_json",
    "discord_escape",
    "discord_payload",
    "email_message",
    "generic_payload",
    "pagerduty_event",
    "slack_escape",
    "slack_payload",
    "sms_text",
]

TITLE = "YokeFlow Session Blocked"
GROUPED_FACT = "Same Blocker"
# Colours per trigger: red for infrastructure, orange for loops, yellow for budgets, blue manual.
COLOURS = {
    "critical_error": 0xD92D20,
    "retry_limit": 0xF79009,
    "loop_pattern": 0xF79009,
    "error_rate": 0xF79009,
    "session_duration": 0xEAAA08,
    "manual": 0x2E90FA,
}
DISCORD_BUTTON_URL = 512  # a link button's URL, at most
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
    # Signed action links for this notice's recipient: (label, URL), acknowledge first.
    actions: tuple[tuple[str, str], ...] = ()
    # Sessions stopped since with the same blocker, told as part of this incident.
    grouped: tuple[str, ...] = ()

    @property
    def colour(self) -> int:
        return COLOURS.get(self.intervention.trigger, 0x667085)

    @property
    def link(self) -> str | None:
        if not self.dashboard_url:
            return None
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
        if self.grouped:
            shown = ", ".join(self.grouped[:10])
            more = f" (+{len(self.grouped) - 10} more)" if len(self.grouped) > 10 else ""
            facts.append((GROUPED_FACT, f"{len(self.grouped)} more session(s): {shown}{more}"))
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
        if self.actions:
            lines += ["", "Act on it (each link asks you to confirm, works once):"]
            lines += [f"- {label}: {url}" for label, url in self.actions]
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
    if notice.actions:
        # Our own URLs, first, so no long fact can crowd them out.
        act = " · ".join(f"[{label}]({url})" for label, url in notice.actions)
        embed["fields"].append({"name": "Act", "value": act, "inline": False})
        budget -= len("Act") + len(act)
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
    message = {"username": "YokeFlow", "embeds": [embed], "allowed_mentions": {"parse": []}}
    buttons = [
        {"type": 2, "style": 5, "label": label, "url": url}
        for label, url in notice.actions
        if len(url) <= DISCORD_BUTTON_URL
    ]
    if buttons:
        # Link buttons (non-interactive components, which a webhook may send with
        # ?with_components=true); the embed's Act field is the same links, for clients without.
        message["components"] = [{"type": 1, "components": buttons}]
    return message


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


PAGERDUTY_SEVERITY = {"critical_error": "critical", "manual": "info"}


def pagerduty_event(routing_key: str, action: str, notice: Notice) -> dict[str, Any]:
    """An Events API v2 event: trigger, acknowledge or resolve, keyed by the incident's dedup
    key, so PagerDuty's incident follows ours."""
    i = notice.intervention
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": incident_key(i.project_id, i.intervention_id),
    }
    if action == "trigger":
        event["payload"] = {
            "summary": _clip(f"{i.project_id}/{i.session_id}: {notice.headline}", 1024),
            "source": i.project_id,
            "severity": PAGERDUTY_SEVERITY.get(i.trigger, "error"),
            "timestamp": i.paused_at.isoformat(),
            "component": i.session_id,
            "group": i.blocker_type or i.trigger,
            "class": i.trigger,
            "custom_details": dict(notice.facts()),
        }
        event["client"] = "YokeFlow Intervention"
        if notice.link:
            event["links"] = [{"href": notice.link, "text": "The intervention"}]
    return event


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
{_html_actions(notice.actions)}
</body></html>""",
        subtype="html",
    )
    return message


def _html_actions(actions: tuple[tuple[str, str], ...]) -> str:
    if not actions:
        return ""
    buttons = " ".join(
        f"<a href='{html.escape(url)}' style='display:inline-block;padding:8px 14px;"
        f"margin:4px 8px 4px 0;background:#1d2939;color:#fff;border-radius:6px;"
        f"text-decoration:none'>{html.escape(label)}</a>"
        for label, url in actions
    )
    return f"<p>{buttons}</p><p style='color:#667085'>Each link asks you to confirm and works once.</p>"


def sms_text(notice: Notice) -> str:
    """Concise: one SMS segment where it can (160 characters)."""
    i = notice.intervention
    blocker = f" {i.blocker_type}" if i.blocker_type else ""
    if notice.follow_up:
        return _clip(f"YokeFlow: {i.project_id}: {notice.follow_up}", 300)
    text = f"YokeFlow: session blocked in {i.project_id} ({i.trigger}{blocker}). {i.reason}"
    if notice.suppressed_before:
        text += f" (+{notice.suppressed_before} more)"
    if notice.actions:
        # Only the acknowledgement: a text message is for taking the incident; resuming with
        # notes wants a screen. The link is never clipped, the text before it is.
        label, url = notice.actions[0]
        tail = f" {label}: {url}"
        return _clip(text, max(300 - len(tail), 80)) + tail
    return _clip(text, 300)


def canonical_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
