"""OpenCode's normaliser on the payloads its plugin sends (captured from OpenCode 1.18.33), the
plugin that `agents connect` writes, and that plugin itself under Node, with a stand-in of the
adapter and of OpenCode's client (the real OpenCode: tests/integration/
test_agent_clients_real.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from yokeflow_agent.adapters import _PLUGIN_COMMAND, client, connect, installed_settings
from yokeflow_agent.hooks import HookConfig
from yokeflow_agent.opencode import failure_of

SETTINGS = {"NATS_URL": "nats://agent-shop:secret@127.0.0.1:4222", "YOKEFLOW_PROJECT_ID": "shop"}
SESSION = "ses_db234c6d1ffe2YhAE538sRVbOU"
CALL = {"tool": "bash", "sessionID": SESSION, "callID": "call_d0b8c9f33ed74e9ab9feee03"}
COMMAND = "cd web && echo 'Error: listen failed' >&2 && exit 3"
ARGS = {"command": COMMAND, "description": "Run the command"}


def hooked(payload: dict[str, Any]) -> Any:
    return client("opencode").hooked(
        {"sessionID": SESSION, "directory": "/srv/shop", **payload}, HookConfig({})
    )


def test_opencode_results_keep_the_exit_code_its_shell_tool_reports():
    call = hooked({"hook": "tool.execute.before", "input": CALL, "output": {"args": ARGS}})
    assert (call.kind, call.tool, call.call_id, call.tool_input) == (
        "call",
        "bash",
        CALL["callID"],
        ARGS,
    )
    assert call.root == "/srv/shop" and call.session == SESSION
    after = {"output": "Error: listen failed\n", "metadata": {"exit": 3}}
    result = hooked(
        {"hook": "tool.execute.after", "input": {**CALL, "args": ARGS}, "output": after}
    )
    assert result.kind == "result" and result.call_id == CALL["callID"]
    assert result.result == {
        "ok": False,
        "exit_code": 3,
        "output": "",
        "error": "Error: listen failed\n",
        "duration_ms": None,
    }
    assert failure_of({"output": "ready", "metadata": {"exit": 0}}) == (True, 0, "ready")
    assert failure_of({"output": "file text", "metadata": {}}) == (True, None, "file text")
    # A tool that threw (OpenCode runs no `after` then): the plugin reads its error part.
    read = {"tool": "read", "sessionID": SESSION, "callID": "c2", "args": {"filePath": "/x"}}
    thrown = hooked({"hook": "tool.error", "input": read, "error": "File not found: /x"})
    assert thrown.kind == "result" and thrown.tool_input == {"filePath": "/x"}
    assert thrown.result == {
        "ok": False,
        "exit_code": 1,
        "output": "",
        "error": "File not found: /x",
        "duration_ms": None,
    }


def test_opencode_sessions_turns_and_waits_for_a_person():
    assert hooked({"hook": "session.start"}).kind == "start"
    turn = hooked({"hook": "session.idle", "text": "All done here."})
    assert (turn.kind, turn.text) == ("turn", "All done here.")
    assert hooked({"hook": "session.exit"}).reason == "exit"  # OpenCode exited (dispose)
    assert hooked({"hook": "session.deleted"}).reason == "deleted"
    asked = {  # `permission.asked` as OpenCode 1.18.33 sent it for `"bash": "ask"`
        "id": "per_24dcb926a001sMB6bVx19RXiXl",
        "sessionID": SESSION,
        "permission": "bash",
        "patterns": ["echo hi"],
        "metadata": {"command": "echo hi"},
        "always": ["echo *"],
        "tool": {"messageID": "msg_1", "callID": "call_1"},
    }
    waiting = hooked({"hook": "permission.asked", "properties": asked})
    assert waiting.kind == "waiting"
    assert waiting.waiting == {
        "kind": "permission",
        "prompt": "Allow bash: echo hi",
        "tool": "bash",
    }
    question = {"questions": [{"question": "Which port?", "header": "Port", "options": []}]}
    assert hooked({"hook": "question.asked", "properties": question}).waiting == {
        "kind": "question",
        "prompt": "Which port?",
    }
    assert hooked({"hook": "message.updated"}).kind == ""  # not recorded


def test_a_verdict_goes_back_in_the_plugins_terms():
    opencode = client("opencode")
    call = hooked({"hook": "tool.execute.before", "input": CALL, "output": {"args": ARGS}})
    assert opencode.stop(call, "paused").output == {"block": "paused", "halt": True}
    assert opencode.context(call, "careful").output == {"context": "careful"}
    assert opencode.fail_open(call, "NATS down").output == {
        "notice": "YokeFlow Intervention hook: not recorded: NATS down"
    }


def test_connecting_opencode_writes_one_plugin_beside_the_users_own(tmp_path: Path):
    root, home = tmp_path / "shop", tmp_path / "home"
    theirs = root / ".opencode" / "plugins" / "audit.js"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("export const Audit = async () => ({})\n")
    for _ in range(2):
        written = connect("opencode", "project", str(root), str(home), SETTINGS)
    plugins = sorted(p.name for p in theirs.parent.iterdir())
    assert plugins == ["audit.js", "yokeflow-intervention.js"]
    assert theirs.read_text() == "export const Audit = async () => ({})\n"
    plugin = (theirs.parent / "yokeflow-intervention.js").read_text()
    command = next(line for line in plugin.splitlines() if line.startswith(_PLUGIN_COMMAND))
    assert "--client opencode --env " in command and "secret" not in plugin
    settings_file = home / ".config" / "yokeflow-intervention" / "agent-shop.json"
    assert oct(settings_file.stat().st_mode & 0o777) == "0o600"  # the agent's credentials
    assert str(settings_file) in written[1]
    settings, wired, read = installed_settings("opencode", str(root), str(home))
    assert settings == SETTINGS and read == [str(theirs.parent / "yokeflow-intervention.js")]
    assert "tool.execute.before" in wired and "session.start" in wired


# -- the plugin, under Node ---------------------------------------------------------------------

DRIVER = """
import { YokeFlowIntervention } from "./plugin.mjs";
const seen = [];
const client = {
  session: { abort: async (request) => { seen.push(["abort", request.path.id]); return true; } },
  app: { log: async (request) => { seen.push(["log", request.body.message]); } },
};
const hooks = await YokeFlowIntervention({ client, directory: "/srv/shop" });
const done = { seen };
await hooks.event({ event: { type: "session.created", properties: { sessionID: "s1" } } });
try {
  await hooks["tool.execute.before"]({ tool: "bash", sessionID: "s1", callID: "c1" }, { args: {} });
  done.before = "ran";
} catch (error) {
  done.before = "refused: " + error.message;
}
const output = { output: "out", metadata: { exit: 0 } };
const call = { tool: "bash", sessionID: "s1", callID: "c2", args: {} };
await hooks["tool.execute.after"](call, output);
done.after = output.output;
const system = { system: [] };
await hooks["experimental.chat.system.transform"]({ sessionID: "s1" }, system);
done.system = system.system;
await hooks.dispose();
console.log(JSON.stringify(done));
"""

ADAPTER = """
import json, sys
payload = json.load(sys.stdin)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps(payload) + "\\n")
print(json.dumps(json.load(open(sys.argv[2])).get(payload["hook"], {})))
"""


def plugin_run(tmp_path: Path, command: str) -> dict[str, Any]:
    """The plugin with `command` as its adapter, driven as OpenCode drives it."""
    source = (
        Path(__file__).parents[2] / "agent" / "yokeflow_agent" / "opencode_plugin.js"
    ).read_text()
    lines = [
        f"{_PLUGIN_COMMAND}{json.dumps(command)};" if line.startswith(_PLUGIN_COMMAND) else line
        for line in source.splitlines()
    ]
    (tmp_path / "plugin.mjs").write_text("\n".join(lines))
    (tmp_path / "driver.mjs").write_text(DRIVER)
    done = subprocess.run(
        ["node", "driver.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def adapter(tmp_path: Path, answers: dict[str, Any]) -> str:
    (tmp_path / "adapter.py").write_text(ADAPTER)
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    files = [tmp_path / name for name in ("adapter.py", "sent", "answers.json")]
    return " ".join([sys.executable, *map(str, files)])


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is absent")


@needs_node
def test_the_plugin_applies_the_adapters_answers(tmp_path: Path):
    answers = {
        "session.start": {"context": "Resume: use PORT=4000."},
        "tool.execute.before": {"block": "paused by intervention i1", "halt": True},
        "tool.execute.after": {"context": "failed 3 times with the same error"},
        "session.exit": {"notice": "YokeFlow Intervention hook: not recorded: NATS down"},
    }
    done = plugin_run(tmp_path, adapter(tmp_path, answers))
    assert done["before"] == "refused: paused by intervention i1"
    assert ["abort", "s1"] in done["seen"]  # the session halted
    assert done["after"] == "out\n\nfailed 3 times with the same error"  # the model reads it
    assert done["system"] == ["Resume: use PORT=4000."]  # the brief, in the system prompt
    assert ["log", "YokeFlow Intervention hook: not recorded: NATS down"] in done["seen"]
    sent = [json.loads(line) for line in (tmp_path / "sent").read_text().splitlines()]
    assert [s["hook"] for s in sent] == [
        "session.start",
        "tool.execute.before",
        "tool.execute.after",
        "session.exit",
    ]  # started once, ended once
    assert sent[2]["output"] == {"output": "out", "metadata": {"exit": 0}}
    assert all(s["directory"] == "/srv/shop" and s["sessionID"] == "s1" for s in sent)


@needs_node
@pytest.mark.parametrize(
    "command",
    ["/nonexistent/yokeflow-hook --client opencode", "echo not json", "exit 3", "echo '[1]'"],
)
def test_the_plugin_fails_open_when_the_adapter_fails(tmp_path: Path, command: str):
    done = plugin_run(tmp_path, command)
    assert done["before"] == "ran" and done["after"] == "out" and done["system"] == []
    assert done["seen"] == []  # nothing halted, nothing said
