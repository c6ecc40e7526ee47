"""Agent transcripts as contract events: Claude Code session files, OpenHands trajectories, chat
exports, Gemini CLI stream-json and ATIF trajectories, on small samples of their real formats
(no servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from yokeflow_agent.contract import (
    AgentMessage,
    ErrorEvent,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolResult,
)

from yokeflow_intervention.services.detector.rules import DetectionConfig
from yokeflow_intervention.services.detector.sessions import ReplayProblem, replay
from yokeflow_intervention.services.detector.transcripts import (
    detect_format,
    from_atif,
    from_claude_code,
    from_gemini_cli,
    from_openai_chat,
    from_openhands,
    read_transcript,
)
from yokeflow_intervention.shared.settings import Settings

SESSION = "08ad9c51-b394-4720-9f4c-a16ea130834e"
CWD = "/Users/dev/Workspace/Projects/pyrycode"


def _cc(kind: str, ts: str, content: Any, **extra: Any) -> dict[str, Any]:
    """A Claude Code record as the CLI writes it (the fields the converter reads and some it
    must ignore)."""
    return {
        "parentUuid": None,
        "isSidechain": False,
        "type": kind,
        "message": {"role": kind, "content": content},
        "uuid": f"u-{ts}",
        "timestamp": f"2026-05-07T16:{ts}Z",
        "userType": "external",
        "cwd": CWD,
        "sessionId": SESSION,
        "version": "2.1.128",
        "gitBranch": "feature/161",
        **extra,
    }


# Shapes taken from published session files (BookMinder's and pyrycode's test data): the
# bookkeeping records come first, a prompt, thinking, replies, tool calls and their results.
CLAUDE_CODE = [
    {
        "type": "queue-operation",
        "operation": "enqueue",
        "timestamp": "2026-05-07T16:24:07.266Z",
        "sessionId": SESSION,
        "content": "# Ticket #161",
    },
    _cc("user", "24:07.278", "# Ticket #161: stdio-attach test harness"),
    {"type": "ai-title", "aiTitle": "Build stdio attach e2e test harness", "sessionId": SESSION},
    _cc("assistant", "24:10.193", [{"type": "thinking", "thinking": "", "signature": "Eo0C"}]),
    _cc(
        "assistant",
        "24:10.445",
        [
            {
                "type": "tool_use",
                "id": "toolu_01Tx",
                "name": "Bash",
                "input": {"command": "gh pr diff 168", "description": "Fetch PR diff"},
            }
        ],
    ),
    _cc(
        "user",
        "24:11.316",
        [
            {
                "tool_use_id": "toolu_01Tx",
                "type": "tool_result",
                "content": "diff --git a/docs/specs/161.md",
                "is_error": False,
            }
        ],
        toolUseResult={"stdout": "diff --git", "stderr": "", "interrupted": False},
    ),
    _cc("assistant", "24:12.000", [{"type": "text", "text": "Let me run the e2e tests."}]),
    _cc(
        "assistant",
        "26:09.100",
        [
            {
                "type": "tool_use",
                "id": "toolu_01Ln",
                "name": "Bash",
                "input": {"command": "go test -tags e2e ./internal/e2e/..."},
            }
        ],
    ),
    _cc(
        "user",
        "26:11.614",
        [
            {
                "tool_use_id": "toolu_01Ln",
                "type": "tool_result",
                "content": [{"type": "text", "text": "Exit code 1\n--- FAIL: TestE2E (0.00s)"}],
                "is_error": True,
            }
        ],
    ),
    _cc("user", "26:13.824", [{"type": "text", "text": "[Request interrupted by user]"}]),
]

OPENHANDS = [
    {
        "id": 0,
        "timestamp": "2024-06-01T10:00:00.000000",
        "source": "user",
        "message": "Fix it",
        "action": "message",
        "args": {"content": "Fix the failing test", "image_urls": None},
    },
    {
        "id": 1,
        "timestamp": "2024-06-01T10:00:04.000000",
        "source": "agent",
        "message": "Running command: ls",
        "action": "run",
        "args": {
            "command": "ls",
            "is_input": False,
            "thought": "Look around",
            "blocking": False,
            "hidden": False,
            "confirmation_state": "confirmed",
        },
    },
    {
        "id": 2,
        "timestamp": "2024-06-01T10:00:05.000000",
        "source": "agent",
        "cause": 1,
        "message": "Command `ls` executed with exit code 0.",
        "observation": "run",
        "content": "a.py\nb.py",
        "extras": {"command": "ls", "metadata": {"exit_code": 0, "pid": -1}},
    },
    {
        "id": 3,
        "timestamp": "2024-06-01T10:00:09.000000",
        "source": "agent",
        "action": "run",
        "args": {"command": "python a.py", "thought": ""},
    },
    {
        "id": 4,
        "timestamp": "2024-06-01T10:00:11.500000",
        "source": "agent",
        "cause": 3,
        "observation": "run",
        "content": "Traceback (most recent call last):",
        "extras": {"command": "python a.py", "metadata": {"exit_code": 1}},
    },
    {
        "id": 5,
        "timestamp": "2024-06-01T10:00:15.000000",
        "source": "agent",
        "action": "read",
        "args": {"path": "/workspace/missing.py", "thought": ""},
    },
    {
        "id": 6,
        "timestamp": "2024-06-01T10:00:15.100000",
        "source": "agent",
        "cause": 5,
        "observation": "error",
        "content": "File not found: /workspace/missing.py",
        "extras": {},
    },
    {
        "id": 7,
        "timestamp": "2024-06-01T10:00:20.000000",
        "source": "agent",
        "action": "message",
        "args": {"content": "I fixed the test.", "wait_for_response": True},
    },
    {
        "id": 8,
        "timestamp": "2024-06-01T10:00:20.100000",
        "source": "agent",
        "observation": "agent_state_changed",
        "content": "",
        "extras": {"agent_state": "finished"},
    },
]


def test_claude_code_maps_calls_results_and_replies():
    events = list(from_claude_code(CLAUDE_CODE))
    assert [type(e) for e in events] == [
        SessionStarted,
        ToolCall,
        ToolResult,
        AgentMessage,
        ToolCall,
        ToolResult,
    ]
    start, call, result, reply, failing, failure = events
    assert isinstance(start, SessionStarted) and start.workspace == CWD
    assert (start.project_id, start.session_id) == ("pyrycode", SESSION)
    assert [e.seq for e in events] == list(range(1, 7))
    assert isinstance(call, ToolCall) and call.tool == "Bash" and call.call_id == "toolu_01Tx"
    assert call.input == {"command": "gh pr diff 168", "description": "Fetch PR diff"}
    assert isinstance(result, ToolResult) and result.result.ok and result.tool == "Bash"
    assert result.result.output.startswith("diff --git") and result.result.duration_ms == 871
    assert isinstance(reply, AgentMessage) and reply.text == "Let me run the e2e tests."
    assert isinstance(failure, ToolResult) and not failure.result.ok
    assert failure.result.exit_code == 1 and "--- FAIL" in failure.result.error
    assert failure.call_id == failing.call_id == "toolu_01Ln"
    assert failure.ts.isoformat() == "2026-05-07T16:26:11.614000+00:00"
    # The same transcript converts to the same event ids (a republished replay is deduplicated).
    assert [e.event_id for e in from_claude_code(CLAUDE_CODE)] == [e.event_id for e in events]


def test_claude_code_parallel_calls_are_answered_by_their_own_results():
    # Two tool_use records before either result, the results in another order (as in
    # BookMinder's pilot-picker subagent): each result carries its own call's tool and time.
    def use(ts: str, tid: str, name: str) -> dict[str, Any]:
        return _cc("assistant", ts, [{"type": "tool_use", "id": tid, "name": name, "input": {}}])

    def result(ts: str, tid: str) -> dict[str, Any]:
        block = {"tool_use_id": tid, "type": "tool_result", "content": "ok", "is_error": False}
        return _cc("user", ts, [block])

    records = [
        _cc("user", "18:04.000", "Read-only scout"),
        use("18:35.000", "toolu_a", "Bash"),
        use("18:36.000", "toolu_b", "Read"),
        result("18:36.500", "toolu_b"),
        result("18:37.500", "toolu_a"),
    ]
    results = [e for e in from_claude_code(records) if isinstance(e, ToolResult)]
    assert [(r.call_id, r.tool, r.result.duration_ms) for r in results] == [
        ("toolu_b", "Read", 500),
        ("toolu_a", "Bash", 2500),
    ]


def test_claude_code_subagent_files_and_given_projects():
    records = [dict(r, agentId="a05d358b0666d872d", isSidechain=True) for r in CLAUDE_CODE]
    start = next(iter(from_claude_code(records, project_id="book minder")))
    assert (start.project_id, start.session_id) == ("book-minder", "a05d358b0666d872d")
    assert list(from_claude_code([{"type": "summary", "summary": "nothing"}])) == []


def test_openhands_maps_actions_and_their_observations():
    events = list(from_openhands(OPENHANDS, session_id="run-7"))
    kinds = [e.type for e in events]
    assert kinds == [
        "session_started",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "agent_message",
    ]
    _, ls, listed, _run, crashed, read, missing, reply = events
    assert isinstance(ls, ToolCall) and ls.tool == "run" and ls.input == {"command": "ls"}
    assert isinstance(listed, ToolResult) and listed.result.ok and listed.result.exit_code == 0
    assert listed.call_id == "1" and listed.result.output == "a.py\nb.py"
    assert isinstance(crashed, ToolResult) and not crashed.result.ok
    assert crashed.result.exit_code == 1 and crashed.result.duration_ms == 2500
    assert isinstance(read, ToolCall) and read.input == {"path": "/workspace/missing.py"}
    assert isinstance(missing, ToolResult) and not missing.result.ok
    assert missing.result.error == "File not found: /workspace/missing.py"
    assert isinstance(reply, AgentMessage) and reply.text == "I fixed the test."
    assert events[0].session_id == "run-7"


def test_observations_without_a_cause_answer_the_oldest_open_action():
    bare = [
        {"action": "run", "args": {"command": "ls"}},
        {"observation": "run", "content": "file1.txt", "extras": {}},
        {"observation": "null", "content": ""},
    ]
    events = list(from_openhands(bare))
    assert [e.type for e in events] == ["session_started", "tool_call", "tool_result"]
    assert events[2].call_id == events[1].call_id


def test_formats_are_recognised_from_the_first_line():
    assert detect_format(json.dumps(CLAUDE_CODE[0])) == "claude-code"
    assert detect_format(json.dumps(CLAUDE_CODE[1])) == "claude-code"
    assert detect_format(json.dumps(OPENHANDS)) == "openhands"
    assert detect_format('{"history": []}') == "openhands"
    assert detect_format('{"v": 1, "type": "tool_call", "seq": 1}') == "events"
    assert detect_format("not json") == "events"


def test_read_transcript_replays_through_the_detector(tmp_path: Path):
    looping = [
        _cc(
            "assistant",
            f"3{i}:00.000",
            [
                {
                    "type": "tool_use",
                    "id": f"t{i}",
                    "name": "Bash",
                    "input": {"command": "npm run build"},
                }
            ],
        )
        if i % 2 == 0
        else _cc(
            "user",
            f"3{i - 1}:02.000",
            [
                {
                    "tool_use_id": f"t{i - 1}",
                    "type": "tool_result",
                    "content": "Exit code 1\nError: Cannot find module 'vite'",
                    "is_error": True,
                }
            ],
        )
        for i in range(10)
    ]
    path = tmp_path / f"{SESSION}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in looping))
    config = DetectionConfig.from_settings(Settings())
    stops = list(replay(read_transcript(path), config))
    assert stops and stops[0].session_id == SESSION and stops[0].project_id == "pyrycode"
    assert stops[0].blocker_type == "module_not_found"

    trajectory = tmp_path / "trajectory.json"
    trajectory.write_text(json.dumps(OPENHANDS))
    assert [e.type for e in read_transcript(trajectory)][:2] == ["session_started", "tool_call"]
    as_events = list(read_transcript(path, "events"))
    assert all(isinstance(item, ReplayProblem) for item in as_events)


def test_api_errors_and_finishing_are_not_replies():
    """Claude Code writes a failed API call as an assistant reply flagged `isApiErrorMessage`;
    OpenHands ends a run with a `finish` action."""
    failed = _cc(
        "assistant",
        "27:00.000",
        [{"type": "text", "text": 'API Error: 529 {"type":"overloaded_error"}'}],
        isApiErrorMessage=True,
    )
    events = list(from_claude_code([*CLAUDE_CODE[:2], failed]))
    assert [e.type for e in events] == ["session_started", "error"]
    assert "overloaded_error" in events[1].message

    finished = [*OPENHANDS, {"id": 9, "source": "agent", "action": "finish", "args": {}}]
    last = list(from_openhands(finished))[-1]
    assert last.type == "session_ended" and last.reason == "finish"


def test_a_subagents_records_in_the_main_file_are_not_the_main_sessions():
    subagent_call = _cc(
        "assistant",
        "24:12.500",
        [{"type": "tool_use", "id": "toolu_sub", "name": "Grep", "input": {"pattern": "x"}}],
        isSidechain=True,
    )
    events = list(from_claude_code([*CLAUDE_CODE[:6], subagent_call, *CLAUDE_CODE[6:]]))
    assert "toolu_sub" not in [getattr(e, "call_id", None) for e in events]
    assert len(events) == len(list(from_claude_code(CLAUDE_CODE)))


def test_malformed_transcripts_are_reported_not_raised(tmp_path: Path):
    odd = tmp_path / "odd.jsonl"
    odd.write_text(
        '{"sessionId": "s", "type": "assistant", "timestamp": "yesterday", "message": '
        '{"content": [{"type": "tool_use", "id": {"x": 1}, "name": 5, "input": "ls"}, 7]}}\n'
        "not json at all\n"
    )
    events = list(read_transcript(odd))
    assert [e.type for e in events] == ["session_started", "tool_call"]
    assert events[1].input == {} and events[1].tool == "5"
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    (problem,) = read_transcript(broken, "openhands")
    assert (
        isinstance(problem, ReplayProblem) and "cannot read the file as openhands" in problem.reason
    )


# A Claude Code run and a Codex run exported as OpenAI chat messages (shapes as published, e.g.
# github.com/richh-s/TASK-20260318-393C91 and Eyob-smax/Anju-Medical-Appointment-System).
CHAT = {
    "format": "openai-chat",
    "task_id": "TASK-20260318-393C91",
    "messages": [
        {"role": "user", "content": "Build the platform."},
        {"role": "assistant", "content": "<thinking>\nplan\n</thinking>"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": '{"command": "ls /repo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "Exit code 2\nls: /repo: No such file"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t2",
                    "type": "function",
                    "function": {"name": "Edit", "arguments": '{"file_path": "a.sql"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "t2",
            "content": "<tool_use_error>File has not been read yet.</tool_use_error>",
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_call", "tool_call_id": "c3", "name": "exec_command"}],
            "tool_calls": [
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "exec_command", "arguments": '{"cmd": "go test ./..."}'},
                }
            ],
            "_metadata": {"timestamp": "2026-03-24T17:28:26.421Z"},
        },
        {
            "role": "tool",
            "tool_call_id": "c3",
            "content": [{"type": "tool_output", "text": "Process exited with code 0\nOutput:\nok"}],
            "metadata": {"exit_code": 0, "duration_seconds": 2.5},
            "_metadata": {"timestamp": "2026-03-24T17:28:29.000Z"},
        },
    ],
}


def test_chat_exports_map_calls_results_and_failures():
    events = list(from_openai_chat(CHAT, "p"))
    assert isinstance(events[0], SessionStarted) and events[0].session_id == "TASK-20260318-393C91"
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "SessionStarted",
        "AgentMessage",
        "ToolCall",
        "ToolResult",
        "ToolCall",
        "ToolResult",
        "ToolCall",
        "ToolResult",
    ]
    listing, refused, tested = (e for e in events if isinstance(e, ToolResult))
    assert (listing.result.ok, listing.result.exit_code) == (False, 2)
    assert not refused.result.ok and "not been read" in refused.result.error
    assert tested.result.ok and tested.result.duration_ms == 2500 and "ok" in tested.result.output
    call = next(e for e in events if isinstance(e, ToolCall))
    assert call.input == {"command": "ls /repo"}
    assert [e.text for e in events if isinstance(e, AgentMessage)] == ["Let me look."]


def test_a_chat_export_without_times_replays_on_a_clock_that_does_not_move(tmp_path: Path):
    untimed = {"format": "openai-chat", "messages": CHAT["messages"][:4]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(untimed, indent=1))
    first = [e.model_dump(mode="json") for e in read_transcript(path)]
    assert first == [e.model_dump(mode="json") for e in read_transcript(path)]
    assert len({e["ts"] for e in first}) == 1


GEMINI = [
    {
        "type": "init",
        "timestamp": "2026-01-30T06:18:17.750Z",
        "session_id": "6727b31e",
        "model": "gemini-3-pro-preview",
    },
    {"type": "message", "role": "user", "content": "Build it."},
    {
        "type": "tool_use",
        "timestamp": "2026-01-30T06:18:22.937Z",
        "tool_name": "activate_skill",
        "tool_id": "a1",
        "parameters": {"name": "figma-to-code"},
    },
    {
        "type": "tool_result",
        "timestamp": "2026-01-30T06:18:22.986Z",
        "tool_id": "a1",
        "status": "error",
        "output": "x",
        "error": {"type": "invalid_tool_params", "message": "Skill not found"},
    },
    {
        "type": "message",
        "timestamp": "2026-01-30T06:18:25.000Z",
        "role": "assistant",
        "content": "I'll read ",
        "delta": True,
    },
    {
        "type": "message",
        "timestamp": "2026-01-30T06:18:25.100Z",
        "role": "assistant",
        "content": "the file.",
        "delta": True,
    },
    {
        "type": "tool_use",
        "timestamp": "2026-01-30T06:18:30.369Z",
        "tool_name": "read_file",
        "tool_id": "r1",
        "parameters": {"file_path": "SKILL.md"},
    },
    {
        "type": "tool_result",
        "timestamp": "2026-01-30T06:18:30.381Z",
        "tool_id": "r1",
        "status": "success",
        "output": "# Skill",
    },
    {
        "type": "error",
        "timestamp": "2026-01-30T06:18:31.000Z",
        "severity": "warning",
        "message": "Loop detected",
    },
    {"type": "result", "timestamp": "2026-01-30T06:18:32.000Z", "status": "success"},
]


def test_gemini_cli_stream_json_maps_calls_results_replies_and_the_end():
    events = list(from_gemini_cli(GEMINI, "p"))
    assert events[0].session_id == "6727b31e"
    failed, read = (e for e in events if isinstance(e, ToolResult))
    assert not failed.result.ok and failed.result.error == "Skill not found"
    assert read.result.ok and read.result.output == "# Skill" and read.result.duration_ms == 12
    assert [e.text for e in events if isinstance(e, AgentMessage)] == ["I'll read the file."]
    assert isinstance(events[-2], ErrorEvent) and isinstance(events[-1], SessionEnded)
    assert detect_format(json.dumps(GEMINI[0])) == "gemini-cli"


ATIF = {
    "schema_version": "ATIF-v1.7",
    "session_id": "559effa5",
    "agent": {"name": "terminus-2", "model_name": "claude"},
    "steps": [
        {"step_id": 1, "source": "user", "message": "Classify the documents."},
        {
            "step_id": 2,
            "timestamp": "2026-06-05T00:29:24.206069+00:00",
            "source": "agent",
            "message": "Analysis: start. Plan: look.",
            "tool_calls": [
                {
                    "tool_call_id": "c1",
                    "function_name": "bash_command",
                    "arguments": {"keystrokes": "ls\n"},
                },
                {
                    "tool_call_id": "c2",
                    "function_name": "bash_command",
                    "arguments": {"keystrokes": "pwd\n"},
                },
            ],
            "observation": {"results": [{"content": "$ ls\na.pdf\n$ pwd\n/app"}]},
        },
        {
            "step_id": 3,
            "timestamp": "2026-06-05T00:30:09.185320+00:00",
            "source": "agent",
            "message": "",
            "tool_calls": [
                {"tool_call_id": "c3", "function_name": "read", "arguments": {"path": "a"}},
                {"tool_call_id": "c4", "function_name": "read", "arguments": {"path": "b"}},
            ],
            "observation": {
                "results": [
                    {"source_call_id": "c4", "content": "B"},
                    {"source_call_id": "c3", "content": "A"},
                ]
            },
        },
    ],
}


def test_atif_steps_map_to_calls_and_a_shared_terminal_output_to_one_call():
    events = list(from_atif(ATIF, "p"))
    assert events[0].session_id == "559effa5"
    calls = [e for e in events if isinstance(e, ToolCall)]
    results = [e for e in events if isinstance(e, ToolResult)]
    # two keystrokes answered by one terminal output are one call; named results pair by id
    assert [c.tool for c in calls] == ["bash_command", "read", "read"]
    assert calls[0].input == {
        "calls": [
            {"tool": "bash_command", "keystrokes": "ls\n"},
            {"tool": "bash_command", "keystrokes": "pwd\n"},
        ]
    }
    assert [r.result.output for r in results] == ["$ ls\na.pdf\n$ pwd\n/app", "A", "B"]
    assert all(r.result.ok for r in results)
    assert detect_format(json.dumps(ATIF)) == "atif"
