"""One line per lifecycle event as it happens: detected (or, in observe mode, "would stop"),
warned, waiting (a session has long waited for a person), paused, notified, recovery step,
acknowledged, snoozed, resumed, next session started, dead letter. `up` prints them (unless
`--quiet`), and `yokeflow-intervention interventions watch` does the same from a second terminal.

Coloured on a terminal, plain when piped (or with NO_COLOR set). `describe` is pure, so what a
line says is tested without a bus; `watch` is the subscription around it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TextIO

from nats.aio.msg import Msg
from yokeflow_agent.contract import Subjects

from yokeflow_intervention.shared.provenance import notes_source, one_line, quoted_line

__all__ = ["WATCHED", "Line", "describe", "main", "render", "use_colour", "watch"]

Tone = Literal["bad", "warn", "good", "info"]

# Events of the contract, dead letters, and the orchestrator's record of a next session (a
# command the pauser serves: observed, never answered).
WATCHED = (
    "intervention.*.*",
    Subjects.AGENT_DLQ,
    Subjects.INTERVENTION_DLQ,
    Subjects.command("record_next_session"),
)
_COLOURS: dict[Tone, str] = {"bad": "31", "warn": "33", "good": "32", "info": "36"}
_RECOVERY_TONES: dict[str, Tone] = {"succeeded": "good", "failed": "bad", "refused": "warn"}
_TEXT = 160  # agent text is clipped: a line is for reading at a glance


@dataclass(frozen=True)
class Line:
    kind: str
    tone: Tone
    where: str  # project/session, or the subject for dead letters
    text: str


def _clip(value: object, limit: int = _TEXT) -> str:
    """One line, whatever the agent wrote; control and bidi characters shown as `<U+XXXX>` (an
    escape sequence in agent text must not restyle or rewrite the operator's terminal, an
    override must not reverse it)."""
    text = " ".join(one_line(str(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(value: object, limit: int = _TEXT) -> str:
    """Agent text, marked as such: in quotation marks its own text cannot close unseen."""
    return quoted_line(_clip(value, limit))


def _session(session_id: object) -> str:
    """Session ids are UUIDs in practice: their first 8 characters tell them apart on screen."""
    text = str(session_id or "?")
    return text[:8] if len(text) > 12 else text


def _where(body: dict[str, Any]) -> str:
    return _clip(f"{body.get('project_id', '?')}/{_session(body.get('session_id'))}", 80)


def _short(intervention_id: object) -> str:
    return str(intervention_id or "?")[:8]


def describe(subject: str, data: bytes) -> Line | None:
    """What one message says, in a line; None for what is not a lifecycle event."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return (
            Line("dead letter", "bad", subject, "unreadable message") if "dlq" in subject else None
        )
    if subject in (Subjects.AGENT_DLQ, Subjects.INTERVENTION_DLQ):
        consumer = f" ({body['consumer']})" if body.get("consumer") else ""
        return Line(
            "dead letter",
            "bad",
            _clip(body.get("original_subject", subject), 80),
            f"{_quoted(body.get('reason', ''))}{consumer}",
        )
    if subject == Subjects.command("record_next_session"):
        return Line(
            "next session",
            "good",
            _short(body.get("intervention_id")),
            f"session {_session(body.get('session_id'))} started with the resume brief",
        )
    kind = subject.split(".")[1] if subject.count(".") >= 2 else ""
    blocker = f" [{body['blocker_type']}]" if body.get("blocker_type") else ""
    ref = _short(body.get("intervention_id"))
    if kind == "detected" and body.get("mode") == "observe":
        what = f"{body.get('trigger')}{blocker}: {_quoted(body.get('reason', ''))}"
        return Line("would stop", "warn", _where(body), f"{what} (observe mode: not stopped)")
    if kind == "detected":
        return Line(
            "detected",
            "bad",
            _where(body),
            f"{body.get('trigger')}{blocker}: {_quoted(body.get('reason', ''))}",
        )
    if kind == "warned":
        return Line(
            "warned",
            "warn",
            _where(body),
            f"{body.get('trigger')}: {_quoted(body.get('reason', ''))}",
        )
    if kind == "waiting":  # told to a person, nothing paused
        return Line("waiting", "warn", _where(body), _quoted(body.get("reason", "")))
    if kind == "paused":
        return Line("paused", "bad", _where(body), f"intervention {ref}{blocker}")
    if kind == "notified":
        outcomes = body.get("outcomes") or []
        told = ", ".join(
            f"{o.get('channel')} {o.get('status')}" for o in outcomes if isinstance(o, dict)
        )
        decision = body.get("decision")
        if decision != "notify":
            text = _clip(body.get("reason") or f"{decision} (rate limit or preferences)", 120)
        else:
            text = told or "no channel configured"
        failed = any(isinstance(o, dict) and o.get("status") == "failed" for o in outcomes)
        return Line("notified", "warn" if failed else "info", _where(body), f"{ref}: {text}")
    if kind == "recovery":
        status = str(body.get("status", "?"))
        tone = _RECOVERY_TONES.get(status, "info")
        action = body.get("action") or "recovery"
        detail = f": {_quoted(body['detail'], 100)}" if body.get("detail") else ""
        resumed = ", session resumed" if body.get("auto_resumed") else ""
        return Line("recovery", tone, _where(body), f"{ref} {action} {status}{detail}{resumed}")
    if kind == "acknowledged":
        who = _clip(body.get("acknowledged_by"), 80)
        return Line("acknowledged", "info", _where(body), f"{ref} by {who} via {body.get('via')}")
    if kind == "snoozed":
        who, until = _clip(body.get("snoozed_by"), 80), str(body.get("until"))[:16]
        return Line("snoozed", "info", _where(body), f"{ref} by {who} until {until}")
    if kind == "resumed":
        notes = body.get("resolution_notes") or ""
        if notes and notes_source(body.get("resolved_by")) == "automatic":
            notes = f": {_quoted(notes, 100)}"  # repeats what the agent's processes said
        elif notes:
            notes = f": {_clip(notes, 100)}"
        false_stop = " (a false stop)" if body.get("false_stop") else ""
        by = _clip(body.get("resolved_by"), 80)
        return Line("resumed", "good", _where(body), f"{ref} by {by}{false_stop}{notes}")
    return None


