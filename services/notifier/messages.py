"""One notice, formatted for each medium (Slack, Discord, generic JSON, email, SMS).

Every fact knows whether an agent could have shaped it (`Fact.agent`): such a fact is labelled
"(agent text)" and quoted on one line with its control and bidi characters made visible, in
every medium, so agent text can never pose as one of our own lines (a forged "Action Required:"
in the plain-text email). The SMS carries no agent text at all: only our own facts and link.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from yokeflow_agent.contract import InterventionPaused, incident_key

from yokeflow_intervention.shared.provenance import AGENT_MARK, one_line, quoted_line

__all__ = [
    "DISCORD_LIMITS",
    "SMS_SEGMENTS",
    "Fact",
    "Notice",
    "canonical_json",
    "clip",
    "discord_escape",
    "discord_payload",
    "email_message",
    "generic_payload",
    "headline_text",
    "pagerduty_event",
    "slack_escape",
    "slack_payload",
    "sms_segments",
    "sms_text",
]

TITLE = "YokeFlow Session Blocked"
GROUPED_FACT = "Same Blocker"
# Colours per trigger: red for infrastructure, orange for loops, yellow for budgets (of time:
# the session's, a call's, silence's), blue for a person (a manual pause, a waiting notice).
COLOURS = {
    "critical_error": 0xD92D20,
    "retry_limit": 0xF79009,
    "loop_pattern": 0xF79009,
    "error_rate": 0xF79009,
    "session_duration": 0xEAAA08,
    "no_progress": 0xF79009,
    "tool_call_timeout": 0xEAAA08,
    "silence": 0xEAAA08,
    "manual": 0x2E90FA,
    "waiting": 0x2E90FA,  # a person is asked something: nothing is stopped
}
DISCORD_BUTTON_URL = 512  # a link button's URL, at most
# Discord's documented embed limits.
DISCORD_LIMITS = {
    "title": 256,
    "description": 4096,
    "field_name": 256,
    "field_value": 1024,
    "fields": 25,
    "footer": 2048,
    "total": 6000,
}


# Slack: no documented limit per attachment field, 40,000 characters per message; keep each
# field readable and the whole message far below that.
SLACK_FIELD_LIMIT = 1000
LINK_FACT = "Where to Look"  # our own link, never agent text
# An SMS is billed per segment: at most this many (GSM-7: 306 characters; UCS-2: 134).
SMS_SEGMENTS = 2
# GSM 03.38: the basic set costs one septet a character, the extension table two (an escape).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
_DISCORD_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\*_~`|>[]()#"})


def clip(text: str, limit: int) -> str:
    """`text` within a channel's `limit` of characters, an ellipsis marking the cut."""
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


# What a notice says of each agent CLI the hooks know, in our words (any other name is the
# agent's own, shown as agent text); for one a hook cannot halt, what else stops it.
AGENT_NOTES = {
    "claude": "Claude Code",
    "gemini": "Gemini CLI",
    "codex": "codex (a hook cannot halt it: its further tool calls are refused; interrupt its "
    "turn from its app-server, or end the codex process, to stop it)",
    "copilot": "Copilot CLI",
    "opencode": "OpenCode",
}


@dataclass(frozen=True)
class Fact:
    """One named fact of a notice; `agent` when an agent could have shaped its value."""

    name: str
    value: str
    agent: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({AGENT_MARK})" if self.agent else self.name

    @property
    def shown(self) -> str:
        """The value as every medium shows it: agent text on one line, quoted, neutralised."""
        return quoted_line(self.value) if self.agent else self.value


