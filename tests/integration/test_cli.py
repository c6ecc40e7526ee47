"""The CLI as a user runs it: real processes, real servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import EXAMPLES, cli, service_env

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(json.loads((EXAMPLES / "expected.json").read_text())))
def test_detect_gives_the_contract_examples_expected_verdicts(name, tmp_path):
    expected = json.loads((EXAMPLES / "expected.json").read_text())[name]
    result = cli("detect", str(EXAMPLES / name), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert {k: got[k] for k in want} == want
        for key in ("session_id", "project_id", "trigger", "blocker_type", "event_seq", "reason",
                    "retry_stats"):  # fmt: skip
            assert key in got


def test_detect_reports_bad_lines_and_bad_input(tmp_path):
    events = tmp_path / "events.jsonl"
    good = (EXAMPLES / "critical_port_conflict.jsonl").read_text().splitlines()
    events.write_text("\n".join([good[0], "{oops", good[1], '{"v": 1}', *good[2:]]) + "\n")
    result = cli("detect", str(events), cwd=tmp_path)
    assert result.returncode == 0
    assert "line 2: skipped: not valid JSON" in result.stderr
    assert "line 4: skipped:" in result.stderr
    assert json.loads(result.stdout)["blocker_type"] == "port_conflict"

    missing = cli("detect", str(tmp_path / "nope.jsonl"), cwd=tmp_path)
    assert missing.returncode != 0 and "no such file" in missing.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("intervention:\n  max_retries: many\n  colour: blue\n")
    bad = cli("--config", str(config), "detect", str(events), cwd=tmp_path)
    assert bad.returncode == 2
    assert (
        "intervention.max_retries" in bad.stderr
        and "intervention.colour: unknown key" in bad.stderr
    )


def test_detect_uses_the_configured_thresholds(tmp_path):
    config = tmp_path / ".yokeflow.yaml"
    config.write_text("intervention:\n  max_retries: ${RETRIES}\n")
    env = {**service_env_plain(), "RETRIES": "10"}
    result = cli("detect", str(EXAMPLES / "retry_limit.jsonl"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # With 10 retries allowed, the fourth identical failure is caught as a loop instead.
    found = json.loads(result.stdout)
    assert (found["trigger"], found["event_seq"]) == ("loop_pattern", 11)


@pytest.mark.parametrize("where", ["after the command (as the README shows)", "before the command"])
def test_detect_takes_config_before_or_after_the_command(tmp_path, where):
    config = tmp_path / "elsewhere.yaml"
    config.write_text("intervention:\n  max_retries: 10\n")
    events = str(EXAMPLES / "retry_limit.jsonl")
    args = (
        ("detect", "--config", str(config), events)
        if where.startswith("after")
        else ("--config", str(config), "detect", events)
    )
    result = cli(*args, env=service_env_plain(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trigger"] == "loop_pattern"  # the file's limit applied


def service_env_plain() -> dict[str, str]:
    import os

    return {
        k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_", "DATABASE_"))
    }


def hook_payload(name: str, session: str, cwd: Path, tool_use_id: str = "toolu_01") -> str:
    text = (FIXTURES / "hooks" / f"{name}.json").read_text()
    return (
        text.replace("SESSION", session)
        .replace("CWD", str(cwd))
        .replace("TOOL_USE_ID", tool_use_id)
    )


async def test_claude_code_hooks_record_block_and_resume(infra, nc, services, unique, tmp_path):
    services.start("detector")
    services.start("pauser")
    project, session = unique("hookproj"), unique("claude")
    workspace = tmp_path / "shop"
    workspace.mkdir()
    env = service_env(infra, YOKEFLOW_PROJECT_ID=project, YOKEFLOW_DATA_DIR=str(tmp_path / "data"))

    def hook(name: str, tool_use_id: str = "toolu_01"):
        return cli("hook", env=env, stdin=hook_payload(name, session, workspace, tool_use_id))

    assert hook("session_start").returncode == 0
    blocked = None
    for attempt in range(6):
        pre = hook("pre_tool_use", f"toolu_{attempt}")
        if pre.returncode == 2:
            blocked = pre
            break
        assert pre.returncode == 0, pre.stderr
        assert hook("post_tool_use_failure", f"toolu_{attempt}").returncode == 0
    assert blocked is not None, "the fourth attempt must be blocked"
    assert attempt == 3
    assert "Command attempted 4 times: npm start" in blocked.stderr
    progress = (workspace / "claude-progress.md").read_text()
    assert f"## BLOCKER - Session {session}" in progress
    assert hook("session_end").returncode == 0

    # Stored events: ordered seq, one per hook call, nothing duplicated.
    js = nc.jetstream()
    last = await js.get_last_msg("AGENT_EVENTS", f"agent.events.{project}.{session}")
    assert json.loads(last.data)["type"] == "session_ended"
    assert json.loads(last.data)["seq"] == 1 + 4 + 3 + 1

    # After a human resumes, the next session's SessionStart receives the brief.
    listing = cli("interventions", "list", "--project", project, "--json", env=env)
    active = json.loads(listing.stdout)
    assert len(active) == 1
    resumed = cli(
        "interventions",
        "resume",
        active[0]["id"],
        "--by",
        "ana",
        "--notes",
        "Use PORT=4000",
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    start = cli("hook", env=env, stdin=hook_payload("session_start", unique("next"), workspace))
    context = json.loads(start.stdout)["hookSpecificOutput"]
    assert (
        context["hookEventName"] == "SessionStart"
        and "Use PORT=4000" in context["additionalContext"]
    )
    again = cli("interventions", "resume", active[0]["id"], "--by", "bob", env=env)
    assert again.returncode == 1 and "already resolved" in again.stderr


def test_hook_fails_open_when_nats_is_down(tmp_path):
    env = {
        **service_env_plain(),
        "NATS_URL": "nats://127.0.0.1:1",
        "YOKEFLOW_DATA_DIR": str(tmp_path),
    }
    result = cli("hook", env=env, stdin=hook_payload("pre_tool_use", "s1", tmp_path))
    assert result.returncode == 0 and "not recorded" in result.stderr


def test_publish_and_status(infra, nc, services, unique, tmp_path):
    services.start("detector")
    services.start("pauser")
    project = unique("pub")
    events = tmp_path / "events.jsonl"
    lines = (
        (EXAMPLES / "critical_port_conflict.jsonl")
        .read_text()
        .replace('"shopfront"', f'"{project}"')
    )
    events.write_text(lines + "{broken\n")
    env = service_env(infra)
    result = cli("publish", str(events), env=env)
    assert (
        result.returncode == 0
        and "published 4 events" in result.stdout
        and "line 5" in result.stderr
    )
    listing = None

    def paused():
        nonlocal listing
        listing = cli("interventions", "list", "--project", project, env=env)
        return "port_conflict" in listing.stdout or "critical_error" in listing.stdout

    import time

    deadline = time.monotonic() + 20
    while not paused() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert listing is not None and "critical_error" in listing.stdout
    status = cli("status", env=env)
    assert status.returncode == 0
    assert "AGENT_EVENTS" in status.stdout and "pauser    answering" in status.stdout


def test_demo_runs_the_whole_flow_unattended(tmp_path):
    env = {**service_env_plain(), "YOKEFLOW_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "tests.demo", "--json"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=110)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trigger"] == "retry_limit"
    for key in ("paused_row", "agent_blocked", "resumed", "new_session_started_with_context"):
        assert summary[key] is True, key
    assert Path(summary["blocker_doc"]).read_text().lstrip().startswith("## BLOCKER - Session")
    assert summary["recovery"]["action"] == "free_port"
    assert summary["recovery"]["succeeded"] is True and summary["recovery"]["auto_resumed"] is True
    for channel in ("slack", "discord", "webhook", "sms", "email"):
        assert summary["notifications"][channel]["sent"] >= 1, channel
        assert summary["notifications"][channel]["duplicates"] == 0, channel


@pytest.mark.parametrize("problem", ["unknown key in .yokeflow.yaml", "YOKEFLOW_MAX_RETRIES=abc"])
def test_a_bad_configuration_never_blocks_the_agent(tmp_path, problem):
    env = {**service_env_plain(), "NATS_URL": "nats://127.0.0.1:1"}
    if problem.startswith("unknown"):
        (tmp_path / ".yokeflow.yaml").write_text("intervention:\n  colour: blue\n")
    else:
        env["YOKEFLOW_MAX_RETRIES"] = "abc"
    result = cli("hook", env=env, cwd=tmp_path, stdin=hook_payload("pre_tool_use", "s1", tmp_path))
    assert result.returncode == 0  # exit 2 would block the call
    shown = json.loads(result.stdout)["systemMessage"]  # what Claude Code shows the user
    assert "not recorded" in shown and ("colour" in shown or "max_retries" in shown.lower())


def test_claude_code_failures_keep_their_exit_code_and_root_cause():
    from yokeflow_intervention.cli.hook import failure_of

    assert failure_of("Exit code 127\nbash: pnpm: command not found") == (
        127, "bash: pnpm: command not found")  # fmt: skip
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
    env = service_env(infra, CLAUDE_PROJECT_DIR=str(root), YOKEFLOW_DATA_DIR=str(tmp_path / "data"))

    def hook(name: str, tool_use_id: str = "toolu_01", cwd=root / "web", session_id=session):
        return cli("hook", env=env, stdin=hook_payload(name, session_id, cwd, tool_use_id))

    assert hook("session_start", cwd=root).returncode == 0
    for attempt in range(6):  # after `cd web`
        if hook("pre_tool_use", f"toolu_{attempt}").returncode == 2:
            break
        hook("post_tool_use_failure", f"toolu_{attempt}")
    assert attempt == 3
    assert (root / "claude-progress.md").is_file() and not (
        root / "web" / "claude-progress.md"
    ).exists()
    js = nc.jetstream()
    last = json.loads(
        (await js.get_last_msg("AGENT_EVENTS", f"agent.events.{root.name}.{session}")).data
    )
    assert last["type"] == "tool_call"  # recorded under the project root's name
    failed = cli("interventions", "list", "--project", root.name, "--json", env=env)
    intervention = json.loads(failed.stdout)[0]
    assert intervention["blocker_info"]["error_excerpt"].startswith("Error: Command failed")
    assert cli("interventions", "resume", intervention["id"], "--by", "ana", "--notes",
               "Use PORT=4000", env=env).returncode == 0  # fmt: skip
    # A compaction elsewhere in the project neither takes the brief nor starts a session...
    payload = json.loads(hook_payload("session_start", unique("c"), root))
    payload["source"] = "compact"
    compact = cli("hook", env=env, stdin=json.dumps(payload))
    assert compact.returncode == 0 and "Use PORT=4000" not in compact.stdout
    # ...and the next session gets it, once.
    first = hook("session_start", cwd=root, session_id=unique("next"))
    assert "Use PORT=4000" in json.loads(first.stdout)["hookSpecificOutput"]["additionalContext"]
    again = hook("session_start", cwd=root, session_id=unique("later"))
    assert "Use PORT=4000" not in again.stdout


def test_the_stop_hook_reports_the_last_reply_from_the_transcript(tmp_path):
    from yokeflow_intervention.cli.hook import last_reply

    transcript = tmp_path / "t.jsonl"
    entries = [
        {"type": "user", "message": {"role": "user", "content": "fix the build"}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "Looking."},
                                                      {"type": "tool_use", "id": "t1"}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1"}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "I will now run"}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "the tests."}]}},
    ]  # fmt: skip
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
    env = service_env(infra, YOKEFLOW_PROJECT_ID=project, YOKEFLOW_DATA_DIR=str(tmp_path / "data"))
    assert (
        cli("hook", env=env, stdin=hook_payload("session_start", session, tmp_path)).returncode == 0
    )
    for _ in range(3):
        stop = {"session_id": session, "cwd": str(tmp_path), "hook_event_name": "Stop",
                "stop_hook_active": False, "last_assistant_message": "I will now run the tests."}  # fmt: skip
        assert cli("hook", env=env, stdin=json.dumps(stop)).returncode == 0
    listing = await eventually_listing(env, project)
    assert (
        listing[0]["pause_type"] == "loop_pattern"
        and "same reply 3 times" in listing[0]["pause_reason"]
    )


async def eventually_listing(env: dict[str, str], project: str) -> list[dict]:
    import asyncio

    for _ in range(100):
        found = json.loads(
            cli("interventions", "list", "--project", project, "--json", env=env).stdout
        )
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError("no intervention")
