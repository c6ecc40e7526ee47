"""Agent transcripts as contract-v1 events, so `detect` can replay a user's own history.

Real sessions are recorded by the agents themselves, not by our hook: Claude Code writes one JSONL
file per session under `~/.claude/projects/<project>/`, OpenHands saves a trajectory (a JSON list
of actions and observations), runs are published as OpenAI chat exports, Gemini CLI streams JSON
records, and Harbor writes ATIF trajectories. Converting them into the events the hook would have
published lets an operator see, before trusting the detector, what it would have stopped in
sessions they know.
The functions here are pure (text in, events out); the only I/O is `read_transcript` reading the
file it is given. The mapping is documented in docs/architecture.md ("Replaying transcripts").
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from yokeflow_agent.contract import (
    AgentEvent,
    AgentMessage,
    ContractError,
    ErrorEvent,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolResult,
    ToolResultBody,
)

from .sessions import Clock, ReplayProblem, read_event_file

__all__ = [
    "FORMATS",
    "TranscriptFormat",
    "detect_format",
    "from_atif",
    "from_claude_code",
    "from_gemini_cli",
    "from_openai_chat",
    "from_openhands",
    "read_transcript",
]

TranscriptFormat = Literal[
    "events", "claude-code", "openhands", "openai-chat", "gemini-cli", "atif"
]
FORMATS: tuple[TranscriptFormat, ...] = (
    "events",
    "claude-code",
    "openhands",
    "openai-chat",
    "gemini-cli",
    "atif",
)

# Ids become NATS subject tokens: anything else is replaced.
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")
# Claude Code reports a failed Bash call as "Exit code N" (older versions: "Error: Exit code N")
# on the result's first line.
_EXIT_CODE = re.compile(r"^(?:Error: )?Exit code (-?\d+)")
# The same agents' results in a chat export: Claude Code's refusal of a call, and the exit line a
# Codex shell tool prints ("Process exited with code N").
_TOOL_USE_ERROR = "<tool_use_error>"
_PROCESS_EXIT = re.compile(r"^Process exited with code (-?\d+)$", re.MULTILINE)
# Reasoning an export kept as a reply's text: not something the agent said.
_THINKING_ONLY = re.compile(r"\A\s*<thinking>.*</thinking>\s*\Z", re.DOTALL)
# A chat export may carry no times at all: its events then share this clock, which does not move,
# so only the rules that count steps can judge it (a deterministic start keeps replays identical).
_NO_TIME = datetime(2000, 1, 1, tzinfo=UTC)
# Fields of an OpenHands action that describe the call rather than say what it does.
_OPENHANDS_NOISE = frozenset(
    "thought blocking is_input hidden confirmation_state security_risk is_static cwd "
    "kernel_init_code impl_source include_extra reason".split()
)
# A namespace for deterministic event ids: converting the same transcript twice gives the same
# ids, so a republished replay is deduplicated by JetStream like any re-sent event.
_NAMESPACE = uuid.UUID("0f3c2b6e-5a8d-4f51-9e0b-7c1d2a3b4c5d")


def _identifier(value: str, fallback: str) -> str:
    cleaned = _UNSAFE_ID.sub("-", value).strip("-")[:128]
    return cleaned or fallback


def _parse_ts(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _text_of(content: Any, kinds: tuple[str, ...] = ("text",)) -> str:
    """A tool result's or message's text: a string, or the blocks of a block list whose type
    is one of `kinds`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") in kinds
        ]
        return "\n".join(part for part in parts if part)
    return ""


