"""The Claude Code hooks adapter as Claude Code runs it: a process per hook, payloads captured
from the real client, a real NATS, the real detector and pauser."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from yokeflow_agent.claude_code import failure_of, last_reply
from yokeflow_agent.contract import Subjects

from ..helpers import cli, listed, resume_with_notes, service_env

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
PATIENT = {
    "YOKEFLOW_VERDICT_TIMEOUT": "5",
    "YOKEFLOW_WARNING_WAIT": "5",
    "YOKEFLOW_HOOK_BUDGET": "6",
}


def hook_payload(name: str, session: str, cwd: Path, tool_use_id: str = "toolu_01") -> str:
    text = (FIXTURES / f"{name}.json").read_text()
    return (
        text.replace("SESSION", session)
        .replace("CWD", str(cwd))
        .replace("TOOL_USE_ID", tool_use_id)
    )


def run_hook(env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    """`yokeflow-intervention hook`, as the README configures it."""
    return cli("hook", env=env, stdin=stdin)


def halted(result: subprocess.CompletedProcess[str]) -> dict | None:
    """The JSON that blocks the call and halts the session, if the hook said so."""
    if result.returncode != 0 or not result.stdout.strip():
        return None
    output = json.loads(result.stdout)
    return output if output.get("continue") is False else None


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env.update(extra)
    return env


async def test_the_fourth_identical_failing_call_is_refused_and_the_session_halts(
    infra, nc, services, unique, tmp_path
):
    services.start("detector")
    services.start("pauser")
    project, session = unique("hookproj"), unique("claude")
    workspace = tmp_path / "shop"
    workspace.mkdir()
    # A verdict is heard only within its wait (0.5 s for a call, 0.2 s for a result, by
    # default); on a loaded 2-core CI machine the detector may answer later, so this test
    # waits longer: it checks what is said and when, not how fast (bench/hook.py does that).
    env = service_env(
        infra,
        YOKEFLOW_PROJECT_ID=project,
        YOKEFLOW_HOOK_STATE_DIR=str(tmp_path / "state"),
        **PATIENT,
    )

    def hook(name: str, tool_use_id: str = "toolu_01", session_id: str = session):
        return run_hook(env, hook_payload(name, session_id, workspace, tool_use_id))

    assert hook("session_start").returncode == 0
    stop, warned = None, None
    for attempt in range(6):
        pre = hook("pre_tool_use", f"toolu_{attempt}")
        assert pre.returncode == 0, pre.stderr
        if (stop := halted(pre)) is not None:
            break
        post = hook("post_tool_use_failure", f"toolu_{attempt}")
        assert post.returncode == 0
        if post.stdout.strip():
            warned = (attempt, json.loads(post.stdout)["hookSpecificOutput"])
    assert stop is not None and attempt == 3, "the fourth attempt must be refused"
    decision = stop["hookSpecificOutput"]
    assert decision["hookEventName"] == "PreToolUse" and decision["permissionDecision"] == "deny"
    assert "Command attempted 4 times: npm start" in stop["stopReason"]
    # One chance to change course first: after the third failure the agent was told.
    assert warned is not None and warned[0] == 2
    assert warned[1]["hookEventName"] == "PostToolUseFailure"
    assert "failed 3 times with the same error" in warned[1]["additionalContext"]
    progress = (workspace / "claude-progress.md").read_text()
    assert progress.count(f"## BLOCKER - Session {session}") == 1
    assert halted(hook("pre_tool_use", "toolu_again")) is not None  # still paused, one entry
    assert (workspace / "claude-progress.md").read_text().count("## BLOCKER") == 1
    assert hook("session_end").returncode == 0
    assert not (tmp_path / "state" / f"{project}.{session}.json").exists()  # cleaned up

    # Stored events: one per hook call that reports something, nothing duplicated, and the
    # session ended as paused.
    last = json.loads(
        (
            await nc.jetstream().get_last_msg(
                "AGENT_EVENTS", Subjects.agent_events_stored(project, session)
            )
        ).data
    )
    assert last["type"] == "session_ended" and last["reason"] == "paused"
    assert last["seq"] == 1 + 4 + 3 + 1

    # The warning is a public event, and the pauser recorded it.
    listing = listed(project, env)
    assert len(listing) == 1
    resume_with_notes(listing[0]["id"], "Use PORT=4000", env)
    start = hook("session_start", session_id=unique("next"))
    context = json.loads(start.stdout)["hookSpecificOutput"]
    assert context["hookEventName"] == "SessionStart"
    assert "Use PORT=4000" in context["additionalContext"]
    assert hook("session_start", session_id=unique("later")).stdout.strip() == ""  # once


async def test_parallel_calls_do_not_wait_for_one_another(infra, nc, services, unique, tmp_path):
    """Claude Code runs safe tools in parallel: four hooks of one session at once all record
    their call (no lock is held across network I/O, so none waits out another's)."""
    services.start("detector")
    project, session = unique("parallel"), unique("claude")
    env = service_env(
        infra, YOKEFLOW_PROJECT_ID=project, YOKEFLOW_HOOK_STATE_DIR=str(tmp_path / "state")
    )
    procs = []
    for n in range(4):
        payload = json.loads(hook_payload("pre_tool_use", session, tmp_path, f"toolu_{n}"))
        payload["tool_name"], payload["tool_input"] = "Read", {"file_path": f"/src/{n}.py"}
        command = [sys.executable, "-P", "-m", "yokeflow_intervention.cli", "hook"]
        procs.append(
            subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
            )
        )
        procs[-1].stdin.write(json.dumps(payload))  # type: ignore[union-attr]
        procs[-1].stdin.close()  # type: ignore[union-attr]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    js = nc.jetstream()
    info = await js.stream_info("AGENT_EVENTS", subjects_filter=f"agent.events.{project}.>")
    # Stored with the session's partition appended.
    assert [(s.rpartition(".")[0], n) for s, n in (info.state.subjects or {}).items()] == [
        (f"agent.events.{project}.{session}", 4)
    ]