def render(line: Line, colour: bool, at: datetime | None = None) -> str:
    stamp = (at or datetime.now()).strftime("%H:%M:%S")
    kind = f"{line.kind:<12}"
    if colour:
        kind = f"\x1b[1;{_COLOURS[line.tone]}m{kind}\x1b[0m"
        return f"\x1b[2m{stamp}\x1b[0m {kind} \x1b[1m{line.where}\x1b[0m  {line.text}"
    return f"{stamp} {kind} {line.where}  {line.text}"


def use_colour(stream: TextIO, choice: str = "auto") -> bool:
    """auto: colour on a terminal unless NO_COLOR is set; always / never as said."""
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


async def watch(nats_url: str, out: TextIO, colour: bool, stop: asyncio.Event) -> None:
    """Print a line for every lifecycle event until `stop` is set."""
    from yokeflow_intervention.shared.bus import connect

    nc = await connect(nats_url, "yokeflow-watch")

    # A redelivered resume makes the orchestrator ask again; the pauser records only the first.
    next_sessions: deque[str] = deque(maxlen=1000)

    async def show(msg: Msg) -> None:
        line = describe(msg.subject, msg.data)
        if line is None:
            return
        if line.kind == "next session":
            if line.where in next_sessions:
                return
            next_sessions.append(line.where)
        out.write(render(line, colour) + "\n")
        out.flush()

    try:
        for subject in WATCHED:
            await nc.subscribe(subject, cb=show)
        await nc.flush()
        out.write(
            render(
                Line(
                    "watching",
                    "info",
                    "all projects",
                    "interventions as they happen (Ctrl-C stops)",
                ),
                colour,
            )
            + "\n"
        )
        out.flush()
        await stop.wait()
    finally:
        await nc.close()


def main() -> None:
    """`python -m yokeflow_intervention.cli.watch`: what `up` runs beside the services."""
    from yokeflow_intervention.shared.runtime import ServiceContext
    from yokeflow_intervention.shared.settings import load_settings

    url = ServiceContext("watch", load_settings()).nats_url
    try:
        asyncio.run(watch(url, sys.stdout, use_colour(sys.stdout), asyncio.Event()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