class _Builder:
    """Numbers events in order and keeps their clock monotonic (the rules read event time)."""

    def __init__(self, project_id: str, session_id: str) -> None:
        self.project_id = project_id
        self.session_id = session_id
        self.seq = 0
        self.last_ts = datetime(1970, 1, 1, tzinfo=UTC)
        self.pending: dict[str, tuple[str, datetime]] = {}  # call id -> (tool, called at)

    def common(self, ts: datetime) -> dict[str, Any]:
        self.seq += 1
        self.last_ts = max(self.last_ts, ts)
        name = f"{self.project_id}/{self.session_id}/{self.seq}"
        return {
            "event_id": str(uuid.uuid5(_NAMESPACE, name)),
            "project_id": self.project_id,
            "session_id": self.session_id,
            "seq": self.seq,
            "ts": self.last_ts,
        }

    def call(self, ts: datetime, call_id: Any, tool: Any, tool_input: Any) -> ToolCall:
        """A tool call (an id made up where the format gives none), kept until its result
        names it, since results are paired with calls by id."""
        key = f"call-{self.seq + 1}" if call_id is None or call_id == "" else str(call_id)
        name = str(tool or "tool")
        self.pending[key] = (name, ts)
        data = tool_input if isinstance(tool_input, dict) else {}
        return ToolCall(**self.common(ts), tool=name, input=data, call_id=key)

    def answered(self, call_id: Any, ts: datetime) -> tuple[str, datetime]:
        """(tool, called at) of the call a result answers: ("", ts) for an unknown id."""
        return self.pending.pop("" if call_id is None else str(call_id), ("", ts))


def from_claude_code(
    records: Iterable[Mapping[str, Any]], project_id: str | None = None
) -> Iterator[AgentEvent]:
    """Events of one Claude Code session file (`~/.claude/projects/<project>/<session>.jsonl`).

    `assistant` records carry `text` blocks (a reply: `agent_message`) and `tool_use` blocks
    (`tool_call`, `call_id` = the block's id), or an API error Claude Code wrote as a reply
    (`isApiErrorMessage`: an `error` event); `user` records carry `tool_result` blocks
    (`tool_result`: ok unless `is_error`, the text as output or error, the exit code Claude Code
    prints for a failed command, the time since the call as duration). A human's prompt, thinking
    blocks and bookkeeping records (summaries, snapshots, attachments) are not agent events.
    The session id is `sessionId` (a subagent file is its own session: `agentId`), the project is
    the last part of `cwd` unless given. In a main session's file, records marked `isSidechain`
    are a subagent's (older versions wrote them there): they are its session, not this one's.
    """
    builder: _Builder | None = None
    main_session = True
    for record in records:
        kind = record.get("type")
        message = record.get("message")
        if kind not in ("user", "assistant") or not isinstance(message, dict):
            continue
        if builder is None:
            main_session = not record.get("isSidechain")
        elif main_session and record.get("isSidechain"):
            continue
        ts = _parse_ts(record.get("timestamp"), builder.last_ts if builder else datetime.now(UTC))
        if builder is None:
            cwd = str(record.get("cwd") or "")
            session = str(record.get("agentId") or record.get("sessionId") or "session")
            builder = _Builder(
                _identifier(project_id or Path(cwd).name, "claude-code"),
                _identifier(session, "session"),
            )
            yield SessionStarted(**builder.common(ts), workspace=cwd or None)
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            block_type = block.get("type")
            text_block = block_type == "text" and str(block.get("text", "")).strip()
            if kind == "assistant" and text_block and record.get("isApiErrorMessage"):
                # The API refused or failed the turn ("API Error: 529 ..."): Claude Code writes
                # it as a reply, but it is an error the session hit, not something the agent said.
                yield ErrorEvent(**builder.common(ts), message=str(block["text"]))
            elif kind == "assistant" and text_block:
                yield AgentMessage(**builder.common(ts), text=str(block["text"]))
            elif kind == "assistant" and block_type == "tool_use":
                yield builder.call(ts, block.get("id"), block.get("name"), block.get("input"))
            elif kind == "user" and block_type == "tool_result":
                call_id = str(block.get("tool_use_id") or "")
                name, started = builder.answered(call_id, ts)
                text = _text_of(block.get("content"))
                failed = bool(block.get("is_error"))
                exit_match = _EXIT_CODE.match(text) if failed else None
                yield ToolResult(
                    **builder.common(ts),
                    call_id=call_id or None,
                    tool=name or None,
                    result=ToolResultBody(
                        ok=not failed,
                        exit_code=int(exit_match.group(1))
                        if exit_match
                        else (0 if not failed else None),
                        output="" if failed else text,
                        error=text if failed else "",
                        duration_ms=max(0, int((ts - started) / timedelta(milliseconds=1))),
                    ),
                )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _openhands_input(event: Mapping[str, Any]) -> dict[str, Any]:
    args = event.get("args")
    if not isinstance(args, dict):
        return {}
    return {k: v for k, v in args.items() if k not in _OPENHANDS_NOISE and v not in ("", None)}