def test_nats_down_lets_the_agent_work_and_says_why(tmp_path):
    env = plain_env(NATS_URL="nats://127.0.0.1:1", YOKEFLOW_HOOK_STATE_DIR=str(tmp_path))
    result = run_hook(env, hook_payload("pre_tool_use", "s1", tmp_path))
    assert result.returncode == 0  # exit 2 would block the call
    shown = json.loads(result.stdout)["systemMessage"]  # what Claude Code shows the user
    assert "not recorded" in shown and "127.0.0.1:1" in shown


@pytest.mark.parametrize(
    "problem", ["YOKEFLOW_VERDICT_TIMEOUT=abc", "unknown key in .yokeflow.yaml", "bad JSON"]
)
def test_a_bad_configuration_never_blocks_the_agent(tmp_path, problem):
    env = plain_env(NATS_URL="nats://127.0.0.1:1", YOKEFLOW_HOOK_STATE_DIR=str(tmp_path))
    stdin = hook_payload("pre_tool_use", "s1", tmp_path)
    if problem.startswith("YOKEFLOW"):
        env["YOKEFLOW_VERDICT_TIMEOUT"] = "abc"
    elif problem.startswith("unknown"):  # the server's file: the hook does not read it
        (tmp_path / ".yokeflow.yaml").write_text("intervention:\n  colour: blue\n")
    else:
        stdin = "{not json"
    result = subprocess.run(
        [sys.executable, "-P", "-m", "yokeflow_intervention.cli", "hook"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    shown = json.loads(result.stdout)["systemMessage"]
    assert "not recorded" in shown
    if problem.startswith("YOKEFLOW"):
        assert "YOKEFLOW_VERDICT_TIMEOUT='abc'" in shown


def test_without_nats_url_the_session_start_says_what_to_set(tmp_path):
    env = plain_env(YOKEFLOW_HOOK_STATE_DIR=str(tmp_path), CLAUDE_PROJECT_DIR=str(tmp_path))
    start = run_hook(env, hook_payload("session_start", "s1", tmp_path))
    assert start.returncode == 0
    shown = json.loads(start.stdout)["systemMessage"]
    assert "NATS_URL is not set" in shown and f"agents add {tmp_path.name}" in shown
    # ...once: the tool hooks stay quiet and let the agent work.
    pre = run_hook(env, hook_payload("pre_tool_use", "s1", tmp_path))
    assert pre.returncode == 0 and pre.stdout.strip() == ""


def test_check_tells_whether_the_hooks_are_wired(infra, unique, tmp_path):
    env = service_env(infra, CLAUDE_PROJECT_DIR=str(tmp_path / "shop"))
    wired = cli("hook", "--check", env=env)
    assert wired.returncode == 0, wired.stdout
    assert "project id     shop" in wired.stdout and "ok: the hooks" in wired.stdout
    assert "may publish on agent.events.shop.*" in wired.stdout
    unset = cli("hook", "--check", env={k: v for k, v in env.items() if k != "NATS_URL"})
    assert unset.returncode == 1 and "NATS_URL       not set" in unset.stdout
    down = cli("hook", "--check", env={**env, "NATS_URL": "nats://127.0.0.1:1"})
    assert down.returncode == 1 and "127.0.0.1:1" in down.stdout


def test_claude_code_failures_keep_their_exit_code_and_root_cause():
    assert failure_of("Exit code 127\nbash: pnpm: command not found") == (
        127,
        "bash: pnpm: command not found",
    )
    assert failure_of("Exit code 2") == (2, "Exit code 2")
    assert failure_of("File has not been read yet") == (1, "File has not been read yet")


async def test_the_project_is_the_root_not_the_folder_the_agent_cd_to(
    infra, nc, services, unique, tmp_path
):
    services.start("detector")
    services.start("pauser")
    root = tmp_path / unique("shop")
    (root / "web").mkdir(parents=True)
    session = unique("claude")
    env = service_env(
        infra, CLAUDE_PROJECT_DIR=str(root), YOKEFLOW_HOOK_STATE_DIR=str(tmp_path / "state")
    )

    def hook(name: str, tool_use_id: str = "toolu_01", cwd=root / "web", session_id=session):
        return run_hook(env, hook_payload(name, session_id, cwd, tool_use_id))

    assert hook("session_start", cwd=root).returncode == 0
    for attempt in range(6):  # after `cd web`
        if halted(hook("pre_tool_use", f"toolu_{attempt}")) is not None:
            break
        hook("post_tool_use_failure", f"toolu_{attempt}")
    assert attempt == 3
    assert (root / "claude-progress.md").is_file()
    assert not (root / "web" / "claude-progress.md").exists()
    js = nc.jetstream()
    last = json.loads(
        (await js.get_last_msg("AGENT_EVENTS", f"agent.events.{root.name}.{session}.*")).data
    )
    assert last["type"] == "tool_call"  # recorded under the project root's name
    intervention = listed(root.name, env)[0]
    assert intervention["blocker_info"]["error_excerpt"].startswith("Error: Command failed")
    resume_with_notes(intervention["id"], "Use PORT=4000", env)
    # A compaction elsewhere in the project neither takes the brief nor starts a session...
    payload = json.loads(hook_payload("session_start", unique("c"), root))
    payload["source"] = "compact"
    compact = run_hook(env, json.dumps(payload))
    assert compact.returncode == 0 and "Use PORT=4000" not in compact.stdout
    # ...and the next session gets it, once.
    first = hook("session_start", cwd=root, session_id=unique("next"))
    assert "Use PORT=4000" in json.loads(first.stdout)["hookSpecificOutput"]["additionalContext"]
    again = hook("session_start", cwd=root, session_id=unique("later"))
    assert "Use PORT=4000" not in again.stdout


def test_the_stop_hook_reports_the_last_reply_from_the_transcript(tmp_path):
    transcript = tmp_path / "t.jsonl"
    entries = [
        {"type": "user", "message": {"role": "user", "content": "fix the build"}},
        {
            "type": "assistant",
            "message": {
                "content": [{"type": "text", "text": "Looking."}, {"type": "tool_use", "id": "t1"}]
            },
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1"}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "I will now run"}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "the tests."}]}},
    ]
    transcript.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    assert last_reply({"transcript_path": str(transcript)}) == "I will now run\nthe tests."
    assert last_reply({"last_assistant_message": "Done."}) == "Done."
    assert last_reply({"transcript_path": str(tmp_path / "missing.jsonl")}) == ""


async def test_repeated_replies_through_the_stop_hook_pause_the_session(
    infra, nc, services, unique, tmp_path
):
    services.start("detector")
    services.start("pauser")
    project, session = unique("talk"), unique("claude")
    env = service_env(
        infra, YOKEFLOW_PROJECT_ID=project, YOKEFLOW_HOOK_STATE_DIR=str(tmp_path / "state")
    )
    assert run_hook(env, hook_payload("session_start", session, tmp_path)).returncode == 0
    for _ in range(3):
        stop = {
            "session_id": session,
            "cwd": str(tmp_path),
            "hook_event_name": "Stop",
            "stop_hook_active": False,
            "last_assistant_message": "I will now run the tests.",
        }
        assert run_hook(env, json.dumps(stop)).returncode == 0
    listing = await eventually_listing(env, project)
    assert listing[0]["pause_type"] == "loop_pattern"
    assert "same reply 3 times" in listing[0]["pause_reason"]


async def eventually_listing(env: dict[str, str], project: str) -> list[dict]:
    for _ in range(100):
        found = listed(project, env)
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError("no intervention")
