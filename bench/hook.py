"""Hook figures (not a test): what watching costs an agent CLI's tool call.

Both paths, on the embedded NATS with the detector running, payloads captured from the real
Claude Code (tests/fixtures/hooks):

- the hook process, `yokeflow-hook`, one process per hook as Claude Code runs it, from a copy
  installed as a user installs it (`pip install ./agent` into a fresh venv: compiled, no
  editable-install finders on the import path), against a no-op Python hook (`python -c`
  reading stdin) of that venv measured in the same run: the ratio is what the adapter adds to
  Python's own start;
- the Agent SDK's in-process hooks (`ClaudeSdkHooks` callbacks), one connection per session;
- the same hook process for the other clients (`--client gemini|codex|copilot`), with their
  payloads as the real clients send them (see `CLIENT_PAYLOADS`): the call hook and the result
  hook of each.

Cases: NATS up; NATS down (a refused port); the detector down (NATS up, no verdict comes: the
verdict deadline bounds the wait).

Usage: python bench/hook.py [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.embedded import EmbeddedNats  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "hooks"


def install_hook(venv: Path) -> tuple[Path, list[str]]:
    """`yokeflow-hook` and a no-op hook, both from a fresh venv holding only the agent package
    (the hook imports nothing else; `--no-deps` keeps the install offline but the build)."""
    print("installing the agent package into a fresh venv ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        str(ROOT / "agent"),
    ]
    subprocess.run(pip, check=True)
    python = str(venv / "bin" / "python")
    return venv / "bin" / "yokeflow-hook", [python, "-c", "import sys; sys.stdin.read()"]


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


# (client, its call hook, its result hook, the payload of each), as the real clients send them
# (Claude Code's captured in tests/fixtures/hooks; Gemini CLI 0.61, Codex CLI 0.171, Copilot
# CLI 1.0.102).
CLIENT_PAYLOADS: list[tuple[str, str, str, Callable[[str, str, Path, int], dict[str, Any]]]] = [
    ("claude", "PreToolUse", "PostToolUse", _claude),
    ("gemini", "BeforeTool", "AfterTool", _gemini),
    ("codex", "PreToolUse", "PostToolUse", _codex),
    ("copilot", "preToolUse", "postToolUse", _copilot),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(path: str, case: str, samples: list[float], baseline: float | None) -> str:
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    ratio = f"{p50 / baseline:.2f}" if baseline else "1.00"
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


def process_path(
    hook: Path, url: str, runs: int, temp: Path, rows: list[str], baseline: float, label: str
) -> None:
    env = {
        **os.environ,
        "NATS_URL": url,
        "YOKEFLOW_HOOK_STATE_DIR": str(temp / "state"),
        "CLAUDE_PROJECT_DIR": str(temp / "shop"),
    }
    session = uuid.uuid4().hex
    for name, event in (
        ("session_start", "SessionStart"),
        ("pre_tool_use", "PreToolUse"),
        ("post_tool_use", "PostToolUse"),
        ("post_tool_use_failure", "PostToolUseFailure"),
    ):
        count = runs if name != "session_start" else max(5, runs // 4)
        samples = [
            time_process([str(hook)], json.dumps(payload(name, session, temp, n)), env)
            for n in range(count)
        ]
        rows.append(row("hook process", f"{label}: {event}", samples, baseline))


def client_paths(
    hook: Path, noop: list[str], url: str, runs: int, temp: Path, rows: list[str], label: str
) -> None:
    """The hook process as each client runs it: `--client NAME` (and Copilot's `--event`),
    settings in the environment as `agents connect` gives them. Each hook is timed right after
    a no-op hook on the same input, and the ratio is to those no-op hooks: on a shared, loaded
    machine a baseline taken minutes earlier says little."""
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
            command = [str(hook), "--client", name, "--event", event]
            samples, noops = [], []
            for n in range(runs):
                stdin = json.dumps(build(event, session, temp / "shop", n))
                noops.append(time_process(noop, stdin, env))
                samples.append(time_process(command, stdin, env))
            rows.append(row(f"{name} hook", f"{label}: {event}", samples, statistics.median(noops)))


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
        "| path | case | hooks | p50 ms | p99 ms | max ms | p50 / no-op Python |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="yokeflow-bench-") as name:
        temp = Path(name)
        (temp / "shop").mkdir()
        hook, noop_hook = install_hook(temp / "venv")
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
            stdin = json.dumps(payload("pre_tool_use", "s", temp, 0))
            noop = [time_process(noop_hook, stdin, dict(os.environ)) for _ in range(args.runs)]
            baseline = statistics.median(noop)
            rows.append(row("no-op Python hook", "baseline", noop, baseline))
            print(f"measuring the hook process ({args.runs} hooks a case) ...", file=sys.stderr)
            process_path(hook, server.url, args.runs, temp, rows, baseline, "NATS up")
            client_paths(hook, noop_hook, server.url, args.runs, temp, rows, "NATS up")
            await in_process_path(server.url, args.runs * 5, temp, rows, "NATS up", None)
            down = f"nats://127.0.0.1:{free_port()}"
            process_path(hook, down, args.runs, temp, rows, baseline, "NATS down")
            client_paths(hook, noop_hook, down, args.runs, temp, rows, "NATS down")
            detector.kill()
            detector.wait()
            process_path(
                hook, server.url, max(5, args.runs // 4), temp, rows, baseline, "detector down"
            )
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