def from_openhands(
    events: Iterable[Mapping[str, Any]],
    project_id: str | None = None,
    session_id: str = "openhands",
) -> Iterator[AgentEvent]:
    """Events of an OpenHands trajectory (the saved list of actions and observations).

    An agent's action (`run`, `run_ipython`, `read`, `edit`, `browse`, ...) is a `tool_call`
    named after the action, with its `args` as input (minus bookkeeping such as `thought`); the
    observation it caused (`cause`, or else the oldest unanswered action) is its `tool_result`:
    ok unless it is an `error` observation or the command's `exit_code` is not 0, `content` as
    output. An agent `message` action is an `agent_message`, `finish` is `session_ended`; the
    user's messages, state changes and null observations are not agent events.
    """
    builder = _Builder(
        _identifier(project_id or "openhands", "openhands"), _identifier(session_id, "openhands")
    )
    started = False
    for event in events:
        ts = _parse_ts(event.get("timestamp"), builder.last_ts if started else datetime.now(UTC))
        if not started:
            started = True
            yield SessionStarted(**builder.common(ts))
        action = event.get("action")
        observation = event.get("observation")
        source = event.get("source", "agent")
        if action == "message":
            text = str((event.get("args") or {}).get("content", "") or event.get("message", ""))
            if source == "agent" and text.strip():
                yield AgentMessage(**builder.common(ts), text=text)
        elif action == "finish":
            yield SessionEnded(**builder.common(ts), reason="finish")
        elif isinstance(action, str) and action not in ("system", "change_agent_state", "recall"):
            call_id = event.get("id", f"oh-{builder.seq + 1}")
            yield builder.call(ts, call_id, action, _openhands_input(event))
        elif (
            isinstance(observation, str)
            and observation not in ("null", "agent_state_changed", "recall")
            and builder.pending
        ):
            cause = str(event.get("cause", ""))
            call_id = cause if cause in builder.pending else next(iter(builder.pending))
            name, called = builder.answered(call_id, ts)
            extras = _mapping(event.get("extras"))
            metadata = _mapping(extras.get("metadata"))
            exit_code = metadata.get("exit_code", extras.get("exit_code"))
            text = str(event.get("content", ""))
            failed = observation == "error" or (
                isinstance(exit_code, int) and exit_code not in (0, -1)
            )
            yield ToolResult(
                **builder.common(ts),
                call_id=call_id,
                tool=name,
                result=ToolResultBody(
                    ok=not failed,
                    exit_code=exit_code if isinstance(exit_code, int) else None,
                    output="" if failed else text,
                    error=text if failed else "",
                    duration_ms=max(0, int((ts - called) / timedelta(milliseconds=1))),
                ),
            )


_CHAT_BLOCKS = ("text", "tool_output")  # a chat message's blocks that carry its text


def _chat_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {}


def _chat_exit_code(message: Mapping[str, Any], text: str) -> int | None:
    code = _mapping(message.get("metadata")).get("exit_code")
    if isinstance(code, int):
        return code
    match = _EXIT_CODE.match(text) or _PROCESS_EXIT.search(text)
    return int(match.group(1)) if match else None


