"""In-process hooks for the Claude Agent SDK (`pip install 'yokeflow-agent[claude-sdk]'`).

The SDK runs hooks as Python callbacks in the agent's own process, so there is no process per
tool call: one `AgentSession` holds one NATS connection for the whole session, a hook costs a
KV read, a publish and the detector's verdict (milliseconds), and the guarantee is the same as
the Claude Code hook's: a call that trips a rule (the 4th identical failing call) is refused
before it runs and the session halts.

    async with ClaudeSdkHooks.open(url, "shop", workspace=Path.cwd()) as watch:
        async with ClaudeSDKClient(watch.options(allowed_tools=["Bash"])) as client:
            await client.query("Fix the failing build")
            async for message in client.receive_response(): ...

`open` publishes `session_started` and takes the project's resume brief once, `options()`
wires the hooks, gives the CLI this session's id (so hooks and events name one session) and
puts the brief into the system prompt, and leaving the block publishes `session_ended`.
Like the hook adapter it fails open: an error of its own lets the agent work and shows the
user why (`systemMessage`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

try:
    from claude_agent_sdk import ClaudeAgentOptions, HookContext, HookMatcher
    from claude_agent_sdk.types import HookInput, HookJSONOutput, SystemPromptPreset
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "yokeflow_agent.claude_sdk needs the Claude Agent SDK: "
        "pip install 'yokeflow-agent[claude-sdk]'"
    ) from exc
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError

from .claude_code import failure_of, last_reply, waiting_of
from .client import AgentSession, SessionPaused, connect
from .contract import CONTROL_BUCKET, ControlKeys, InterventionResumed, Task, Verdict
from .events import PROGRESS_FILE, blocker_entry
from .hooks import HookConfig, HookState
from .names import CONTEXT_ENV, RESUMED_FROM_ENV

__all__ = ["ClaudeSdkHooks"]

log = logging.getLogger(__name__)
_Output = dict[str, Any]


def _out(output: _Output) -> HookJSONOutput:
    return cast("HookJSONOutput", output)


class ClaudeSdkHooks:
    """One agent session's hooks for the Claude Agent SDK, over one NATS connection.

    Every hook finishes within `budget` seconds (0.9), whatever NATS does: past it, the agent
    works on and the user is told why."""

    def __init__(
        self, session: AgentSession, owns_connection: bool = False, budget: float = 0.9
    ) -> None:
        self.session = session
        self.budget = budget
        self.brief: str | None = None
        self._owns_connection = owns_connection
        self._blockers: set[str] = set()

    @classmethod
    def open(
        cls,
        url: str,
        project_id: str,
        workspace: Path,
        task: Task | None = None,
        session_id: str | None = None,
    ) -> _Opening:
        """Connect as an agent of `project_id` (its URL from `agents add`); use with
        `async with`."""
        return _Opening(cls, url, project_id, workspace, task, session_id)

    # -- the session around the client -------------------------------------------------------

    async def begin(self) -> str | None:
        """Publish session_started; return the resume brief this session continues with."""
        resumed_from, self.brief = await self._take_brief()
        await self.session.start(resumed_from=resumed_from)
        return self.brief

    async def finish(self, reason: str = "completed") -> None:
        try:
            await asyncio.wait_for(
                self.session.end("paused" if self._blockers else reason), self.budget
            )
        except (NatsError, OSError, TimeoutError) as exc:  # the agent's work is done anyway
            log.warning("YokeFlow: session end not recorded: %r", exc)
        finally:
            if self._owns_connection:
                await self.session.nc.close()

    async def _take_brief(self) -> tuple[str | None, str | None]:
        context_file, resumed_from = os.environ.get(CONTEXT_ENV), os.environ.get(RESUMED_FROM_ENV)
        if context_file and resumed_from and Path(context_file).is_file():
            return resumed_from, Path(context_file).read_text(encoding="utf-8")
        try:
            kv = await self.session.nc.jetstream().key_value(CONTROL_BUCKET)
            entry = await kv.get(ControlKeys.brief(self.session.project_id))
        except KeyNotFoundError:
            return None, None
        brief = InterventionResumed.model_validate_json(entry.value or b"{}")
        state = HookState(HookConfig().state_dir, self.session.project_id, "sdk")
        if not state.first_time("delivered", brief.intervention_id, state.briefs):
            return None, None  # delivered to an earlier session already
        return brief.intervention_id, brief.resume_context

    def options(self, base: ClaudeAgentOptions | None = None, **fields: Any) -> ClaudeAgentOptions:
        """`base` (or a new ClaudeAgentOptions(**fields)) with these hooks added, this session's
        id, and the resume brief appended to the system prompt."""
        options = base if base is not None else ClaudeAgentOptions(**fields)
        hooks: dict[Any, list[HookMatcher]] = {k: list(v) for k, v in (options.hooks or {}).items()}
        for event, callback in (
            ("PreToolUse", self.pre_tool_use),
            ("PostToolUse", self.post_tool_use),
            ("PostToolUseFailure", self.post_tool_use),
            ("Stop", self.stop),
            ("PermissionRequest", self.waiting),
            ("Notification", self.waiting),
        ):
            hooks.setdefault(event, []).append(HookMatcher(matcher=None, hooks=[callback]))
        system_prompt = options.system_prompt
        if self.brief:
            if isinstance(system_prompt, str):
                system_prompt = f"{system_prompt}\n\n{self.brief}"
            elif system_prompt is None:
                system_prompt = SystemPromptPreset(
                    type="preset", preset="claude_code", append=self.brief
                )
            elif system_prompt.get("type") == "preset":
                preset = cast("dict[str, Any]", dict(system_prompt))
                append = preset.get("append")
                preset["append"] = f"{append}\n\n{self.brief}" if append else self.brief
                system_prompt = cast("SystemPromptPreset", preset)
        return replace(
            options, hooks=hooks, session_id=self.session.session_id, system_prompt=system_prompt
        )

    # -- the hooks ---------------------------------------------------------------------------

    def _halt(self, paused: SessionPaused, event: str) -> _Output:
        control = paused.control
        if control.intervention_id not in self._blockers and self.session.workspace is not None:
            self._blockers.add(str(control.intervention_id))
            path = self.session.workspace / PROGRESS_FILE
            entry = blocker_entry(
                self.session.session_id, control.model_dump(mode="json"), datetime.now(UTC)
            )
            with path.open("a", encoding="utf-8") as progress:
                progress.write("\n" + entry)
        reason = (
            f"YokeFlow intervention: {paused}. Stop and wait for a human; the blocker is "
            f"recorded in {PROGRESS_FILE}."
        )
        output: _Output = {"continue_": False, "stopReason": reason}
        if event == "PreToolUse":
            output["hookSpecificOutput"] = {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        return output

    @staticmethod
    def _said(verdict: Verdict | None, event: str) -> _Output:
        if verdict is not None and verdict.decision == "warn" and verdict.warning:
            return {
                "hookSpecificOutput": {"hookEventName": event, "additionalContext": verdict.warning}
            }
        return {}

    @staticmethod
    def _fail_open(exc: BaseException) -> _Output:
        log.warning("YokeFlow hook not recorded: %r", exc)
        return {"systemMessage": f"YokeFlow Intervention hook: not recorded: {exc!r}"[:1000]}

    async def _bounded(self, work: Awaitable[_Output]) -> HookJSONOutput:
        try:
            return _out(await asyncio.wait_for(work, self.budget))
        except (NatsError, OSError, TimeoutError) as exc:
            return _out(self._fail_open(exc))

    async def pre_tool_use(
        self, given: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        return await self._bounded(self._pre_tool_use(dict(given), tool_use_id))

    async def post_tool_use(
        self, given: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        return await self._bounded(self._post_tool_use(dict(given), tool_use_id))

    async def stop(
        self, given: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        return await self._bounded(self._stop(dict(given)))

    async def waiting(
        self, given: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """A permission dialog, or a notice that the agent waits for its user: the session
        waits for a person. No decision is given: the person decides."""
        return await self._bounded(self._waiting(dict(given)))

    async def _waiting(self, data: _Output) -> _Output:
        fields = waiting_of(data)
        if fields is not None:
            await self.session.waiting(**fields)
        return {}

    async def _pre_tool_use(self, data: _Output, tool_use_id: str | None) -> _Output:
        tool_input = data.get("tool_input")
        try:
            await self.session.raise_if_paused()
            verdict = await self.session.announce_call(
                str(data.get("tool_name") or "tool"),
                tool_input if isinstance(tool_input, dict) else {},
                str(tool_use_id or data.get("tool_use_id") or uuid.uuid4()),
            )
        except SessionPaused as paused:
            return self._halt(paused, "PreToolUse")
        return self._said(verdict, "PreToolUse")

    async def _post_tool_use(self, data: _Output, tool_use_id: str | None) -> _Output:
        event = str(data.get("hook_event_name") or "PostToolUse")
        if event == "PostToolUseFailure" and data.get("is_interrupt"):
            return {}  # the user interrupted the call: not a failure of the tool
        ok = event == "PostToolUse"
        response = data.get("tool_response")
        exit_code, error = (0, "") if ok else failure_of(data.get("error") or response)
        output = (
            ""
            if not ok or response is None
            else (response if isinstance(response, str) else json.dumps(response, default=str))
        )
        duration = data.get("duration_ms")
        verdict = await self.session.tool_result(
            str(tool_use_id or data.get("tool_use_id") or ""),
            str(data.get("tool_name") or "tool"),
            ok=ok,
            output=output[:4000],
            error=error,
            exit_code=exit_code,
            duration_ms=duration if isinstance(duration, int) and duration >= 0 else None,
            hear=True,
        )
        if verdict is not None and verdict.decision == "stop" and verdict.control is not None:
            return self._halt(SessionPaused(verdict.control), event)
        return self._said(verdict, event)

    async def _stop(self, data: _Output) -> _Output:
        await self.session.message(last_reply(data))
        return {}


class _Opening:
    """`async with ClaudeSdkHooks.open(...) as hooks`: connected, started, then ended."""

    def __init__(
        self,
        kind: type[ClaudeSdkHooks],
        url: str,
        project_id: str,
        workspace: Path,
        task: Task | None,
        session_id: str | None,
    ) -> None:
        self._args = (kind, url, project_id, workspace, task, session_id)
        self._hooks: ClaudeSdkHooks | None = None

    async def __aenter__(self) -> ClaudeSdkHooks:
        kind, url, project_id, workspace, task, session_id = self._args
        nc: Client = await connect(url, project_id)
        # A publish retries only within a hook's budget: a hook never waits out an outage.
        session = AgentSession(
            nc,
            project_id,
            session_id or str(uuid.uuid4()),
            workspace=Path(workspace),
            task=task,
            publish_deadline=0.5,
            publish_timeout=0.25,
        )
        self._hooks = kind(session, owns_connection=True)
        try:
            await self._hooks.begin()
        except BaseException:
            await nc.close()
            raise
        return self._hooks

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._hooks is not None
        await self._hooks.finish("completed" if error is None else "error")
