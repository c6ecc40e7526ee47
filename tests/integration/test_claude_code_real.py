"""The real Claude Code, offline: the CLI bundled in `claude-agent-sdk` (pinned in the lock) runs
scripted sessions against a local stand-in of the Messages API (tests/model_api.py), with the
hooks exactly as the README configures them, and again through the SDK's in-process hooks.
Every assertion is on what the real client did: which commands really ran (a marker file each
run appends to), whether the session halted, what it sent the model."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..helpers import collect, eventually, listed, resume_with_notes, service_env
from ..model_api import ModelApi, Turn, model_api

pytestmark = pytest.mark.integration

claude_agent_sdk = pytest.importorskip("claude_agent_sdk", reason="make test installs it")
CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
BIN = Path(sys.executable).parent  # where `yokeflow-intervention` is installed


def readme_settings(nats_url: str, **env: str) -> dict[str, Any]:
    """`.claude/settings.json` as the README shows it."""
    hook = [{"type": "command", "command": "yokeflow-hook"}]
    return {
        "env": {"NATS_URL": nats_url, **env},
        "hooks": {
            "SessionStart": [{"hooks": hook}],
            "PreToolUse": [{"matcher": "*", "hooks": hook}],
            "PostToolUse": [{"matcher": "*", "hooks": hook}],
            "PostToolUseFailure": [{"matcher": "*", "hooks": hook}],
            "Stop": [{"hooks": hook}],
            "SessionEnd": [{"hooks": [{**hook[0], "timeout": 10}]}],
            "PermissionRequest": [{"matcher": "*", "hooks": hook}],
            "Notification": [{"hooks": hook}],
        },
    }


def client_env(api: ModelApi, home: Path, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=api.url,
        ANTHROPIC_API_KEY="sk-local-stand-in",
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        YOKEFLOW_HOOK_STATE_DIR=str(state),
    )
    return env


def run_claude(root: Path, api: ModelApi, home: Path, state: Path) -> dict[str, Any]:
    """`claude -p` in the project, with its own `.claude/settings.json`; the JSON result."""
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [str(CLAUDE), "-p", "Start the app.", "--allowedTools", "Bash", "--output-format", "json"],
        cwd=root,
        env=client_env(api, home, state),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def failing(marker: Path) -> Turn:
    """A Bash call that really runs (it appends to `marker`) and fails the same way each time,
    after `cd web`: the hook's cwd follows it, the project root does not."""
    command = f"cd web && echo ran >> {marker} && echo 'Error: listen failed' >&2 && exit 3"
    return Turn(tool="Bash", input={"command": command, "description": "Start the dev server"})


def text_of(request: dict[str, Any]) -> str:
    return json.dumps(request.get("system", "")) + json.dumps(request.get("messages", []))


def project(tmp_path: Path, name: str, settings: dict[str, Any]) -> Path:
    root = tmp_path / name
    (root / "web").mkdir(parents=True)
    (root / ".claude").mkdir()
    (root / ".claude" / "settings.json").write_text(json.dumps(settings))
    return root


async def test_real_claude_code_never_runs_the_fourth_identical_failing_call(
    infra, nc, services, unique, tmp_path
):
    services.start("detector")
    services.start("pauser")
    name = unique("shop")
    root = project(tmp_path, name, readme_settings(infra.nats_url))
    marker = tmp_path / "ran"
    with model_api([failing(marker)] * 6 + [Turn(text="Giving up.")]) as api:
        result = run_claude(root, api, tmp_path / "home", tmp_path / "state")
        asked = api.tool_requests

    assert marker.read_text().splitlines() == ["ran"] * 3  # the 4th never ran
    assert result["terminal_reason"] == "hook_stopped"  # the session halted...
    assert len(asked) == 4  # ...without spending another model turn
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Bash"]
    # Before the stop, the agent was told what pattern it was in, in its own context.
    assert "failed 3 times with the same error" in text_of(asked[3])
    assert (root / "claude-progress.md").read_text().count("## BLOCKER - Session") == 1
    assert not (root / "web" / "claude-progress.md").exists()
    env = service_env(infra)
    listing = listed(name, env)
    assert [i["pause_type"] for i in listing] == ["retry_limit"]
    assert "Error: listen failed" in listing[0]["blocker_info"]["error_excerpt"]  # the stderr

    # A human resumes with notes; the next session's first model request carries them.
    resume_with_notes(listing[0]["id"], "Port 3000 is taken on this machine: use PORT=4000.", env)
    with model_api([Turn(text="Starting on port 4000.")]) as api:
        run_claude(root, api, tmp_path / "home", tmp_path / "state")
        first = api.tool_requests[0]
    assert "use PORT=4000" in text_of(first)
    active = listed(name, env)
    assert active == []  # resumed, and the next session was not stopped


