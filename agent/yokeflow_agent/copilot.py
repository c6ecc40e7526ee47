"""The GitHub Copilot CLI hooks adapter (`yokeflow-hook --client copilot --event NAME`).

Copilot CLI runs command hooks from `.github/hooks/*.json` of a trusted folder (`trusted_folders`
in `~/.copilot/config.json`) and from `~/.copilot/hooks/*.json`. Its payloads are camelCase
and do not name their event, so each hook entry passes it (`--event preToolUse`). What they
say, in the contract's terms:

- `preToolUse` is a call (`toolName`, `toolArgs`; no call id), `postToolUse` its result;
- a failed shell command is reported as `resultType: "success"`, with the exit code only in
  its text (`<shellId: N completed with exit code 3>`), which `failure_of` reads back; the
  text before it is the command's merged output;
- `sessionStart`, `sessionEnd` (`reason`) and `agentStop` (the agent's reply, read from the
  session's `events.jsonl`) bound the session and its turns: after `agentStop` it is the
  user's turn;
- `notification` of type `permission_prompt` (a permission dialog is shown; headless, `-p`
  without the tool allowed, Copilot sends it too and then denies the call itself) or
  `elicitation_dialog` (the agent asks its user a question) says the session waits for a
  person. It names no tool: the engine takes the one of the `permissionRequest` just before.
  `permissionRequest` itself is no wait: it runs before Copilot's own rules, for calls they
  allow too. Copilot sends no notice of an idle main agent (`agent_idle` is a background
  agent's); its other notifications are not recorded.

A verdict goes back in Copilot's terms. A refused call is `permissionDecision: "deny"`. The
session is halted by `permissionRequest` answering `behavior: "deny"` with `interrupt: true`,
which Copilot asks only of a call its `preToolUse` let through: so on a stop the shell call
(`bash`, which always goes through the permission service) is let through `preToolUse` and
refused by `permissionRequest`, which reads the stop from the session's local state (no
network between the two hooks); any other tool is denied at `preToolUse`. A halted Copilot
exits 0. The resume brief is `additionalContext` of `sessionStart`.
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

__all__ = ["CopilotCli", "failure_of", "waiting_of"]

_KINDS = {
    "preToolUse": "call",
    "postToolUse": "result",
    "sessionStart": "start",
    "agentStop": "turn",
    "sessionEnd": "end",
    "permissionRequest": "permission",
    "notification": "waiting",
}
_EXIT = " completed with exit code "
# Tools Copilot always puts through its permission service, where a halt can be said.
_HALTING_TOOLS = frozenset({"bash"})


def failure_of(result: Any) -> tuple[bool, int | None, str]:
    """(ok, exit code, output) of a Copilot tool result."""
    result = result if isinstance(result, dict) else {"textResultForLlm": result}
    text = text_of(result.get("textResultForLlm") or "")
    code: int | None = None
    start = text.rfind(_EXIT)
    if start >= 0 and text.rfind("<shellId:", 0, start) >= 0:
        digits = text[start + len(_EXIT) :].split(">", 1)[0].strip()
        code = int(digits) if digits.lstrip("-").isdigit() else None
        text = text[: text.rfind("<shellId:", 0, start)].strip()
    if result.get("resultType") in ("failure", "denied", "rejected"):
        return False, code if code not in (None, 0) else 1, text
    return code in (None, 0), code if code is not None else 0, text


def waiting_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The `waiting` fields of a notification that says a person is waited for (a permission
    dialog, a question), in Copilot's own words; None for any other."""
    kind = payload.get("notification_type")
    if kind == "permission_prompt":
        return permission_asked(None, None, payload.get("message"))
    if kind == "elicitation_dialog":
        return {"kind": "question", "prompt": str(payload.get("message") or "")[:2000]}
    return None


def _last_reply(transcript: Any) -> str:
    for line in reversed(read_transcript_tail(transcript)):
        if '"assistant.message"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        data = entry.get("data") if isinstance(entry, dict) else None
        if isinstance(data, dict) and data.get("content"):
            return text_of(data["content"])
    return ""


class CopilotCli(Client):
    name = "copilot"
    halts_later = True

    def __init__(self, event: str = "") -> None:
        self.event = event  # Copilot's payloads do not name their event: the entry does

    def hooked(self, payload: dict[str, Any], config: HookConfig) -> Hooked:
        event = self.event or str(payload.get("hookName") or "")
        root = root_of(config, payload.get("cwd"))
        hooked = Hooked(_KINDS.get(event, ""), event, str(payload.get("sessionId", "")), root)
        hooked.tool = str(payload.get("toolName") or "tool")
        tool_input = payload.get("toolArgs", payload.get("toolInput"))
        hooked.tool_input = tool_input if isinstance(tool_input, dict) else {}
        if hooked.kind == "result":
            hooked.result = result_of(*failure_of(payload.get("toolResult")))
        elif hooked.kind == "turn":
            hooked.text = _last_reply(payload.get("transcriptPath"))
        elif hooked.kind == "end":
            hooked.reason = str(payload.get("reason") or "completed")
        elif hooked.kind == "waiting":
            hooked.waiting = waiting_of(payload)
            if hooked.waiting is None:
                hooked.kind = ""
        return hooked

    def stop(self, hooked: Hooked, reason: str) -> Reply:
        if hooked.event == "permissionRequest":
            return Reply(0, {"behavior": "deny", "message": reason, "interrupt": True})
        if hooked.event == "preToolUse":
            if hooked.tool in _HALTING_TOOLS:
                return Reply(0, {})  # its permissionRequest refuses it and halts the session
            return Reply(0, {"permissionDecision": "deny", "permissionDecisionReason": reason})
        return Reply(0, {"systemMessage": reason})

    def context(self, hooked: Hooked, text: str) -> Reply:
        return Reply(0, {"additionalContext": text})

    def fail_open(self, hooked: Hooked | None, problem: str) -> Reply:
        reply = super().fail_open(hooked, problem)
        return Reply(0, reply.output, "")