@dataclass(frozen=True)
class Notice:
    intervention: InterventionPaused
    suppressed_before: int = 0
    dashboard_url: str | None = None
    # A follow-up (what automatic recovery did) replaces the title and leads with its outcome
    # (our words); its detail repeats what the fix saw (a command line: agent text).
    title: str = TITLE
    follow_up: str | None = None
    detail: str = ""
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
        if self.intervention.trigger == "waiting":  # no pause to open: the live sessions
            return f"{self.dashboard_url.rstrip('/')}/"
        return (
            f"{self.dashboard_url.rstrip('/')}/#/interventions/{self.intervention.intervention_id}"
        )

    @property
    def headline(self) -> Fact:
        """A follow-up's outcome (ours), or the reason (built around the agent's own commands)."""
        if self.follow_up:
            return Fact("Outcome", self.follow_up)
        return Fact("Reason", self.intervention.reason, agent=True)

    @property
    def where(self) -> str:
        command = f"yokeflow-intervention interventions show {self.intervention.intervention_id}"
        return self.link or command

    def facts(self) -> list[Fact]:
        """The original format's fields, in order."""
        i = self.intervention
        stats = i.retry_stats
        facts = [
            Fact("Project", i.project_id),
            Fact("Session", i.session_id),
            Fact("Time", i.paused_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
            Fact("Trigger", i.trigger),
            Fact("Blocker Type", i.blocker_type or "none"),
            Fact("Error", clip(i.error_excerpt or i.reason, 900), agent=True),
            Fact(
                "Retry Statistics",
                f"{stats.total_retries} retries, max {stats.max_retries_on_single_command} on one "
                f"command, {stats.unique_errors} unique errors",
            ),
            Fact(
                "Action Required",
                i.suggested_recovery or "Review the blocker and resume the session with notes.",
            ),
            Fact(LINK_FACT, self.where),
        ]
        if self.detail:
            facts.insert(0, Fact("Recovery Detail", clip(self.detail, 900), agent=True))
        if i.task is not None:
            facts.insert(2, Fact("Task", f"{i.task.id} - {i.task.description}", agent=True))
        if i.client is not None:
            # Our own words for a client we know; any other name is what the agent said it was.
            known = i.client in AGENT_NOTES
            facts.insert(
                2, Fact("Agent", clip(AGENT_NOTES.get(i.client, i.client), 300), agent=not known)
            )
        if self.grouped:
            shown = ", ".join(self.grouped[:10])
            more = f" (+{len(self.grouped) - 10} more)" if len(self.grouped) > 10 else ""
            facts.append(Fact(GROUPED_FACT, f"{len(self.grouped)} more session(s): {shown}{more}"))
        if self.suppressed_before:
            facts.append(
                Fact(
                    "Suppressed",
                    f"{self.suppressed_before} more intervention(s) since the last notification",
                )
            )
        return facts

    def text(self) -> str:
        """Plain text: one line per fact; agent text never begins a line."""
        lines = [self.title, "", f"{self.headline.label}: {self.headline.shown}", ""]
        lines += [f"{fact.label}: {fact.shown}" for fact in self.facts()]
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
                "title": slack_escape(clip(headline_text(notice), 150)),
                "title_link": notice.link,
                "fields": [
                    {
                        "title": fact.label,
                        "value": slack_escape(clip(fact.shown, SLACK_FIELD_LIMIT)),
                        "short": fact.name in short,
                    }
                    for fact in notice.facts()
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
        "title": clip(notice.title, limits["title"]),
        "description": clip(discord_escape(headline_text(notice)), limits["description"]),
        "color": notice.colour,
        "timestamp": i.paused_at.isoformat(),
        "footer": {"text": clip(f"intervention {i.intervention_id}", limits["footer"])},
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
    for fact in notice.facts()[: limits["fields"]]:
        name, value = fact.label, fact.shown
        field: dict[str, Any] = {
            "name": clip(name, limits["field_name"]),
            "value": clip(
                (value if fact.name == LINK_FACT else discord_escape(value)) or "-",
                min(limits["field_value"], max(budget - len(name), 1)),
            ),
            "inline": len(value) < 40,
        }
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


# The generic payload's fields an agent can shape, for a receiver that shows them.
AGENT_FIELDS = [
    "detail",
    "intervention.reason",
    "intervention.error_excerpt",
    "intervention.task",
    "intervention.workspace",
]


def generic_payload(notice: Notice) -> dict[str, Any]:
    """The full intervention record, for a team's own receiver, naming the fields that are
    agent text (`agent_text`), as they are, for the receiver to quote."""
    return {
        "type": "intervention.recovery" if notice.follow_up else "intervention.paused",
        "title": notice.title,
        "follow_up": notice.follow_up,
        "detail": notice.detail,
        "suppressed_before": notice.suppressed_before,
        "dashboard_url": notice.link,
        "intervention": notice.intervention.model_dump(mode="json"),
        "agent_text": AGENT_FIELDS,
    }


def headline_text(notice: Notice) -> str:
    """The notice's headline as every channel shows it: agent text labelled as the agent's."""
    headline = notice.headline
    return f"{AGENT_MARK}: {headline.shown}" if headline.agent else headline.shown


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
            "summary": clip(f"{i.project_id}/{i.session_id}: {headline_text(notice)}", 1024),
            "source": i.project_id,
            "severity": PAGERDUTY_SEVERITY.get(i.trigger, "error"),
            "timestamp": i.paused_at.isoformat(),
            "component": i.session_id,
            "group": i.blocker_type or i.trigger,
            "class": i.trigger,
            "custom_details": {fact.label: fact.shown for fact in notice.facts()},
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
        f"<tr><th align='left' style='padding:4px 12px 4px 0'>{html.escape(fact.label)}</th>"
        f"<td style='padding:4px 0'>{_html(fact)}</td></tr>"
        for fact in notice.facts()
    )
    message.add_alternative(
        f"""<html><body style="font-family:sans-serif">
<h2 style="color:#{notice.colour:06x}">{html.escape(notice.title)}</h2>
<p>{_html(notice.headline)}</p>
<table>{rows}</table>
{_html_actions(notice.actions)}
</body></html>""",
        subtype="html",
    )
    return message


def _html(fact: Fact) -> str:
    """Agent text in a quotation of its own, labelled, left to right whatever it contains."""
    if not fact.agent:
        return html.escape(fact.value)
    return (
        f"<q dir='ltr' style='background:#f2f4f7' title='{AGENT_MARK}'>"
        f"{html.escape(one_line(fact.value))}</q>"
    )


def sms_segments(text: str) -> int:
    """How many segments a carrier bills for `text`: GSM-7 when every character is in the GSM
    03.38 sets (160 septets alone, 153 a part; an extension character takes two), else UCS-2
    (70 UTF-16 units alone, 67 a part)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        units = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
        single, part = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


def _html_actions(actions: tuple[tuple[str, str], ...]) -> str:
    if not actions:
        return ""
    buttons = " ".join(
        f"<a href='{html.escape(url)}' style='display:inline-block;padding:8px 14px;"
        f"margin:4px 8px 4px 0;background:#1d2939;color:#fff;border-radius:6px;"
        f"text-decoration:none'>{html.escape(label)}</a>"
        for label, url in actions
    )
    return (
        f"<p>{buttons}</p>"
        "<p style='color:#667085'>Each link asks you to confirm and works once.</p>"
    )


def sms_text(notice: Notice) -> str:
    """Concise, and only our own words: what happened, where, and our link (an SMS cannot
    quote, so the agent's text and links stay out of it); clipped to SMS_SEGMENTS billed
    segments (with "...", which GSM-7 has, unlike "…")."""
    i = notice.intervention
    blocker = f" {i.blocker_type}" if i.blocker_type else ""
    if notice.follow_up:
        text = f"YokeFlow: {i.project_id}: {notice.follow_up}."
    else:
        text = f"YokeFlow: session blocked in {i.project_id} ({i.trigger}{blocker})."
    if notice.suppressed_before:
        text += f" (+{notice.suppressed_before} more)"
    text += f" {notice.where}"
    # Only the acknowledgement link: a text message is for taking the incident; resuming with
    # notes wants a screen. The link is never clipped, the text before it is.
    tail = f" {notice.actions[0][0]}: {notice.actions[0][1]}" if notice.actions else ""
    if sms_segments(text + tail) <= SMS_SEGMENTS:
        return text + tail
    keep = len(text)
    while keep and sms_segments(text[:keep] + "..." + tail) > SMS_SEGMENTS:
        keep -= 1
    return text[:keep] + "..." + tail


def canonical_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
