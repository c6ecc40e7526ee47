"""What the hook process costs before its first byte is what it imports; these hold the hook to
the lean path (`yokeflow_hook.py` under `-I -S`, `jsonlite`, `_socket`) and `jsonlite` to
`json`'s exact meaning. The figures themselves are bench/hook.py's."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from yokeflow_agent import jsonlite
from yokeflow_agent.adapters import CLIENTS, _hook_command

AGENT = Path(__file__).resolve().parents[2] / "agent"
LAUNCHER = AGENT / "yokeflow_agent" / "yokeflow_hook.py"

VALUES: list[Any] = [
    {"tool_name": "Bash", "tool_input": {"command": "npm test -- --shard 3"}, "n": None},
    {"é": "naïve ✓ 𝄞", "nested": [1, 2.5, -3e-7, 10**30, True, False, None, [], {}]},
    ["\u202e", "\x00\x1f", 'quote " and back\\slash', "line\nbreak"],
    "a bare string ✓",
    12345,
    -0.0,
    1.7976931348623157e308,
    {"b": 1, "a": {"d": 2, "c": 3}},
]


@pytest.mark.parametrize("value", VALUES)
def test_jsonlite_writes_and_reads_exactly_what_json_does(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value)
    assert jsonlite.dumps(value, sort_keys=True) == json.dumps(value, sort_keys=True)
    text = json.dumps(value, ensure_ascii=False, indent=1)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(f" \n\t{text}\r\n".encode()) == json.loads(text)
    assert jsonlite.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_jsonlite_uses_default_and_keeps_json_constants() -> None:
    when = datetime(2026, 12, 6, tzinfo=UTC)
    assert jsonlite.dumps({"at": when}, default=str) == json.dumps({"at": when}, default=str)
    with pytest.raises(TypeError, match="datetime is not JSON serializable"):
        jsonlite.dumps({"at": when})
    assert jsonlite.dumps([math.nan, math.inf, -math.inf]) == "[NaN, Infinity, -Infinity]"
    assert math.isnan(jsonlite.loads("[NaN]")[0])
    assert jsonlite.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonlite.dumps(looped)


@pytest.mark.parametrize(
    "text", ["", "   ", "{", "[1,]", "1 2", '{"a": 1}}', "nul", '"\\x"', '{"a" 1}', "\ufeff{}"]
)
def test_jsonlite_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonlite.loads(text)


def test_the_hook_command_runs_the_launcher_without_site() -> None:
    command = _hook_command()
    assert command.split()[:3] == [sys.executable, "-I", "-S"]
    assert command.endswith("yokeflow_hook.py")
    assert Path(command.split()[-1]).read_text() == LAUNCHER.read_text()


# What the hook must not import: each costs a hook process milliseconds (`re` and `enum` with
# `functools` and `collections`, `socket` with `selectors`, `typing`, `site`'s finders).
HEAVY = ["json", "re", "enum", "socket", "selectors", "typing", "encodings.idna", "site"]

PAYLOADS = {
    "claude": {
        "session_id": "s",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "npm test"},
        "tool_use_id": "t1",
    },
    "gemini": {
        "session_id": "s",
        "hook_event_name": "BeforeTool",
        "tool_name": "run_shell_command",
        "tool_input": {"command": "npm test"},
    },
    "codex": {
        "session_id": "s",
        "turn_id": "t",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "npm test"},
        "tool_use_id": "call_1",
    },
    "copilot": {"sessionId": "s", "timestamp": 0, "toolName": "bash", "toolArgs": {}},
    "opencode": {  # as its plugin sends it
        "hook": "tool.execute.before",
        "sessionID": "s",
        "input": {"tool": "bash", "sessionID": "s", "callID": "call_1"},
        "output": {"args": {"command": "npm test"}},
    },
}

PROBE = """
import io, sys
sys.path.insert(0, sys.argv[1])
sys.stdin = io.StringIO(sys.argv[2])
from yokeflow_agent.adapters import main
sys.argv = ["yokeflow-hook", "--client", sys.argv[3], "--event", "preToolUse"]
code = main()
print("LOADED", " ".join(sorted(set(sys.modules) & set({heavy}))))
"""


@pytest.mark.parametrize("name", CLIENTS)
def test_a_hook_imports_only_what_it_uses(name: str, tmp_path: Path) -> None:
    """Run as `agents connect` runs it (`-I -S`), NATS refused: a whole hook, answered."""
    payload = json.dumps({**PAYLOADS[name], "cwd": str(tmp_path)})
    probe = PROBE.replace("{heavy}", repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(AGENT), payload, name],
        capture_output=True,
        text=True,
        timeout=30,
        env={"NATS_URL": "nats://127.0.0.1:9", "YOKEFLOW_HOOK_STATE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.strip().splitlines()[-1]
    assert loaded == "LOADED", f"{name}'s hook imported {loaded.split()[1:]}"
