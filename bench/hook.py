"""Hook figures (not a test): what watching costs an agent CLI's tool call.

On the embedded NATS with the detector running, payloads as the real clients send them
(Claude Code's captured in tests/fixtures/hooks):

- the hook process, one process per hook as the clients run it, from a copy installed as a
  user installs it (`pip install ./agent` into a fresh venv), started two ways: the command
  `agents connect` writes (that venv's Python running `yokeflow_hook.py` with `-I -S`) and
  pip's `yokeflow-hook` console script (a hand-written configuration); every hook is timed right
  after a no-op Python hook (`python -c` reading stdin) on the same input, and the ratio is to
  those: what the adapter adds to Python's own start;
- the same for the other clients (`--client gemini|codex|copilot`, see `CLIENT_PAYLOADS`): the
  call hook and the result hook of each;
- inside the real client: Claude Code (bundled with claude-agent-sdk) runs a session of Bash
  calls against the local stand-in of its model API once with each command (and once with the
  no-op), every hook wrapped in a shell timer;
- the Agent SDK's in-process hooks (`ClaudeSdkHooks` callbacks), one connection per session.

Cases: NATS up; NATS down (a refused port); the detector down (NATS up, no verdict comes: the
verdict deadline bounds the wait).

Usage: python bench/hook.py [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from yokeflow_agent.contract import AGENT_EVENTS_STREAM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from figures import percentile  # noqa: E402  (bench/ is this script's folder)

from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.embedded import EmbeddedNats  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "hooks"


def install_hook(venv: Path) -> dict[str, list[str]]:
    """The hook's commands, from a fresh venv holding only the agent package (the hook imports
    nothing else; `--no-deps` keeps the install offline but the build): `connect` (what `agents
    connect` writes: the venv's Python running `yokeflow_hook.py` with `-I -S`), `script`
    (pip's `yokeflow-hook` console script, as a hand-written configuration names it) and
    `no-op` (that Python reading stdin and nothing else: the baseline)."""
    print("installing the agent package into a fresh venv ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*pip, str(ROOT / "agent")], check=True)
    where = "import os, yokeflow_agent; print(os.path.dirname(yokeflow_agent.__file__))"
    package = subprocess.run(
        [python, "-c", where],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "connect": [python, "-I", "-S", str(Path(package) / "yokeflow_hook.py")],
        "script": [str(venv / "bin" / "yokeflow-hook")],
        "no-op": [python, "-c", "import sys; sys.stdin.read()"],
    }


def payload(name: str, session: str, cwd: Path, n: int) -> dict[str, Any]:
    text = (FIXTURES / f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(
        text.replace("SESSION", session).replace("CWD", str(cwd)).replace("TOOL_USE_ID", f"t{n}")
    )
    if "tool_input" in data:  # a different call each time: nothing is stopped while measuring
        data["tool_input"] = {"command": f"npm test -- --shard {n}"}
    return data


def _claude(event: str, session: str, cwd: Path, n: int) -> dict[str, Any]:
    name = {"PreToolUse": "pre_tool_use", "PostToolUse": "post_tool_use"}[event]
    return payload(name, session, cwd, n)


def _gemini(event: str, session: str, cwd: Path, n: int) -> dict[str, Any]:
    base = {
        "session_id": session,
        "cwd": str(cwd),
        "hook_event_name": event,
        "tool_name": "run_shell_command",
        "tool_input": {"command": f"npm test -- --shard {n}"},
    }
    if event == "AfterTool":
        base["tool_response"] = {"llmContent": "Output: ok\nExit Code: 0", "returnDisplay": "ok"}
    return base


def _codex(event: str, session: str, cwd: Path, n: int) -> dict[str, Any]:
    base = {
        "session_id": session,
        "turn_id": "t",
        "cwd": str(cwd),
        "hook_event_name": event,
        "transcript_path": str(cwd / "rollout.jsonl"),
        "tool_name": "Bash",
        "tool_input": {"command": f"npm test -- --shard {n}"},
        "tool_use_id": f"call_{n}",
    }
    if event == "PostToolUse":
        base["tool_response"] = "ok\n"
    return base


def _copilot(event: str, session: str, cwd: Path, n: int) -> dict[str, Any]:
    base = {
        "sessionId": session,
        "timestamp": 0,
        "cwd": str(cwd),
        "toolName": "bash",
        "toolArgs": {"command": f"npm test -- --shard {n}"},
    }
    if event == "postToolUse":
        base["toolResult"] = {
            "resultType": "success",
            "textResultForLlm": "ok\n<shellId: 0 completed with exit code 0>",
        }
    return base


def _opencode(event: str, session: str, cwd: Path, n: int) -> dict[str, Any]:
    """As the OpenCode plugin (agent/yokeflow_agent/opencode_plugin.js) sends them."""
    call = {"tool": "bash", "sessionID": session, "callID": f"call_{n}"}
    args = {"command": f"npm test -- --shard {n}", "description": "Run the tests"}
    base: dict[str, Any] = {"hook": event, "sessionID": session, "directory": str(cwd)}
    if event == "tool.execute.before":
        return {**base, "input": call, "output": {"args": args}}
    return {
        **base,
        "input": {**call, "args": args},
        "output": {"output": "ok\n", "metadata": {"exit": 0}},
    }


# (client, its call hook, its result hook, the payload of each), as the real clients send them
# (Claude Code's captured in tests/fixtures/hooks; Gemini CLI 0.61, Codex CLI 0.171, Copilot
# CLI 1.0.102, OpenCode 1.18.33 through its plugin).
CLIENT_PAYLOADS: list[tuple[str, str, str, Callable[[str, str, Path, int], dict[str, Any]]]] = [
    ("claude", "PreToolUse", "PostToolUse", _claude),
    ("gemini", "BeforeTool", "AfterTool", _gemini),
    ("codex", "PreToolUse", "PostToolUse", _codex),
    ("copilot", "preToolUse", "postToolUse", _copilot),
    ("opencode", "tool.execute.before", "tool.execute.after", _opencode),
]


def row(path: str, case: str, samples: list[float], baseline: float | None) -> str:
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    ratio = f"{p50 / baseline:.2f}" if baseline else ""
    return (
        f"| {path} | {case} | {len(samples)} | {p50:.1f} | {p99:.1f} | {max(samples):.1f} "
        f"| {ratio} |"
    )


def time_process(command: list[str], stdin: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, capture_output=True, text=True, check=True)
    return (time.perf_counter() - start) * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_beside_noop(
    command: list[str], noop: list[str], stdins: list[str], env: dict[str, str]
) -> tuple[list[float], float]:
    """Each hook timed right after a no-op hook on the same input: (samples, no-op median). On
    a shared, loaded machine a baseline taken minutes earlier says little."""
    samples, noops = [], []
    for stdin in stdins:
        noops.append(time_process(noop, stdin, env))
        samples.append(time_process(command, stdin, env))
    return samples, statistics.median(noops)


def process_path(
    hooks: dict[str, list[str]], url: str, runs: int, temp: Path, rows: list[str], label: str
) -> None:
    """Claude Code's hooks, by the command `agents connect` writes and by the console script."""
    env = {
        **os.environ,
        "NATS_URL": url,
        "YOKEFLOW_HOOK_STATE_DIR": str(temp / "state"),
        "CLAUDE_PROJECT_DIR": str(temp / "shop"),
    }
    for way, path in (("connect", "hook (agents connect)"), ("script", "hook (console script)")):
        session = uuid.uuid4().hex
        for name, event in (
            ("session_start", "SessionStart"),
            ("pre_tool_use", "PreToolUse"),
            ("post_tool_use", "PostToolUse"),
            ("post_tool_use_failure", "PostToolUseFailure"),
        ):
            count = runs if name != "session_start" else max(5, runs // 4)
            stdins = [json.dumps(payload(name, session, temp, n)) for n in range(count)]
            samples, noop = timed_beside_noop(hooks[way], hooks["no-op"], stdins, env)
            rows.append(row(path, f"{label}: {event}", samples, noop))


def client_paths(
    hooks: dict[str, list[str]], url: str, runs: int, temp: Path, rows: list[str], label: str
) -> None:
    """The hook process as each client runs it (the command `agents connect` writes, with
    `--client NAME` and Copilot's `--event`), settings in the environment as `agents connect`
    gives them."""
    env = {
        **os.environ,
        "NATS_URL": url,
        "YOKEFLOW_HOOK_STATE_DIR": str(temp / "state"),
        "YOKEFLOW_PROJECT_ROOT": str(temp / "shop"),
        "YOKEFLOW_PROJECT_ID": "shop",
    }
    for name, call, result, build in CLIENT_PAYLOADS:
        session = uuid.uuid4().hex
        for event in (call, result):
            command = [*hooks["connect"], "--client", name, "--event", event]
            stdins = [json.dumps(build(event, session, temp / "shop", n)) for n in range(runs)]
            samples, noop = timed_beside_noop(command, hooks["no-op"], stdins, env)
            rows.append(row(f"{name} hook", f"{label}: {event}", samples, noop))


TIMER = """#!/bin/sh
# $1: the hook's event, $2: the file to append "<event> <nanoseconds>" to; the rest: the hook.
event=$1 log=$2
shift 2
start=$(date +%s%N)
"$@"
code=$?
echo "$event $(($(date +%s%N) - start))" >> "$log"
exit $code
"""


def real_claude(
    hooks: dict[str, list[str]], url: str, runs: int, temp: Path, rows: list[str]
) -> None:
    """The hooks inside the real client: Claude Code (the CLI bundled with claude-agent-sdk)
    runs a session of `runs` Bash calls against the local stand-in of its model API, once with
    each hook command. Each hook is wrapped in a shell timer, so every PreToolUse is timed as
    the client starts it (its environment, its stdin, its shell's exec of the command)."""
    try:
        import claude_agent_sdk
    except ImportError:
        rows.append("| real Claude Code | not measured: claude-agent-sdk is not installed | |")
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from model_api import Turn, model_api

    claude = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    timer = temp / "timer.sh"
    timer.write_text(TIMER)
    timer.chmod(0o755)
    measured: dict[str, dict[str, list[float]]] = {}
    for way in ("no-op", "connect", "script"):
        root, log = temp / f"real-{way}", temp / f"real-{way}.times"
        (root / ".claude").mkdir(parents=True)
        command = " ".join(shlex.quote(part) for part in hooks[way])
        wired = {
            event: [
                {
                    "matcher": "*",
                    "hooks": [{"type": "command", "command": f"{timer} {event} {log} {command}"}],
                }
            ]
            for event in ("PreToolUse", "PostToolUse")
        }
        settings = {
            "env": {
                "NATS_URL": url,
                "YOKEFLOW_PROJECT_ID": "bench",
                "YOKEFLOW_HOOK_STATE_DIR": str(temp / "state"),
            },
            "hooks": wired,
        }
        (root / ".claude" / "settings.json").write_text(json.dumps(settings))
        script = [Turn(tool="Bash", input={"command": f"echo {n}"}) for n in range(runs)]
        home = temp / f"home-{way}"
        home.mkdir()
        with model_api([*script, Turn(text="Done.")]) as api:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS"))}
            env.update(
                HOME=str(home),
                ANTHROPIC_BASE_URL=api.url,
                ANTHROPIC_API_KEY="sk-local-stand-in",
                DISABLE_TELEMETRY="1",
                CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            )
            subprocess.run(
                [str(claude), "-p", "Run the checks.", "--allowedTools", "Bash"],
                cwd=root,
                env=env,
                capture_output=True,
                check=True,
                timeout=600,
            )
        times = measured.setdefault(way, {})
        for line in log.read_text().splitlines():
            event, nanoseconds = line.split()
            times.setdefault(event, []).append(int(nanoseconds) / 1e6)
    for way, times in measured.items():
        for event, samples in sorted(times.items(), reverse=True):
            noop = statistics.median(measured["no-op"][event])
            rows.append(row(f"real Claude Code, hook: {way}", event, samples, noop))


async def recorded_by_real_claude(url: str, expected: int) -> None:
    """Fail, not print, when the real client's hooks did not record their calls (a hook that
    failed open would look fast)."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(
            AGENT_EVENTS_STREAM.name, subjects_filter="agent.events.bench.>"
        )
        stored = sum((info.state.subjects or {}).values())
    finally:
        await nc.close()
    if stored < expected:
        raise SystemExit(f"the real Claude Code's hooks recorded {stored} of {expected} events")


async def in_process_path(
    url: str, runs: int, temp: Path, rows: list[str], label: str, kill: Callable[[], None] | None
) -> None:
    from yokeflow_agent.claude_sdk import ClaudeSdkHooks

    os.environ["YOKEFLOW_HOOK_STATE_DIR"] = str(temp / "state")
    async with ClaudeSdkHooks.open(url, "bench", workspace=temp / "shop") as hooks:
        if kill is not None:
            kill()
            await asyncio.sleep(0.5)
        session = hooks.session.session_id
        cases: list[tuple[str, str, Callable[[Any, str | None, Any], Awaitable[Any]]]] = [
            ("pre_tool_use", "PreToolUse", hooks.pre_tool_use),
            ("post_tool_use", "PostToolUse", hooks.post_tool_use),
            ("post_tool_use_failure", "PostToolUseFailure", hooks.post_tool_use),
        ]
        for name, event, hook in cases:
            samples = []
            for n in range(runs):
                data = payload(name, session, temp, n)
                start = time.perf_counter()
                await hook(data, f"t{n}", None)
                samples.append((time.perf_counter() - start) * 1000)
            rows.append(row("SDK in-process", f"{label}: {event}", samples, None))


async def main_async(args: argparse.Namespace) -> None:
    rows = [
        "| path | case | hooks | p50 ms (target: < 40 before a call, NATS up) | p99 ms | max ms "
        "| p50 / no-op Python |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="yokeflow-bench-") as name:
        temp = Path(name)
        (temp / "shop").mkdir()
        hooks = install_hook(temp / "venv")
        server = EmbeddedNats(temp / "nats").start(reuse=False)
        try:
            nc = await nats.connect(server.url)
            await provision(nc)
            await nc.close()
            env = {**os.environ, "NATS_URL": server.url, "DATABASE_URL": "unused"}
            detector = subprocess.Popen(
                product_command("services.detector"),
                env=env,
                cwd=ROOT,
                stdout=(temp / "detector.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            await asyncio.sleep(3)
            print(f"measuring the hook process ({args.runs} hooks a case) ...", file=sys.stderr)
            process_path(hooks, server.url, args.runs, temp, rows, "NATS up")
            client_paths(hooks, server.url, args.runs, temp, rows, "NATS up")
            print("measuring inside the real Claude Code ...", file=sys.stderr)
            real_claude(hooks, server.url, args.runs, temp, rows)
            await recorded_by_real_claude(server.url, 2 * 2 * args.runs)
            await in_process_path(server.url, args.runs * 5, temp, rows, "NATS up", None)
            down = f"nats://127.0.0.1:{free_port()}"
            process_path(hooks, down, args.runs, temp, rows, "NATS down")
            client_paths(hooks, down, args.runs, temp, rows, "NATS down")
            detector.kill()
            detector.wait()
            process_path(hooks, server.url, max(5, args.runs // 4), temp, rows, "detector down")
            await in_process_path(server.url, 5, temp, rows, "NATS lost mid-session", server.stop)
        finally:
            server.stop()
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40, help="hooks measured per case")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
