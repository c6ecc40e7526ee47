"""The CLI as a user runs it: real processes, real servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import EXAMPLES, cli, service_env

pytestmark = pytest.mark.integration
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
        for key in (
            "session_id",
            "project_id",
            "trigger",
            "blocker_type",
            "event_seq",
            "reason",
            "retry_stats",
        ):
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


def test_detect_replays_agent_transcripts(tmp_path):
    """A Claude Code session file or an OpenHands trajectory, as a user replays their own."""
    real = ROOT / "tests" / "corpus" / "raw" / "claude-code-bookminder-residue-sweep.jsonl"
    healthy = cli("detect", str(real), env=service_env_plain(), cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout == "" and healthy.stderr == ""

    session = "3f1c2d4e-0000-4000-8000-00000000abcd"
    records = []
    for i in range(6):
        at = f"2026-05-07T10:0{i}:00Z"
        base = {"sessionId": session, "cwd": "/home/dev/shop", "timestamp": at}
        use = {
            "type": "tool_use",
            "id": f"toolu_{i}",
            "name": "Bash",
            "input": {"command": "npm run dev"},
        }
        failed = {
            "type": "tool_result",
            "tool_use_id": f"toolu_{i}",
            "is_error": True,
            "content": "Exit code 1\nError: listen EADDRINUSE: address already in use :::3000",
        }
        records.append({**base, "type": "assistant", "message": {"content": [use]}})
        records.append({**base, "type": "user", "message": {"content": [failed]}})
    transcript = tmp_path / f"{session}.jsonl"
    transcript.write_text("".join(json.dumps(r) + "\n" for r in records))
    stopped = cli("detect", str(transcript), env=service_env_plain(), cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    first = json.loads(stopped.stdout.splitlines()[0])
    assert (first["project_id"], first["session_id"]) == ("shop", session)
    assert (first["trigger"], first["blocker_type"]) == ("critical_error", "port_conflict")
    assert "EADDRINUSE" in first["error_excerpt"]

    named = cli(
        "detect", "--project", "web", str(transcript), env=service_env_plain(), cwd=tmp_path
    )
    assert json.loads(named.stdout.splitlines()[0])["project_id"] == "web"
    wrong = cli(
        "detect", "--format", "events", str(transcript), env=service_env_plain(), cwd=tmp_path
    )
    assert wrong.returncode == 0 and wrong.stdout == "" and "line 1: skipped:" in wrong.stderr

    trajectory = tmp_path / "trajectory.json"
    steps = []
    for i in range(5):
        steps.append(
            {
                "id": 2 * i,
                "source": "agent",
                "action": "run",
                "args": {"command": "ls"},
                "timestamp": f"2024-06-01T10:00:0{i}",
            }
        )
        steps.append(
            {
                "id": 2 * i + 1,
                "cause": 2 * i,
                "observation": "run",
                "content": "a.py",
                "extras": {"metadata": {"exit_code": 0}},
                "timestamp": f"2024-06-01T10:00:0{i}",
            }
        )
    trajectory.write_text(json.dumps(steps))
    looped = cli(
        "detect", "--format", "openhands", str(trajectory), env=service_env_plain(), cwd=tmp_path
    )
    assert looped.returncode == 0, looped.stderr
    assert json.loads(looped.stdout.splitlines()[0])["trigger"] == "loop_pattern"


@pytest.mark.parametrize(
    "raw",
    [
        "chat-claude-code-citybus.json",
        "gemini-cli-figma-startup.jsonl",
        "atif-terminus-invoices.json",
    ],
)
def test_detect_recognises_chat_exports_gemini_and_atif_files(raw, tmp_path):
    """Published runs in the other agents' formats replay without `--format`; these are healthy
    held-out sessions, so nothing is printed."""
    run = cli(
        "detect",
        str(ROOT / "tests" / "corpus" / "raw" / raw),
        env=service_env_plain(),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""


def service_env_plain() -> dict[str, str]:
    import os

    return {
        k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_", "DATABASE_"))
    }


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
    assert " of 4096 MiB" in status.stdout  # how full the bounded streams are


def test_demo_runs_the_whole_flow_unattended(tmp_path):
    env = {**service_env_plain(), "YOKEFLOW_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.demo", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
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