@pytest.mark.parametrize("problem", ["NATS is down", "a bad hook setting"])
def test_real_claude_code_works_on_when_the_watcher_cannot(tmp_path, problem):
    settings = (
        readme_settings("nats://127.0.0.1:1")
        if problem == "NATS is down"
        else readme_settings("nats://127.0.0.1:1", YOKEFLOW_VERDICT_TIMEOUT="abc")
    )
    root = project(tmp_path, "shop", settings)
    marker = tmp_path / "ran"
    call = Turn(tool="Bash", input={"command": f"echo ran >> {marker}"})
    with model_api([call, call, Turn(text="Done.")]) as api:
        result = run_claude(root, api, tmp_path / "home", tmp_path / "state")
    assert marker.read_text().splitlines() == ["ran"] * 2  # nothing was blocked
    assert result["terminal_reason"] != "hook_stopped" and not result["permission_denials"]


async def test_the_agent_sdk_in_process_hooks_stop_the_fourth_call(
    infra, nc, services, unique, tmp_path
):
    from claude_agent_sdk import ClaudeSDKClient
    from yokeflow_agent.claude_sdk import ClaudeSdkHooks

    services.start("detector")
    services.start("pauser")
    name = unique("sdkshop")
    root = tmp_path / name
    (root / "web").mkdir(parents=True)
    marker = tmp_path / "ran"
    home = tmp_path / "home"
    home.mkdir()

    async def session(script: list[Turn]) -> tuple[ModelApi, list[Any]]:
        with model_api(script) as api:
            async with ClaudeSdkHooks.open(infra.nats_url, name, workspace=root) as watch:
                options = watch.options(
                    cli_path=str(CLAUDE),
                    cwd=str(root),
                    allowed_tools=["Bash"],
                    env=client_env(api, home, tmp_path / "state"),
                )
                async with ClaudeSDKClient(options) as client:
                    await client.query("Start the app.")
                    messages = [m async for m in client.receive_response()]
        return api, messages

    api, messages = await session([failing(marker)] * 6 + [Turn(text="Giving up.")])
    assert marker.read_text().splitlines() == ["ran"] * 3
    assert len(api.tool_requests) == 4
    assert "failed 3 times with the same error" in text_of(api.tool_requests[3])
    result = messages[-1]
    assert isinstance(result, claude_agent_sdk.ResultMessage)
    assert result.terminal_reason == "hook_stopped"  # the SDK session halted too
    assert (root / "claude-progress.md").read_text().count("## BLOCKER - Session") == 1
    env = service_env(infra)

    def paused() -> list[dict[str, Any]]:
        return listed(name, env)

    listing = await eventually(paused)
    resume_with_notes(listing[0]["id"], "Use PORT=4000 here.", env)
    api, _ = await session([Turn(text="Starting on port 4000.")])
    assert "Use PORT=4000 here." in json.dumps(api.tool_requests[0].get("system", ""))


async def test_real_claude_code_waiting_on_a_permission_is_reported_and_a_human_told(
    infra, nc, services, unique, tmp_path
):
    """Bash is not allowed up front, so the real client asks for permission: its
    PermissionRequest hook reports the session as waiting. Headless (`-p`) it cannot show the
    dialog and denies the call once the hooks return; a second hook that holds the prompt for 6
    s stands for the person who does not answer. The project's webhook is told what is asked,
    nothing is stopped, and the call never runs."""
    from tests.peers import HttpPeer

    name = unique("asks")
    detected = await collect(nc, f"intervention.detected.{name}")
    waiting = await collect(nc, f"intervention.waiting.{name}")
    settings = readme_settings(infra.nats_url)
    settings["hooks"]["PermissionRequest"][0]["hooks"].append(
        {"type": "command", "command": "sleep 6"}
    )
    root = project(tmp_path, name, settings)
    marker = tmp_path / "ran"
    with HttpPeer() as http:
        services.start(
            "notifier",
            YOKEFLOW_WEBHOOK_URL=http.webhook_url(),
            YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS="true",
        )
        services.start(
            "detector", YOKEFLOW_WAITING_NOTIFICATION_AFTER="2", YOKEFLOW_WATCHDOG_TICK_S="0.5"
        )
        call = Turn(tool="Bash", input={"command": f"echo ran >> {marker}"})
        with model_api([call, Turn(text="I may not run it.")]) as api:
            home, state = tmp_path / "home", tmp_path / "state"
            home.mkdir()
            done = await asyncio.to_thread(
                subprocess.run,
                [str(CLAUDE), "-p", "Start the app.", "--output-format", "json"],
                cwd=root,
                env=client_env(api, home, state),
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert done.returncode == 0, done.stderr
        told = await eventually(
            lambda: [r for r in http.accepted("webhook") if name in json.dumps(r.body)],
            timeout=30,
            what="the webhook told of the wait",
        )
    assert not marker.exists()  # denied: it never ran
    assert [d["tool_name"] for d in json.loads(done.stdout)["permission_denials"]] == ["Bash"]
    assert len(told) == 1 and "Allow Bash: echo ran" in json.dumps(told[0].body)
    [notice] = waiting.messages
    assert notice["trigger"] == "waiting" and notice["reason"].startswith("Waiting ")
    stored = await nc.jetstream().stream_info(
        "AGENT_EVENTS", subjects_filter=f"agent.events.{name}.>"
    )
    assert stored.state.messages >= 4  # started, call, waiting, ..., ended
    await asyncio.sleep(1.0)
    assert detected.messages == [], services.logs()
