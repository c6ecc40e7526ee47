"""The Gemini CLI hooks adapter (`yokeflow-hook --client gemini`).

Gemini CLI runs command hooks from the `hooks` of its `settings.json` (the user's
`~/.gemini/settings.json`, or the project's `.gemini/settings.json`, which it reads only in a
trusted folder). What its hooks say, in the contract's terms:

- `BeforeTool` is a tool call (no call id: Gemini gives none), `AfterTool` its result;
- `SessionStart` starts a session, `SessionEnd` ends it (`reason`), `AfterAgent` carries the
  agent's reply of a turn (`prompt_response`): the turn ended, it is its user's turn;
- `Notification` of type `ToolPermission` (the only type Gemini sends) is a permission prompt
  shown to the user (interactive sessions only: headless, Gemini refuses such a call without
  asking): the session waits for a person. Gemini has no notice of an idle session;
- a shell command's result has no exit-code field: `run_shell_command` reports
  `Exit Code: N` in the text it gives the model (`tool_response.llmContent`), with stdout and
  stderr merged under `Output:`; `failure_of` reads them back.

A verdict goes back in Gemini's own terms: a refused call is `decision: "deny"` and the halt
is `continue: false` (a halted Gemini exits 0); a warning and the resume brief are
`hookSpecificOutput.additionalContext`. Gemini gives every hook `GEMINI_PROJECT_DIR`, the
session's root, which is where the blocker entry goes. Gemini's own loop detector may end a
session of identical calls before a hook sees the 5th; the detector stops the 4th.
"""

from __future__ import annotations

import os

from .hooks import (
    Client,
    HookConfig,
    Hooked,
    Reply,
    permission_asked,
    result_of,
    root_of,
    text_of,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["GeminiCli", "failure_of", "waiting_of"]

_KINDS = {
    "BeforeTool": "call",
    "AfterTool": "result",
    "SessionStart": "start",
    "AfterAgent": "turn",
    "SessionEnd": "end",
    "Notification": "waiting",
}
_LABELS = ("Output:", "Error:", "Exit Code:", "Signal:", "Background PIDs:", "Process Group PGID:")


def failure_of(response: Any) -> tuple[bool, int | None, str]:
    """(ok, exit code, output) of a Gemini tool response: `Exit Code: N` and `Output:` from
    the text a shell command reports, an `error` field for a tool that failed otherwise."""
    response = response if isinstance(response, dict) else {"llmContent": response}
    text = text_of(response.get("llmContent") or response.get("returnDisplay") or "")
    fields: dict[str, str] = {}
    label = ""
    for line in (
        text.replace("<untrusted_context>", "").replace("</untrusted_context>", "").split("\n")
    ):
        found = next((each for each in _LABELS if line.startswith(each)), None)
        if found is not None:
            label = found
            fields[label] = line[len(found) :].strip()
        elif label:
            fields[label] += "\n" + line
    code_text = fields.get("Exit Code:", "").strip()
    code = int(code_text) if code_text.lstrip("-").isdigit() else None
    error = response.get("error")
    output = fields.get("Output:", text).strip()
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        return False, code if code not in (None, 0) else 1, text_of(message or output)
    if code is None and fields.get("Error:", "(none)") not in ("", "(none)"):
        return False, 1, text_of(fields["Error:"])
    return code in (None, 0), code if code is not None else 0, output


def waiting_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The `waiting` fields of a Notification: a permission prompt, for a shell command with
    its command (`details`), for another tool (an edit, an MCP tool) in Gemini's own words;
    None for a notification that waits for nobody."""
    if payload.get("notification_type") != "ToolPermission":
        return None
    details = payload.get("details")
    if isinstance(details, dict) and details.get("type") == "exec":
        return permission_asked("run_shell_command", details.get("command"), payload.get("message"))
    return permission_asked(None, None, payload.get("message"))


class GeminiCli(Client):
    name = "gemini"

    def hooked(self, payload: dict[str, Any], config: HookConfig) -> Hooked:
        event = str(payload.get("hook_event_name", ""))
        root = root_of(config, os.environ.get("GEMINI_PROJECT_DIR"), payload.get("cwd"))
        hooked = Hooked(_KINDS.get(event, ""), event, str(payload.get("session_id", "")), root)
        hooked.tool = str(payload.get("tool_name") or "tool")
        tool_input = payload.get("tool_input")
        hooked.tool_input = tool_input if isinstance(tool_input, dict) else {}
        if hooked.kind == "result":
            hooked.result = result_of(*failure_of(payload.get("tool_response")))
        elif hooked.kind == "turn":
            hooked.text = text_of(payload.get("prompt_response") or "")
        elif hooked.kind == "end":
            hooked.reason = str(payload.get("reason") or "completed")
        elif hooked.kind == "waiting":
            hooked.waiting = waiting_of(payload)
            if hooked.waiting is None:
                hooked.kind = ""
        return hooked

    def stop(self, hooked: Hooked, reason: str) -> Reply:
        output: dict[str, Any] = {"continue": False, "stopReason": reason}
        if hooked.event == "BeforeTool":
            output.update(decision="deny", reason=reason)
        return Reply(0, output, "")

    def context(self, hooked: Hooked, text: str) -> Reply:
        return Reply(
            0, {"hookSpecificOutput": {"hookEventName": hooked.event, "additionalContext": text}}
        )

    def fail_open(self, hooked: Hooked | None, problem: str) -> Reply:
        # Gemini reads stderr as the hook's answer when stdout is empty: the JSON goes to
        # stdout and nothing to stderr.
        reply = super().fail_open(hooked, problem)
        return Reply(0, reply.output, "")
