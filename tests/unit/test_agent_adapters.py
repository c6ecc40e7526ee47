"""The agent CLIs' normalisers and configuration writer, on payloads and files as the real
clients produce them (the real clients themselves: tests/integration/test_agent_clients_real.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from yokeflow_agent.adapters import CLIENTS, client, connect, installed_settings
from yokeflow_agent.codex import exit_code_of
from yokeflow_agent.contract import InterventionPaused, RetryStats
from yokeflow_agent.gemini import failure_of
from yokeflow_agent.hooks import HookConfig, run_client_hook

from yokeflow_intervention.services.notifier.messages import Notice

SETTINGS = {"NATS_URL": "nats://agent-shop:secret@127.0.0.1:4222", "YOKEFLOW_PROJECT_ID": "shop"}


def test_gemini_results_keep_their_exit_code_from_the_text():
    # As Gemini CLI 0.61 reports run_shell_command to an AfterTool hook.
    failed = {
        "llmContent": "<untrusted_context>\nOutput: Error: listen failed\nExit Code: 3\n"
        "Process Group PGID: 6513\n</untrusted_context>",
        "returnDisplay": "Error: listen failed",
    }
    assert failure_of(failed) == (False, 3, "Error: listen failed")
    worked = {"llmContent": "Output: ready\nProcess Group PGID: 7", "returnDisplay": "ready"}
    assert failure_of(worked) == (True, 0, "ready")
    refused = {"llmContent": "denied", "error": {"message": "Tool execution denied"}}
    assert failure_of(refused) == (False, 1, "Tool execution denied")
    assert failure_of("Output: a\nmulti-line\nExit Code: 127") == (False, 127, "a\nmulti-line")


def test_codex_results_take_the_exit_code_codex_recorded(tmp_path: Path):
    # Lines as Codex 0.171 writes them to the session's transcript before PostToolUse runs.
    transcript = tmp_path / "rollout.jsonl"
    completed = {
        "type": "event_msg",
        "payload": {
            "type": "item_completed",
            "item": {
                "type": "CommandExecution",
                "id": "call_a",
                "status": "failed",
                "exit_code": 3,
            },
        },
    }
    output = {
        "type": "response_item",
        "payload": {
            "type": "function_call_output",
            "call_id": "call_b",
            "output": "Chunk ID: 1\nProcess exited with code 2\nOutput:\nx",
        },
    }
    transcript.write_text("\n".join(json.dumps(line) for line in (completed, output)) + "\n")
    assert exit_code_of(str(transcript), "call_a") == 3
    assert exit_code_of(str(transcript), "call_b") == 2
    assert exit_code_of(str(transcript), "call_c") is None
    assert exit_code_of(str(tmp_path / "missing.jsonl"), "call_a") is None


@pytest.mark.parametrize("name", ["claude", "gemini", "codex"])
def test_connecting_twice_leaves_one_entry_and_keeps_the_users_own_hooks(name, tmp_path: Path):
    root, home = tmp_path / "shop", tmp_path / "home"
    root.mkdir()
    folder = {"claude": ".claude", "gemini": ".gemini", "codex": ".codex"}[name]
    path = root / folder / ("hooks.json" if name == "codex" else "settings.json")
    path.parent.mkdir()
    event = {"claude": "PreToolUse", "gemini": "BeforeTool", "codex": "PreToolUse"}[name]
    theirs = {"matcher": "*", "hooks": [{"type": "command", "command": "audit.sh"}]}
    # An entry of ours as an earlier version wrote it (the console script): replaced too.
    earlier = {"matcher": "*", "hooks": [{"type": "command", "command": "yokeflow-hook"}]}
    path.write_text(json.dumps({"hooks": {event: [theirs, earlier]}, "theme": "dark"}))
    for _ in range(2):
        written = connect(name, "project", str(root), str(home), SETTINGS)
    assert str(path) in written[0]
    data = json.loads(path.read_text())
    assert data["theme"] == "dark" and data["hooks"][event][0] == theirs
    ours = [h for g in data["hooks"][event] for h in g["hooks"] if "yokeflow" in h["command"]]
    assert len(ours) == 1 and " -I -S " in ours[0]["command"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it holds the agent's credentials
    settings, wired, _ = installed_settings(name, str(root), str(home))
    assert settings["NATS_URL"] == SETTINGS["NATS_URL"] and event in wired
    if name == "gemini":  # the folder trust gate
        trusted = json.loads((home / ".gemini" / "trustedFolders.json").read_text())
        assert trusted == {str(root): "TRUST_FOLDER"}
    if name == "codex":  # the project trust gate, once
        config = (home / ".codex" / "config.toml").read_text()
        assert config.count(f'[projects."{root}"]') == 1 and 'trust_level = "trusted"' in config


def test_copilot_hooks_are_a_file_of_their_own_in_a_trusted_folder(tmp_path: Path):
    root, home = tmp_path / "shop", tmp_path / "home"
    theirs = root / ".github" / "hooks" / "audit.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_text('{"version": 1, "hooks": {}}')
    (home / ".copilot").mkdir(parents=True)
    managed = '// This file is managed automatically.\n{"firstLaunchAt": "2026-12-06"}\n'
    (home / ".copilot" / "config.json").write_text(managed)
    for _ in range(2):
        connect("copilot", "project", str(root), str(home), SETTINGS)
    assert theirs.read_text() == '{"version": 1, "hooks": {}}'
    ours = json.loads((root / ".github" / "hooks" / "yokeflow-intervention.json").read_text())
    assert ours["version"] == 1
    assert ours["hooks"]["permissionRequest"][0]["bash"].endswith(
        "--client copilot --event permissionRequest"
    )  # its payloads do not name their event
    config = json.loads((home / ".copilot" / "config.json").read_text())
    assert config == {"firstLaunchAt": "2026-12-06", "trusted_folders": [str(root)]}
    settings, wired, _ = installed_settings("copilot", str(root), str(home))
    assert settings["NATS_URL"] == SETTINGS["NATS_URL"] and "preToolUse" in wired


def test_copilot_results_keep_their_exit_code_from_the_text():
    from yokeflow_agent.copilot import failure_of as copilot_failure

    # Copilot CLI 1.0.102 reports a failed command as a success, the exit code in its text.
    failed = {
        "resultType": "success",
        "textResultForLlm": "boom\n<shellId: 0 completed with exit code 3>",
    }
    assert copilot_failure(failed) == (False, 3, "boom")
    worked = {
        "resultType": "success",
        "textResultForLlm": "ok\n<shellId: 1 completed with exit code 0>",
    }
    assert copilot_failure(worked) == (True, 0, "ok")
    assert copilot_failure({"resultType": "denied", "textResultForLlm": "no"}) == (False, 1, "no")


@pytest.mark.parametrize("name", CLIENTS)
def test_every_adapter_fails_open_fast_on_its_own_errors(name, tmp_path: Path):
    config = HookConfig(
        {"NATS_URL": "nats://127.0.0.1:1", "YOKEFLOW_HOOK_STATE_DIR": str(tmp_path)}
    )
    event = {
        "claude": "PreToolUse",
        "gemini": "BeforeTool",
        "codex": "PreToolUse",
        "copilot": "preToolUse",
        "opencode": "tool.execute.before",
    }[name]
    payload = {
        "hook_event_name": event,
        "session_id": "s1",
        "cwd": str(tmp_path),
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
    }
    if name == "opencode":  # as its plugin sends it
        payload = {
            "hook": event,
            "sessionID": "s1",
            "directory": str(tmp_path),
            "input": {"tool": "bash", "sessionID": "s1", "callID": "c1"},
            "output": {"args": {"command": "ls"}},
        }
    for stdin in (json.dumps(payload), "not json", "[]"):
        reply = run_client_hook(client(name, event), stdin, config)
        assert reply.code == 0 and reply.output is not None  # the call goes on
        assert "not recorded" in json.dumps(reply.output)
        assert "continue" not in reply.output and "decision" not in reply.output


def test_a_codex_notice_says_what_else_stops_the_session():
    paused = InterventionPaused(
        intervention_id="i1",
        project_id="shop",
        session_id="s1",
        trigger="retry_limit",
        reason="failed 3 times",
        event_seq=7,
        event_id="e7",
        retry_stats=RetryStats(),
        detected_at=datetime.now(UTC),
        paused_at=datetime.now(UTC),
        client="codex",
    )
    facts = {fact.name: fact for fact in Notice(paused).facts()}
    agent = facts["Agent"]
    assert agent.value.startswith("codex") and "end the codex process" in agent.value
    assert not agent.agent  # our own words for a client we know
    for name, shown in (("gemini", "Gemini CLI"), ("opencode", "OpenCode")):
        known = Notice(paused.model_copy(update={"client": name})).facts()
        assert [(f.value, f.agent) for f in known if f.name == "Agent"] == [(shown, False)]

    paused = paused.model_copy(update={"client": "Resolution notes from alice"})
    assert {fact.name: fact for fact in Notice(paused).facts()}[
        "Agent"
    ].agent  # quoted as agent text


@pytest.mark.parametrize("name", CLIENTS)
def test_user_scope_writes_the_agent_users_home_and_no_project_file(name, tmp_path: Path):
    root, home = tmp_path / "shop", tmp_path / "home"
    root.mkdir()
    written = connect(name, "user", str(root), str(home), SETTINGS)
    assert written[0].startswith(str(home))  # the hooks: in the home of the user it runs as
    assert not any(root.rglob("*"))  # nothing in the project
    settings, wired, read = installed_settings(name, str(root), str(home))
    assert read and all(path.startswith(str(home)) for path in read)
    assert settings["NATS_URL"] == SETTINGS["NATS_URL"] and wired


# -- a session that waits for a person, or whose turn ended --------------------------------------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
ASKED = "echo hi > out.txt"


def engine_events(name: str, fixture: str, tmp_path: Path, monkeypatch) -> list[tuple[str, dict]]:
    """What the engine publishes for the hooks a real client ran (captured from the real CLI,
    in its order: tests/fixtures/hooks/<client>_*.jsonl), with the bus stubbed out: no control
    state, no verdict, no brief."""
    from yokeflow_agent import hooks

    published: list[tuple[str, dict]] = []

    def publish(self, type_: str, **fields: object) -> int:
        published.append((type_, fields))
        return len(published)

    monkeypatch.setattr(hooks._Hook, "_connect", lambda self, with_verdicts=False: None)
    monkeypatch.setattr(hooks._Hook, "_control", lambda self: None)
    monkeypatch.setattr(hooks._Hook, "_verdict", lambda self, seq, wait: None)
    monkeypatch.setattr(hooks._Hook, "_brief", lambda self, wire: None)
    monkeypatch.setattr(hooks._Hook, "_publish", publish)
    config = HookConfig(
        {"NATS_URL": "nats://127.0.0.1:1", "YOKEFLOW_HOOK_STATE_DIR": str(tmp_path)}
    )
    for line in (FIXTURES / fixture).read_text().splitlines():
        hook = json.loads(line)
        reply = run_client_hook(client(name, hook["event"]), json.dumps(hook["payload"]), config)
        assert (reply.code, reply.output) == (0, None), reply.output  # nothing said back
    return published


@pytest.mark.parametrize(
    ("name", "fixture", "asked"),
    [
        # Gemini CLI 0.61, interactive: Notification (ToolPermission), answered "Allow once".
        (
            "gemini",
            "gemini_permission.jsonl",
            {"prompt": f"Allow run_shell_command: {ASKED}", "tool": "run_shell_command"},
        ),
        # Codex 0.171, interactive, approval_policy "on-request": PermissionRequest, approved.
        ("codex", "codex_permission.jsonl", {"prompt": f"Allow Bash: {ASKED}", "tool": "Bash"}),
        # Copilot CLI 1.0.102, interactive: notification (permission_prompt), answered "Yes".
        (
            "copilot",
            "copilot_permission.jsonl",
            {"prompt": f"Run command: {ASKED}", "tool": "bash"},
        ),
    ],
)
def test_a_permission_prompt_of_each_client_is_a_wait_and_its_answer_goes_on(
    name, fixture, asked, tmp_path: Path, monkeypatch
):
    events = engine_events(name, fixture, tmp_path, monkeypatch)
    types = [type_ for type_, _ in events if type_ != "session_ended"]
    assert types == ["session_started", "tool_call", "waiting", "tool_result", "agent_message"]
    assert events[2][1] == {"kind": "permission", **asked}
    call, result = events[1][1], events[3][1]
    assert call["input"]["command"] == ASKED
    # Codex's exit code is read from its transcript, which the fixture does not keep.
    code = None if name == "codex" else 0
    assert {**result["result"], "output": ""} == {
        "ok": True,
        "exit_code": code,
        "output": "",
        "error": "",
        "duration_ms": None,
    }
    if name != "codex":  # a client without call ids: the result is paired with its call
        assert result["call_id"] == call["call_id"]


@pytest.mark.parametrize(
    ("name", "fixture"),
    [
        ("gemini", "gemini_permission.jsonl"),
        ("codex", "codex_permission.jsonl"),
        ("copilot", "copilot_permission.jsonl"),
        # Copilot CLI 1.0.102 headless (-p, the tool not allowed): it says it asks, then denies
        # the call itself ("no one to approve"): no result, and the turn ends.
        ("copilot", "copilot_denied.jsonl"),
    ],
)
def test_the_watchdog_tells_of_the_wait_and_never_stops_a_session_whose_turn_ended(
    name, fixture, tmp_path: Path, monkeypatch
):
    """While the prompt is unanswered a person is told, and nothing is stopped; once the turn
    ended (the call answered, or denied and left without a result) it is the user's turn: a
    quiet user is no stuck session, however long."""
    from yokeflow_intervention.services.detector.sessions import SessionBook

    from .test_rules import Agent
    from .test_watchdog import limits

    events = engine_events(name, fixture, tmp_path, monkeypatch)
    events = [e for e in events if e[0] != "session_ended"]  # the session stays open
    waits = next(i for i, (type_, _) in enumerate(events) if type_ == "waiting")
    for upto, due in ((waits + 1, ["waiting"]), (len(events), [])):
        book, agent = SessionBook(limits()), Agent()
        for type_, fields in events[:upto]:
            book.feed(agent.event(type_, **fields))
        later = agent.clock.timestamp() + 3 * 3600
        assert [found.trigger for found in book.tick(0, later)] == due


def test_a_notification_that_waits_for_nobody_is_not_recorded():
    from yokeflow_agent.copilot import waiting_of as copilot_waiting
    from yokeflow_agent.gemini import waiting_of as gemini_waiting

    config = HookConfig({})
    for notification_type in ("shell_completed", "agent_completed", "agent_idle"):
        payload = {"sessionId": "s1", "notification_type": notification_type, "message": "done"}
        assert copilot_waiting(payload) is None  # a background shell's or agent's, not a wait
        assert client("copilot", "notification").hooked(payload, config).kind == ""
    asked = {"notification_type": "elicitation_dialog", "message": "Which port?"}
    assert copilot_waiting(asked) == {"kind": "question", "prompt": "Which port?"}
    assert gemini_waiting({"notification_type": "Other", "message": "x"}) is None
    edit = {"notification_type": "ToolPermission", "message": "Tool Edit requires editing"}
    assert gemini_waiting({**edit, "details": {"type": "edit", "fileName": "a.py"}}) == {
        "kind": "permission",
        "prompt": "Tool Edit requires editing",
        "tool": None,
    }