def from_openai_chat(
    export: Mapping[str, Any], project_id: str | None = None, session_id: str = "chat"
) -> Iterator[AgentEvent]:
    """Events of a session exported as OpenAI chat messages (`"format": "openai-chat"`).

    Several agents' runs are published this way (Claude Code's and Codex's among them): a
    `messages` list where an `assistant` message carries text (a reply: `agent_message`, unless it
    is only `<thinking>`) and `tool_calls` (`tool_call`: `function.name`, its JSON `arguments` as
    input, `id`), and a `tool` message answers `tool_call_id` (`tool_result`: failed when its
    `metadata.exit_code`, or the exit line the agent's shell printed, is not 0, or when it is a
    `<tool_use_error>`). Times come from `_metadata.timestamp` where the export kept them; the
    session id is the export's `task_id`, else the file's name. `user` and `system` messages are
    not the agent acting.
    """
    builder = _Builder(
        _identifier(project_id or "chat", "chat"),
        _identifier(str(export.get("task_id") or session_id), "chat"),
    )
    messages = export.get("messages")
    items = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    times = (_mapping(m.get("_metadata")).get("timestamp") for m in items)
    yield SessionStarted(**builder.common(_parse_ts(next(filter(None, times), None), _NO_TIME)))
    for message in items:
        ts = _parse_ts(_mapping(message.get("_metadata")).get("timestamp"), builder.last_ts)
        role = message.get("role")
        if role == "assistant":
            text = _text_of(message.get("content"), _CHAT_BLOCKS)
            if text.strip() and not _THINKING_ONLY.match(text):
                yield AgentMessage(**builder.common(ts), text=text)
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                function = _mapping(_mapping(call).get("function"))
                yield builder.call(
                    ts,
                    _mapping(call).get("id"),
                    function.get("name"),
                    _chat_arguments(function.get("arguments")),
                )
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            name, called = builder.answered(call_id, ts)
            text = _text_of(message.get("content"), _CHAT_BLOCKS)
            code = _chat_exit_code(message, text)
            failed = text.lstrip().startswith(_TOOL_USE_ERROR) or (code is not None and code != 0)
            seconds = _mapping(message.get("metadata")).get("duration_seconds")
            duration = (
                int(seconds * 1000)
                if isinstance(seconds, int | float)
                else int((ts - called) / timedelta(milliseconds=1))
            )
            yield ToolResult(
                **builder.common(ts),
                call_id=call_id or None,
                tool=name or None,
                result=ToolResultBody(
                    ok=not failed,
                    exit_code=code if code is not None else (None if failed else 0),
                    output="" if failed else text,
                    error=text if failed else "",
                    duration_ms=max(0, duration),
                ),
            )


