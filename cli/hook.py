"""`yokeflow-intervention hook`: the Claude Code hooks adapter.

Claude Code runs one process per hook, so the session's `seq` and its call ids live in a small
state file under the data folder, guarded by a file lock. The adapter fails open: on any error
of its own (NATS unreachable, a bad configuration) it lets the agent work (exit 0) and says why
in a `systemMessage`, which Claude Code shows the user (stderr of an exit-0 hook is not shown),
because an outage of the watcher must never stop the watched.

The project is the stable project root (`CLAUDE_PROJECT_DIR`), not the hook's `cwd`, which
follows the agent's `cd`.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nats.js.errors import KeyNotFoundError
from yokeflow_agent.client import CONTEXT_ENV, AgentSession, SessionPaused, connect
from yokeflow_agent.contract import CONTROL_BUCKET, ControlKeys, InterventionResumed

from yokeflow_intervention.shared.runtime import ServiceContext
from yokeflow_intervention.shared.settings import Settings

__all__ = ["BLOCK_EXIT_CODE", "fail_open", "run_hook"]

BLOCK_EXIT_CODE = 2  # Claude Code blocks the tool call and shows stderr to the model
_OUTPUT_LIMIT = 4000


def _identifier(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-")
    return cleaned[:128] or "unknown"


_EXIT_CODE = re.compile(r"\AExit code (\d+)\n?")


def failure_of(error: Any) -> tuple[int, str]:
    """(exit code, root cause) of a failed call: Claude Code reports a failing Bash call as
    "Exit code N\n<stderr>"; anything else is exit code 1 with the text as it is."""
    text = _text(error or "tool failed")
    match = _EXIT_CODE.match(text)
    if match is None:
        return 1, text
    return int(match.group(1)), text[match.end() :].strip() or text


def last_reply(payload: dict[str, Any], tail_bytes: int = 256 * 1024) -> str:
    """The text of the agent's last turn: `last_assistant_message` where Claude Code sends it,
    else the assistant text entries after the last user entry of the transcript (JSONL)."""
    given = payload.get("last_assistant_message")
    if isinstance(given, str):
        return given[:_OUTPUT_LIMIT]
    path = Path(str(payload.get("transcript_path") or ""))
    try:
        with path.open("rb") as transcript:
            transcript.seek(max(transcript.seek(0, os.SEEK_END) - tail_bytes, 0))
            lines = transcript.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    texts: list[str] = []
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("type") == "user":
            break
        content = (
            (entry.get("message") or {}).get("content")
            if entry.get("type") == "assistant"
            else None
        )
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                b.get("text", "")
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            ]
    return "\n".join(reversed(texts)).strip()[:_OUTPUT_LIMIT]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:_OUTPUT_LIMIT]
    return json.dumps(value, default=str)[:_OUTPUT_LIMIT]


@contextmanager
def _session_state(folder: Path, session_id: str) -> Iterator[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{session_id}.json"
    with (folder / f"{session_id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {"next_seq": 1}
        yield state
        if state.get("ended"):  # SessionEnd: the session's state goes with it
            path.unlink(missing_ok=True)
        else:
            path.write_text(json.dumps(state))


async def _resume_brief(session: AgentSession, delivered: set[str]) -> InterventionResumed | None:
    """The brief for a session that continues after a resume: from the orchestrator's file,
    or the latest one the pauser left for this project (taken once)."""
    context_file = os.environ.get(CONTEXT_ENV)
    resumed_from = os.environ.get("YOKEFLOW_RESUMED_FROM")
    if context_file and resumed_from and Path(context_file).is_file():
        text = Path(context_file).read_text(encoding="utf-8")
        return InterventionResumed.model_validate(
            {
                "intervention_id": resumed_from,
                "project_id": session.project_id,
                "session_id": session.session_id,
                "resolved_by": "",
                "resolved_at": "1970-01-01T00:00:00Z",
                "resume_context": text,
            }
        )
    kv = await session.nc.jetstream().key_value(CONTROL_BUCKET)
    try:
        entry = await kv.get(ControlKeys.brief(session.project_id))
    except KeyNotFoundError:
        return None
    brief = InterventionResumed.model_validate_json(entry.value or b"{}")
    # Taken once: an agent may only read the bucket, so delivery is remembered on this side.
    if brief.intervention_id in delivered:
        return None
    delivered.add(brief.intervention_id)
    return brief


async def _handle(payload: dict[str, Any], settings: Settings) -> tuple[int, str, str]:
    """Return (exit code, stdout, stderr) for one hook invocation."""
    event = payload.get("hook_event_name", "")
    session_id = _identifier(str(payload.get("session_id", "")))
    root = Path(os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd") or os.getcwd())
    project_id = _identifier(os.environ.get("YOKEFLOW_PROJECT_ID") or root.name)
    context = ServiceContext("hook", settings)
    nc = await connect(context.nats_url, project_id, max_reconnect_attempts=1)
    try:
        hooks = settings.data_dir.resolve() / "hooks"
        with _session_state(hooks, session_id) as state:
            session = AgentSession(
                nc, project_id, session_id, workspace=root, next_seq=state["next_seq"]
            )
            try:
                return await _dispatch(
                    event, payload, session, state, hooks / f"briefs-{project_id}.json"
                )
            finally:
                state["next_seq"] = session.next_seq
    finally:
        await nc.close()


async def _dispatch(
    event: str,
    payload: dict[str, Any],
    session: AgentSession,
    state: dict[str, Any],
    briefs_delivered: Path,
) -> tuple[int, str, str]:
    tool = str(payload.get("tool_name") or "tool")
    call_id = str(payload.get("tool_use_id") or f"call-{session.next_seq}")
    if event == "PreToolUse":
        try:
            await session.raise_if_paused()
            await session.announce_call(tool, payload.get("tool_input") or {}, call_id)
        except SessionPaused as paused:
            if state.get("blocker_written") != paused.control.intervention_id:
                session.write_blocker(paused)
                state["blocker_written"] = paused.control.intervention_id
            return (
                BLOCK_EXIT_CODE,
                "",
                f"YokeFlow intervention: {paused}. Stop and wait for a human.",
            )
    elif event == "PostToolUseFailure" and payload.get("is_interrupt"):
        pass  # the user interrupted the call: not a failure of the tool
    elif event in ("PostToolUse", "PostToolUseFailure"):
        ok = event == "PostToolUse"
        response = payload.get("tool_response")
        exit_code, error = (0, "") if ok else failure_of(payload.get("error") or response)
        duration = payload.get("duration_ms")
        await session.tool_result(
            call_id,
            tool,
            ok=ok,
            output=_text(response) if ok and response is not None else "",
            error=error,
            exit_code=exit_code,
            duration_ms=duration if isinstance(duration, int) and duration >= 0 else None,
        )
    elif event == "SessionStart" and payload.get("source") in ("compact", "clear"):
        pass  # the same session goes on: no new start, and the brief is not taken here
    elif event == "SessionStart":
        delivered = (
            set(json.loads(briefs_delivered.read_text())) if briefs_delivered.exists() else set()
        )
        brief = await _resume_brief(session, delivered)
        briefs_delivered.write_text(json.dumps(sorted(delivered)))
        await session.start(resumed_from=brief.intervention_id if brief else None)
        if brief is not None:
            output = {"hookSpecificOutput": {"hookEventName": "SessionStart",
                                             "additionalContext": brief.resume_context}}  # fmt: skip
            return 0, json.dumps(output), ""
    elif event == "Stop":  # the agent finished a turn: what it said, for the text-turn rules
        await session.message(last_reply(payload))
    elif event == "SessionEnd":
        await session.end(str(payload.get("reason") or "completed"))
        state["ended"] = True
    return 0, "", ""


def fail_open(problem: str) -> int:
    """Let the agent work, and tell the user why nothing was recorded."""
    message = f"YokeFlow Intervention hook: not recorded: {problem}"
    print(json.dumps({"systemMessage": message[:1000]}))
    print(message, file=sys.stderr)
    return 0


def run_hook(settings: Settings, stdin: str) -> int:
    try:
        payload = json.loads(stdin)
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        return fail_open(f"bad hook input: {exc}")
    try:
        code, out, err = asyncio.run(_handle(payload, settings))
    except (Exception, SystemExit) as exc:  # fail open, and say why
        return fail_open(repr(exc))
    if out:
        print(out)
    if err:
        print(err, file=sys.stderr)
    return code
