"""The Codex CLI hooks adapter (`yokeflow-hook --client codex`).

Codex runs command hooks from `hooks.json` next to its configuration (`~/.codex/hooks.json`,
or the project's `.codex/hooks.json` in a trusted project), with Claude-style fields plus
`turn_id` and `tool_use_id`; its shell tool is reported as `Bash`. What they say, in the
contract's terms: `PreToolUse` is a call, `PostToolUse` its result, `SessionStart` and
`SessionEnd` the session's ends, `Stop` the agent's reply of a turn
(`last_assistant_message`): the turn ended, it is its user's turn. `PermissionRequest` runs
when Codex is about to ask for an approval (a shell command or network access, in an
interactive session whose approval policy asks; `codex exec` never asks): the session waits
for a person. Codex has no hook for an idle session, nor for the approval of a patch.

A command's result comes as plain output (`tool_response`, stdout and stderr merged), without
its exit code. The exit code is in Codex's own record of the session (`transcript_path`, a
JSONL file it writes before the hook runs): the command's `item_completed` entry carries
`exit_code`, and its `function_call_output` says `Process exited with code N`. When neither is
there, the result is recorded as it is, with no exit code, and judged by its text.

A verdict goes back in Codex's terms: a refused call is `permissionDecision: "deny"`. Codex
cannot be halted from a hook: `continue: false` beside a deny makes Codex discard the whole
answer and run the command (it fails open), so the adapter never sends it. A paused session's
every further call is refused instead, and the notice says what else stops it (its
app-server's turn interrupt, or ending the `codex` process).

Codex runs no hook at all, silently, until its hooks are trusted (by a hash it computes for
each): `yokeflow-intervention agents connect PROJECT codex` records that trust for its own
hooks, as `/hooks` in an interactive `codex` would. Its hook configuration has no environment
of its own: the hook reads `--env FILE`, which `agents connect` writes readable by its owner
only.
"""

from __future__ import annotations

from . import jsonlite as json
from .hooks import (
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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CodexCli", "exit_code_of"]

_KINDS = {
    "PreToolUse": "call",
    "PostToolUse": "result",
    "SessionStart": "start",
    "Stop": "turn",
    "SessionEnd": "end",
    "PermissionRequest": "waiting",
}
_EXITED = "Process exited with code "


def exit_code_of(transcript: Any, call_id: str) -> int | None:
    """The exit code Codex recorded for the command `call_id`, or None."""
    for line in reversed(read_transcript_tail(transcript)):
        if call_id not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        payload = entry.get("payload") if isinstance(entry, dict) else None
        if not isinstance(payload, dict):
            continue
        item = payload.get("item")
        if isinstance(item, dict) and item.get("id") == call_id:
            code = item.get("exit_code")
            if isinstance(code, int):
                return code
        if payload.get("type") == "function_call_output" and payload.get("call_id") == call_id:
            output = str(payload.get("output") or "")
            start = output.find(_EXITED)
            digits = output[start + len(_EXITED) :].split("\n", 1)[0].strip() if start >= 0 else ""
            if digits.lstrip("-").isdigit():
                return int(digits)
    return None


class CodexCli(Client):
    name = "codex"
    halts = False

    def hooked(self, payload: dict[str, Any], config: HookConfig) -> Hooked:
        event = str(payload.get("hook_event_name", ""))
        root = root_of(config, payload.get("cwd"))
        hooked = Hooked(_KINDS.get(event, ""), event, str(payload.get("session_id", "")), root)
        hooked.tool = str(payload.get("tool_name") or "tool")
        tool_input = payload.get("tool_input")
        hooked.tool_input = tool_input if isinstance(tool_input, dict) else {}
        call_id = payload.get("tool_use_id")
        hooked.call_id = str(call_id)[:200] if call_id else None
        if hooked.kind == "result":
            output = text_of(payload.get("tool_response") or "")
            code = exit_code_of(payload.get("transcript_path"), str(call_id)) if call_id else None
            hooked.result = result_of(code in (None, 0), code, output)
        elif hooked.kind == "turn":
            hooked.text = text_of(payload.get("last_assistant_message") or "")
        elif hooked.kind == "end":
            hooked.reason = str(payload.get("reason") or "completed")
        elif hooked.kind == "waiting":  # a person is about to be asked to approve this call
            hooked.waiting = permission_asked(hooked.tool, hooked.tool_input.get("command"))
        return hooked

    def stop(self, hooked: Hooked, reason: str) -> Reply:
        reason += (
            " (Codex cannot be halted from a hook: interrupt its turn from the "
            "app-server, or end the codex process.)"
        )
        if hooked.event == "PreToolUse":
            return Reply(
                0,
                {
                    "hookSpecificOutput": {
                        "hookEventName": "PreToolUse",
                        "permissionDecision": "deny",
                        "permissionDecisionReason": reason,
                    }
                },
            )
        if hooked.event == "PostToolUse":
            return Reply(0, {"decision": "block", "reason": reason})
        return Reply(0, {"systemMessage": reason})

    def context(self, hooked: Hooked, text: str) -> Reply:
        if hooked.event in ("SessionStart", "PostToolUse"):
            return Reply(
                0,
                {"hookSpecificOutput": {"hookEventName": hooked.event, "additionalContext": text}},
            )
        return Reply(0, {"systemMessage": text})

    def fail_open(self, hooked: Hooked | None, problem: str) -> Reply:
        reply = super().fail_open(hooked, problem)
        return Reply(0, reply.output, "")
