"""The Slack app's incident message: Block Kit built with slack-sdk's models, posted with
chat.postMessage and edited with chat.update on every change of the incident (acknowledged,
snoozed, resumed), so the channel never shows a resolved incident as open.

Agent text is escaped as Slack documents (`&`, `<`, `>`), so it can mention no one and hide no
link; the buttons carry only the intervention id, which the API treats as a lookup key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from yokeflow_intervention.shared.slack import BUTTONS

from .messages import GROUPED_FACT, Notice, clip, headline_text, slack_escape

__all__ = ["IncidentState", "incident_blocks", "incident_text"]


@dataclass(frozen=True)
class IncidentState:
    """Where the incident stands, from its row (a new notice: nothing yet)."""

    acknowledged_by: str | None = None
    acknowledged_via: str | None = None
    snoozed_until: datetime | None = None
    resolved_by: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> IncidentState:
        return cls(
            row.get("acknowledged_by"),
            row.get("acknowledged_via"),
            row.get("snoozed_until"),
            row.get("resolved_by") if row.get("resolved") else None,
        )

    def line(self, now: datetime) -> str:
        if self.resolved_by:
            return f":white_check_mark: Resolved by {slack_escape(self.resolved_by)}"
        parts = []
        if self.acknowledged_by:
            parts.append(
                f":eyes: Acknowledged by {slack_escape(self.acknowledged_by)}"
                f" ({self.acknowledged_via})"
            )
        if self.snoozed_until and self.snoozed_until > now:
            parts.append(f":zzz: Snoozed until {self.snoozed_until:%H:%M} UTC")
        return " · ".join(parts) or ":rotating_light: Not acknowledged yet"


def incident_text(notice: Notice, state: IncidentState) -> str:
    """The message's plain text: what notifications and screen readers show."""
    i = notice.intervention
    status = "resolved" if state.resolved_by else "blocked"
    return f"YokeFlow: session {status} in {i.project_id}/{i.session_id} ({i.trigger})"


def incident_blocks(notice: Notice, state: IncidentState, now: datetime) -> list[dict[str, Any]]:
    i = notice.intervention
    blocker = f" · {i.blocker_type}" if i.blocker_type else ""
    title = "YokeFlow Session Resolved" if state.resolved_by else notice.title
    blocks: list[Block] = [
        HeaderBlock(text=clip(title, 150)),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{i.project_id}* / `{i.session_id}` · {i.trigger}{blocker}\n"
                + slack_escape(clip(headline_text(notice), 2500))
            ),
            fields=[
                MarkdownTextObject(text=f"*{fact.label}*\n{slack_escape(clip(fact.shown, 1900))}")
                for fact in notice.facts()
                if fact.name
                in ("Task", "Retry Statistics", "Time", "Action Required", GROUPED_FACT)
            ],
        ),
        ContextBlock(elements=[MarkdownTextObject(text=state.line(now))]),
    ]
    if not state.resolved_by:
        buttons = [
            ButtonElement(
                text=label,
                action_id=action,
                value=i.intervention_id,
                style="primary" if action == "acknowledge" else None,
            )
            for action, label in BUTTONS.items()
            if action != "open"
        ]
        if notice.link:
            buttons.append(ButtonElement(text=BUTTONS["open"], action_id="open", url=notice.link))
        blocks.append(ActionsBlock(block_id="incident", elements=buttons))
    return [block.to_dict() for block in blocks]
