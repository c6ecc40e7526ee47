"""The Claude Code hooks adapter: `yokeflow-hook` (also `yokeflow-intervention hook`).

Claude Code starts this program for every hook; the engine it shares with the other clients'
adapters (`hooks`) publishes the events and waits for the verdicts. This module is what is
Claude Code's own: how its hooks read (`PreToolUse`, `PostToolUse`, `PostToolUseFailure`,
`SessionStart`, `Stop`, `SessionEnd`, and `PermissionRequest` and `Notification` for a session
that waits for a person) and how a verdict is said back. On a pause it blocks the
call and halts the session, as Claude Code documents it (exit 0 with `continue: false` and a
`deny` decision); a warning and the resume brief go in as `additionalContext`. The project is
the stable root (`CLAUDE_PROJECT_DIR`), never the folder the agent `cd`-ed to.

Settings: the `env` of `.claude/settings.json` (see `hooks` for the names).
"""

from __future__ import annotations

import os

from . import jsonlite as json
from .hooks import (
    OUTPUT_LIMIT,
    Client,
    HookConfig,
    Hooked,
    Reply,
    permission_asked,
    read_transcript_tail,
    result_of,
    root_of,
    text_of,
)

TYPE_CHECKING = False  # typing is not imported: it costs the hook milliseconds
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ClaudeCode", "failure_of", "last_reply", "waiting_of"]


def failure_of(error: Any) -> tuple[int, str]:
    """(exit code, root cause) of a failed call: Claude Code reports a failing Bash call as
    "Exit code N\\n<stderr>"; anything else is exit code 1 with the text as it is."""
    text = text_of(error or "tool failed")
    head, _, rest = text.partition("\n")
    code = head[len("Exit code ") :]
    if not head.startswith("Exit code ") or not code.isdigit():
        return 1, text
    return int(code), rest.strip() or text


def last_reply(payload: dict[str, Any], tail_bytes: int = 256 * 1024) -> str:
    """The text of the agent's last turn: `last_assistant_message` where Claude Code sends it,
    else the assistant text entries after the last user entry of the transcript (JSONL)."""
    given = payload.get("last_assistant_message")
    if isinstance(given, str):
        return given[:OUTPUT_LIMIT]
    texts: list[str] = []
    for line in reversed(read_transcript_tail(payload.get("transcript_path"), tail_bytes)):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("type") == "user":
            break
        message = entry.get("message") if entry.get("type") == "assistant" else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                b.get("text", "")
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            ]
    return "\n".join(reversed(texts)).strip()[:OUTPUT_LIMIT]


def waiting_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of a `waiting` event for a hook payload that says a person is waited for: a
    PermissionRequest (a permission dialog is shown), or a Notification of a permission prompt,
    of 60 s idle after a turn, or of a question; None for anything else."""
    if payload.get("hook_event_name") == "PermissionRequest":
        tool_input = payload.get("tool_input")
        command = tool_input.get("command") if isinstance(tool_input, dict) else None
        return permission_asked(str(payload.get("tool_name") or "tool"), command)
    kind = _WAITING_NOTICES.get(str(payload.get("notification_type") or ""))
    if kind is None:
        return None
    return {"kind": kind, "prompt": str(payload.get("message") or "")[:2000]}


# Claude Code's `notification_type`s that mean a person is waited for, and the waiting kind.
_WAITING_NOTICES = {
    "permission_prompt": "permission",
    "idle_prompt": "idle",
    "elicitation_dialog": "question",
}
_KINDS = {
    "PreToolUse": "call",
    "PostToolUse": "result",
    "PostToolUseFailure": "result",
    "SessionStart": "start",
    "Stop": "turn",
    "SessionEnd": "end",
    "PermissionRequest": "waiting",
    "Notification": "waiting",
}


class ClaudeCode(Client):
    name = "claude"

    def hooked(self, payload: dict[str, Any], config: HookConfig) -> Hooked:
        event = str(payload.get("hook_event_name", ""))
        kind = _KINDS.get(event, "")
        if event == "SessionStart" and payload.get("source") in ("compact", "clear"):
            kind = ""  # the same session goes on: no new start, and no brief taken here
        if event == "PostToolUseFailure" and payload.get("is_interrupt"):
            kind = ""  # the user interrupted the call: not a failure of the tool
        root = root_of(config, os.environ.get("CLAUDE_PROJECT_DIR"), payload.get("cwd"))
        hooked = Hooked(kind, event, str(payload.get("session_id", "")), root)
        hooked.tool = str(payload.get("tool_name") or "tool")
        tool_input = payload.get("tool_input")
        hooked.tool_input = tool_input if isinstance(tool_input, dict) else {}
        call_id = payload.get("tool_use_id")
        hooked.call_id = str(call_id)[:200] if call_id else None
        if kind == "result":
            ok = event == "PostToolUse"
            response = payload.get("tool_response")
            if ok:
                code, text = 0, "" if response is None else text_of(response)
            else:
                code, text = failure_of(payload.get("error") or response)
            hooked.result = result_of(ok, code, text, payload.get("duration_ms"))
        elif kind == "turn":
            hooked.text = last_reply(payload)
        elif kind == "end":
            hooked.reason = str(payload.get("reason") or "completed")
        elif kind == "waiting":
            hooked.waiting = waiting_of(payload)
            if hooked.waiting is None:
                hooked.kind = ""  # a notification that waits for nobody
        return hooked

    def stop(self, hooked: Hooked, reason: str) -> Reply:
        output: dict[str, Any] = {"continue": False, "stopReason": reason}
        if hooked.event == "PreToolUse":
            output["hookSpecificOutput"] = {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        return Reply(0, output, reason)

    def context(self, hooked: Hooked, text: str) -> Reply:
        return Reply(
            0, {"hookSpecificOutput": {"hookEventName": hooked.event, "additionalContext": text}}
        )

    def missing_url(self, project: str) -> str:
        return (
            "NATS_URL is not set for Claude Code: run `yokeflow-intervention agents connect "
            f"{project} claude` (or put the URL `agents add {project}` prints in the `env` "
            "of .claude/settings.json; `yokeflow-hook --check` tells what is missing)"
        )
