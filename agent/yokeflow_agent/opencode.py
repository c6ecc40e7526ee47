"""The OpenCode adapter (`yokeflow-hook --client opencode`), behind its plugin.

OpenCode's hooks are a JS plugin, loaded from `.opencode/plugins/` of the project or
`~/.config/opencode/plugins/`: `opencode_plugin.js`, which `agents connect` writes there, runs
this adapter for each hook it sees, with `{"hook": NAME, ...}` as JSON on stdin, and applies the
answer. What the hooks say, in the contract's terms:

- `tool.execute.before` is a call (`input.tool`, `input.callID`, `output.args`), and
  `tool.execute.after` its result (`output.output`, stdout and stderr merged); a shell command's
  exit code is a field of its own, `output.metadata.exit`, the only one of the clients here that
  gives one;
- `tool.error` is a tool that threw (OpenCode then runs no `after`): the plugin reads it from the
  tool part that ends in the `error` state;
- `session.start` is a session's first hook (at `session.created`, or the first call of a
  session OpenCode opened before the plugin saw it), `session.idle` the end of a turn, with the
  text of the turn's last assistant part, and `session.deleted` / `session.exit` (the plugin's
  `dispose` when OpenCode exits) the end of a session;
- `permission.asked` (a permission prompt) and `question.asked` (the question tool) are a
  session waiting for a person.

The answer is the plugin's to apply: `block` (a refused call: the plugin throws in `before`),
`halt` (it aborts the session through `client.session.abort`: a halted `opencode run` exits 1,
`Error: Aborted`), `context` (the resume brief goes into the session's system prompt, a warning
after the tool's output the model reads) and `notice` (why nothing was recorded: OpenCode's log).
The project root is the folder OpenCode runs in (`directory`), wherever its commands `cd`.

The plugin has no environment of its own to give: settings come from the hook's `--env FILE`
(mode 0600), which `agents connect` writes, as for Codex.
"""

from __future__ import annotations

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

__all__ = ["OpenCode", "failure_of", "waiting_of"]

_KINDS = {
    "tool.execute.before": "call",
    "tool.execute.after": "result",
    "tool.error": "result",
    "session.start": "start",
    "session.idle": "turn",
    "session.deleted": "end",
    "session.exit": "end",
    "permission.asked": "waiting",
    "question.asked": "waiting",
}


def failure_of(output: Any) -> tuple[bool, int | None, str]:
    """(ok, exit code, output) of a tool's `tool.execute.after` output: the shell's exit code is
    `metadata.exit` (None for a tool that has none, or a command that was killed)."""
    output = output if isinstance(output, dict) else {"output": output}
    text = text_of(output.get("output") or "")
    metadata = output.get("metadata")
    code = metadata.get("exit") if isinstance(metadata, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return True, None, text
    return code == 0, code, text


def waiting_of(hook: str, properties: Any) -> dict[str, Any]:
    """The fields of a `waiting` event for OpenCode's `permission.asked` or `question.asked`."""
    properties = properties if isinstance(properties, dict) else {}
    if hook == "permission.asked":
        tool = str(properties.get("permission") or "tool")
        patterns = properties.get("patterns")
        what = " ".join(str(p) for p in patterns) if isinstance(patterns, list) else ""
        return permission_asked(tool, what)
    questions = properties.get("questions")
    first = questions[0] if isinstance(questions, list) and questions else {}
    asked = first.get("question") if isinstance(first, dict) else None
    return {"kind": "question", "prompt": str(asked or "")[:2000]}


class OpenCode(Client):
    name = "opencode"

    def hooked(self, payload: dict[str, Any], config: HookConfig) -> Hooked:
        event = str(payload.get("hook") or "")
        given = payload.get("input")
        given = given if isinstance(given, dict) else {}
        output = payload.get("output")
        output = output if isinstance(output, dict) else {}
        session = payload.get("sessionID") or given.get("sessionID") or ""
        root = root_of(config, payload.get("directory"))
        hooked = Hooked(_KINDS.get(event, ""), event, str(session), root)
        hooked.tool = str(given.get("tool") or "tool")
        call_id = given.get("callID")
        hooked.call_id = str(call_id)[:200] if call_id else None
        args = output.get("args") if event == "tool.execute.before" else given.get("args")
        hooked.tool_input = args if isinstance(args, dict) else {}
        if event == "tool.execute.after":
            hooked.result = result_of(*failure_of(output))
        elif event == "tool.error":
            hooked.result = result_of(False, 1, text_of(payload.get("error") or "tool failed"))
        elif hooked.kind == "turn":
            hooked.text = text_of(payload.get("text") or "")
        elif hooked.kind == "end":
            hooked.reason = "exit" if event == "session.exit" else "deleted"
        elif hooked.kind == "waiting":
            hooked.waiting = waiting_of(event, payload.get("properties"))
        return hooked

    def stop(self, hooked: Hooked, reason: str) -> Reply:
        if hooked.event == "tool.execute.before":
            return Reply(0, {"block": reason, "halt": True})
        return Reply(0, {"halt": True, "notice": reason})

    def context(self, hooked: Hooked, text: str) -> Reply:
        return Reply(0, {"context": text})

    def fail_open(self, hooked: Hooked | None, problem: str) -> Reply:
        return Reply(0, {"notice": f"YokeFlow Intervention hook: not recorded: {problem}"[:1000]})