def from_gemini_cli(
    records: Iterable[Mapping[str, Any]], project_id: str | None = None, session_id: str = "gemini"
) -> Iterator[AgentEvent]:
    """Events of a Gemini CLI session recorded with `--output-format stream-json`.

    `tool_use` is a `tool_call` (`tool_name`, `parameters`, `tool_id`); `tool_result` answers
    `tool_id` (ok when `status` is `success`; `output`, or the `error` message when it failed); an
    `assistant` `message` is an `agent_message` (consecutive `delta` chunks are one reply); an
    `error` record is an `error` event and `result` is `session_ended` with its `status`. The
    session id is `init`'s `session_id`, else the file's name; a user's message is not the agent.
    """
    builder = _Builder(
        _identifier(project_id or "gemini", "gemini"), _identifier(session_id, "gemini")
    )
    started = False
    reply: list[str] = []
    reply_ts = _NO_TIME

    def flush() -> Iterator[AgentEvent]:
        text = "".join(reply)
        reply.clear()
        if text.strip():
            yield AgentMessage(**builder.common(reply_ts), text=text)

    for record in records:
        kind = record.get("type")
        ts = _parse_ts(record.get("timestamp"), builder.last_ts if started else _NO_TIME)
        if not started:
            if kind == "init" and record.get("session_id"):
                builder.session_id = _identifier(str(record["session_id"]), "gemini")
            if kind not in ("init", "tool_use", "tool_result", "message", "error", "result"):
                continue
            if kind == "message" and record.get("role") != "assistant":
                continue
            started = True
            yield SessionStarted(**builder.common(ts))
        if kind == "message" and record.get("role") == "assistant":
            if not reply:
                reply_ts = ts
            reply.append(str(record.get("content") or ""))
            if not record.get("delta"):
                yield from flush()
            continue
        yield from flush()
        if kind == "tool_use":
            yield builder.call(
                ts, record.get("tool_id"), record.get("tool_name"), record.get("parameters")
            )
        elif kind == "tool_result":
            call_id = str(record.get("tool_id") or "")
            name, called = builder.answered(call_id, ts)
            failed = record.get("status") != "success"
            text = str(record.get("output") or "")
            if failed:
                text = str(_mapping(record.get("error")).get("message") or text)
            yield ToolResult(
                **builder.common(ts),
                call_id=call_id or None,
                tool=name or None,
                result=ToolResultBody(
                    ok=not failed,
                    exit_code=None if failed else 0,
                    output="" if failed else text,
                    error=text if failed else "",
                    duration_ms=max(0, int((ts - called) / timedelta(milliseconds=1))),
                ),
            )
        elif kind == "error":
            yield ErrorEvent(**builder.common(ts), message=str(record.get("message") or "error"))
        elif kind == "result":
            yield SessionEnded(**builder.common(ts), reason=str(record.get("status") or "result"))
    yield from flush()


def _atif_calls(
    calls: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, dict[str, Any], str]]:
    """A step's calls paired with their results: (call id, tool, input, output).

    Results name their call (`source_call_id`) or come one per call in order. An agent that
    sends several commands to one terminal gets one result for all of them: the step is then one
    call (its commands as input), since which output belongs to which command is not known.
    """
    texts = [str(result.get("content") or "") for result in results]
    named = {
        str(result["source_call_id"]): text
        for result, text in zip(results, texts, strict=True)
        if result.get("source_call_id")
    }
    paired: list[tuple[str, str, dict[str, Any]]] = []
    for index, call in enumerate(calls):
        arguments = call.get("arguments")
        paired.append(
            (
                str(call.get("tool_call_id") or f"call-{index + 1}"),
                str(call.get("function_name") or "tool"),
                arguments if isinstance(arguments, dict) else _chat_arguments(arguments),
            )
        )
    if named:
        return [(cid, name, args, named.get(cid, "")) for cid, name, args in paired]
    if len(texts) == len(paired):
        return [(*call, text) for call, text in zip(paired, texts, strict=True)]
    if not paired:
        return []
    merged = {"calls": [{"tool": name, **args} for _, name, args in paired]}
    tool = "+".join(sorted({name for _, name, _ in paired}))
    return [(paired[0][0], tool, merged, "\n".join(texts))]


def from_atif(
    trajectory: Mapping[str, Any], project_id: str | None = None, session_id: str = "atif"
) -> Iterator[AgentEvent]:
    """Events of an Agent Trajectory Interchange Format file (`"schema_version": "ATIF-v1.x"`).

    Harbor writes its agents' runs this way (Terminus, and Claude Code, Codex and others when run
    through it): `steps`, each from the `user`, the `system` or the `agent`. An agent step's
    `message` is an `agent_message`, each of its `tool_calls` a `tool_call` (`function_name`,
    `arguments`, `tool_call_id`) and its `observation.results` their `tool_result`s (see
    `_atif_calls` for a step whose one result answers several commands). ATIF records no exit
    status: a result is ok, its content the output, at the step's `timestamp`.
    """
    builder = _Builder(
        _identifier(project_id or "atif", "atif"),
        _identifier(str(trajectory.get("session_id") or session_id), "atif"),
    )
    steps = trajectory.get("steps")
    items = [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []
    first = next((s.get("timestamp") for s in items if s.get("timestamp")), None)
    yield SessionStarted(**builder.common(_parse_ts(first, _NO_TIME)))
    for step in items:
        if step.get("source") != "agent":
            continue
        ts = _parse_ts(step.get("timestamp"), builder.last_ts)
        text = str(step.get("message") or "")
        if text.strip():
            yield AgentMessage(**builder.common(ts), text=text)
        calls = [c for c in step.get("tool_calls") or [] if isinstance(c, dict)]
        results = _mapping(step.get("observation")).get("results")
        outputs = [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
        for call_id, name, tool_input, output in _atif_calls(calls, outputs):
            yield ToolCall(**builder.common(ts), tool=name, input=tool_input, call_id=call_id)
            yield ToolResult(
                **builder.common(ts),
                call_id=call_id,
                tool=name,
                result=ToolResultBody(ok=True, exit_code=None, output=output, duration_ms=0),
            )


def detect_format(first_line: str) -> TranscriptFormat:
    """Which format a file is, from its first non-blank line."""
    stripped = first_line.lstrip()
    if stripped.startswith("["):
        return "openhands"
    try:
        record = json.loads(stripped)
    except ValueError:
        return "events"
    if isinstance(record, dict):
        if "v" in record and "seq" in record:
            return "events"
        if str(record.get("schema_version", "")).startswith("ATIF"):
            return "atif"
        if record.get("format") == "openai-chat" or "messages" in record:
            return "openai-chat"
        if "history" in record or "action" in record or "observation" in record:
            return "openhands"
        if "sessionId" in record or "parentUuid" in record or "leafUuid" in record:
            return "claude-code"
        kind = record.get("type")
        if kind in ("init", "tool_use", "tool_result") or (kind == "message" and "role" in record):
            return "gemini-cli"
    return "events"


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def read_transcript(
    path: Path, fmt: TranscriptFormat | None = None, project_id: str | None = None
) -> Iterator[AgentEvent | Clock | ReplayProblem]:
    """The events of a file of contract events (with its clock lines) or of an agent transcript
    (auto-detected)."""
    if fmt is None:
        with path.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        fmt = detect_format(first)
        if first.strip() == "{":
            # A pretty-printed JSON document: its first line says nothing, its head does.
            head = path.read_text(encoding="utf-8")[:4096]
            if re.search(r'"format":\s*"openai-chat"', head):
                fmt = "openai-chat"
            elif re.search(r'"schema_version":\s*"ATIF', head):
                fmt = "atif"
    if fmt == "events":
        yield from read_event_file(path)
        return
    text = path.read_text(encoding="utf-8")
    try:
        if fmt == "claude-code":
            yield from from_claude_code(_json_lines(text), project_id)
            return
        if fmt == "atif":
            yield from from_atif(_mapping(json.loads(text)), project_id, path.stem)
            return
        if fmt == "gemini-cli":
            yield from from_gemini_cli(_json_lines(text), project_id, path.stem)
            return
        if fmt == "openai-chat":
            yield from from_openai_chat(_mapping(json.loads(text)), project_id, path.stem)
            return
        stripped = text.lstrip()
        if stripped.startswith("["):
            loaded = json.loads(stripped)
        else:
            first_record = next(_json_lines(text), {})
            loaded = first_record.get("history", list(_json_lines(text)))
        items = (
            [item for item in loaded if isinstance(item, dict)] if isinstance(loaded, list) else []
        )
        yield from from_openhands(items, project_id, path.stem)
    except (ValueError, ContractError) as exc:
        yield ReplayProblem(0, f"cannot read the file as {fmt}: {exc}")
