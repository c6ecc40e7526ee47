"""The Claude Code hooks adapter: `yokeflow-hook` (also `yokeflow-intervention hook`).

Claude Code starts this program for every hook, so it is built to cost milliseconds: plain
Python only (no pydantic, no nats-py, no asyncio), one NATS connection per hook through the
small client in `wire`, and no fixed wait. Before a tool call runs, the hook announces it and
waits for the detector's verdict on that very call (`agent.verdicts.<project>.<session>`), up to
`YOKEFLOW_VERDICT_TIMEOUT`: the 4th identical failing call is refused before it runs, and a
healthy call goes on as soon as the detector has looked at it (a few milliseconds).

It fails open: on any error of its own (NATS unreachable, streams missing, a bad setting) it
lets the agent work (exit 0) and says why in a `systemMessage`, which Claude Code shows the
user, because an outage of the watcher must never stop the watched. Every step runs under one
deadline (`YOKEFLOW_HOOK_BUDGET`, 0.9 s), so no hook takes longer than that.

On a pause it blocks the call and halts the session, as Claude Code documents it (exit 0 with
`continue: false` and a `deny` decision), and writes the blocker entry to `claude-progress.md`
at the project root. The project is the stable root (`CLAUDE_PROJECT_DIR`), never the folder
the agent `cd`-ed to. Per-session state (the next `seq`, which blocker and brief were handled)
lives in the user's state folder, outside the project, under a lock held only while the state
file is read and written (never across network I/O, so parallel tool calls do not wait for one
another), and is removed at SessionEnd.

Settings, all from the environment (the `env` of `.claude/settings.json`):
NATS_URL (the project's agent URL, from `yokeflow-intervention agents add PROJECT`),
YOKEFLOW_PROJECT_ID (default: the project root's name), YOKEFLOW_HOOK_STATE_DIR,
YOKEFLOW_VERDICT_TIMEOUT (0.5 s), YOKEFLOW_WARNING_WAIT (0.2 s), YOKEFLOW_HOOK_BUDGET (0.9 s).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from .events import PROGRESS_FILE, agent_event, blocker_entry, clip_input
from .names import (
    CONTEXT_ENV,
    CONTROL_BUCKET,
    RESUMED_FROM_ENV,
    agent_events_subject,
    agent_inbox_prefix,
    brief_key,
    session_key,
    verdicts_subject,
)
from .wire import Wire, WireError, mask_url

TYPE_CHECKING = False  # typing, dataclasses, pathlib, re: each would cost every hook milliseconds
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["HookConfig", "HookState", "failure_of", "last_reply", "main", "run_hook"]

_OUTPUT_LIMIT = 4000
_VERDICTS = "2"  # the subscription id of the verdict subject on the hook's connection
_SILENCE = 30.0  # seconds a silent detector is not waited for after a result


class HookConfigError(ValueError):
    pass


def _seconds(name: str, default: float, env: dict[str, str]) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HookConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= 10:
        raise HookConfigError(f"{name}={raw!r} must be between 0 and 10 seconds")
    return value


def _default_state_dir(env: dict[str, str]) -> str:
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "yokeflow-intervention", "hooks")


class HookConfig:
    """The hook's settings, all from the environment."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.nats_url = env.get("NATS_URL") or None
        self.project_override = env.get("YOKEFLOW_PROJECT_ID") or None
        self.state_dir = env.get("YOKEFLOW_HOOK_STATE_DIR") or _default_state_dir(env)
        self.verdict_timeout = _seconds("YOKEFLOW_VERDICT_TIMEOUT", 0.5, env)
        self.warning_wait = _seconds("YOKEFLOW_WARNING_WAIT", 0.2, env)
        self.budget = _seconds("YOKEFLOW_HOOK_BUDGET", 0.9, env)


_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _identifier(value: str) -> str:
    """`value` as an id (a subject token): other characters become `-`."""
    cleaned = "".join(c if c in _ID_CHARS else "-" for c in value)
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned.strip("-")[:128] or "unknown"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value[:_OUTPUT_LIMIT]
    return json.dumps(value, default=str)[:_OUTPUT_LIMIT]


def failure_of(error: Any) -> tuple[int, str]:
    """(exit code, root cause) of a failed call: Claude Code reports a failing Bash call as
    "Exit code N\\n<stderr>"; anything else is exit code 1 with the text as it is."""
    text = _text(error or "tool failed")
    head, _, rest = text.partition("\n")
    code = head[len("Exit code ") :]
    if not head.startswith("Exit code ") or not code.isdigit():
        return 1, text
    return int(code), rest.strip() or text


def last_reply(payload: dict[str, Any], tail_bytes: int = 256 * 1024) -> str:
    """The text of the agent's last turn: `last_assistant_message` where Claude Code sends it,
    else the assistant text entries after the last user entry of the transcript (JSONL)."""
    given = payload.get("last_assistant_message")
    if isinstance(given, str):
        return given[:_OUTPUT_LIMIT]
    try:
        with open(str(payload.get("transcript_path") or ""), "rb") as transcript:
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
        message = entry.get("message") if entry.get("type") == "assistant" else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [b.get("text", "") for b in content
                      if isinstance(b, dict) and b.get("type") == "text"]  # fmt: skip
    return "\n".join(reversed(texts)).strip()[:_OUTPUT_LIMIT]


class HookState:
    """A session's small state file; its lock is held only to read and write it."""

    def __init__(self, folder: str, project_id: str, session_id: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, f"{project_id}.{session_id}.json")
        self.briefs = os.path.join(folder, f"briefs-{project_id}.json")

    def update(self, change: Callable[[dict[str, Any]], T], path: str | None = None) -> T:
        """Apply `change` to the state under the file's lock; return what it returns."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with open(os.open(path or self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                state = json.loads(f.read() or "{}")
            except ValueError:
                state = {}
            result = change(state)
            f.seek(0)
            f.truncate()
            f.write(json.dumps(state))
        return result

    def take_seq(self) -> int:
        def take(state: dict[str, Any]) -> int:
            seq = int(state.get("next_seq", 1))
            state["next_seq"] = seq + 1
            return seq

        return self.update(take)

    def first_time(self, key: str, value: str, path: str | None = None) -> bool:
        """Whether `value` is new under `key` (and remember it)."""

        def remember(state: dict[str, Any]) -> bool:
            seen = state.setdefault(key, [])
            if value in seen:
                return False
            seen.append(value)
            del seen[:-50]
            return True

        return self.update(remember, path)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def waiting_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of a `waiting` event for a hook payload that says a person is waited for: a
    PermissionRequest (a permission dialog is shown), or a Notification of a permission prompt,
    of 60 s idle after a turn, or of a question; None for anything else."""
    if payload.get("hook_event_name") == "PermissionRequest":
        tool = str(payload.get("tool_name") or "tool")[:200]
        tool_input = payload.get("tool_input")
        command = tool_input.get("command") if isinstance(tool_input, dict) else None
        prompt = f"Allow {tool}: {command}" if isinstance(command, str) else f"Allow {tool}?"
        return {"kind": "permission", "prompt": prompt[:2000], "tool": tool}
    kind = _WAITING_NOTICES.get(str(payload.get("notification_type") or ""))
    if kind is None:
        return None
    return {"kind": kind, "prompt": str(payload.get("message") or "")[:2000]}


class Reply:
    """What the hook tells Claude Code: an exit code, stdout (JSON) and stderr."""

    def __init__(
        self, code: int = 0, output: dict[str, Any] | None = None, stderr: str = ""
    ) -> None:
        self.code = code
        self.output = output
        self.stderr = stderr


def _fail_open(problem: str) -> Reply:
    message = f"YokeFlow Intervention hook: not recorded: {problem}"[:1000]
    return Reply(0, {"systemMessage": message}, message)


class _Hook:
    def __init__(self, payload: dict[str, Any], config: HookConfig, started: float) -> None:
        self.payload = payload
        self.config = config
        self.deadline = started + config.budget
        self.event = str(payload.get("hook_event_name", ""))
        root = os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd") or os.getcwd()
        self.root = os.path.abspath(str(root))
        self.project = _identifier(config.project_override or os.path.basename(self.root))
        # A session the orchestrator started after a resume carries the id it recorded.
        given = os.environ.get("YOKEFLOW_SESSION_ID") or payload.get("session_id", "")
        self.session = _identifier(str(given))
        self.state = HookState(config.state_dir, self.project, self.session)
        self.wire: Wire | None = None

    # -- the bus ----------------------------------------------------------------------------

    def _connect(self, with_verdicts: bool = False) -> Wire:
        assert self.config.nats_url is not None
        wire = Wire.connect(self.config.nats_url, agent_inbox_prefix(self.project),
                            self.deadline, f"yokeflow-hook-{self.project}")  # fmt: skip
        self.wire = wire
        if with_verdicts:  # before the event goes out, so the answer cannot be missed
            wire.subscribe(verdicts_subject(self.project, self.session), _VERDICTS)
        return wire

    def _publish(self, type_: str, **fields: Any) -> int:
        assert self.wire is not None
        seq = self.state.take_seq()
        event = agent_event(self.project, self.session, seq, type_, **fields)
        data = json.dumps(event).encode()
        self.wire.js_publish(agent_events_subject(self.project, self.session), data,
                             event["event_id"], self.deadline)  # fmt: skip
        return seq

    def _verdict(self, seq: int, wait: float) -> dict[str, Any] | None:
        """The detector's answer to event `seq`, or None if none came within `wait`."""
        assert self.wire is not None
        until = min(self.deadline, time.monotonic() + wait)
        while True:
            try:
                message = self.wire.next_on(_VERDICTS, until)
            except WireError:
                if time.monotonic() >= until:
                    # The detector is down or behind: the next results do not wait for it
                    # (a call still does, for the stop-before-it-runs guarantee).
                    self.state.update(lambda s: s.update(silent_until=time.time() + _SILENCE))
                    return None
                raise
            try:
                verdict = message.json()
            except ValueError:
                continue
            if isinstance(verdict, dict) and verdict.get("seq") == seq:
                return verdict

    def _control(self) -> dict[str, Any] | None:
        assert self.wire is not None
        value = self.wire.kv_get(CONTROL_BUCKET, session_key(self.project, self.session),
                                 self.deadline)  # fmt: skip
        control = json.loads(value) if value else None
        return control if isinstance(control, dict) else None

    # -- what a pause does ------------------------------------------------------------------

    def _stop(self, control: dict[str, Any]) -> Reply:
        """Block this call, halt the session, and write the blocker entry once."""
        intervention = str(control.get("intervention_id") or "")
        if self.state.first_time("blockers_written", intervention):
            from datetime import UTC, datetime  # a pause only: not on every hook's path

            with open(os.path.join(self.root, PROGRESS_FILE), "a", encoding="utf-8") as progress:
                progress.write("\n" + blocker_entry(self.session, control, datetime.now(UTC)))
        reason = (f"YokeFlow intervention: session paused by intervention {intervention}: "
                  f"{control.get('reason', '')}. Stop and wait for a human; the blocker is "
                  f"recorded in {PROGRESS_FILE}.")  # fmt: skip
        output: dict[str, Any] = {"continue": False, "stopReason": reason[:2000]}
        if self.event == "PreToolUse":
            output["hookSpecificOutput"] = {"hookEventName": "PreToolUse",
                                            "permissionDecision": "deny",
                                            "permissionDecisionReason": reason[:2000]}  # fmt: skip
        return Reply(0, output, reason)

    def _context(self, text: str) -> Reply:
        return Reply(0, {"hookSpecificOutput": {"hookEventName": self.event,
                                                "additionalContext": text}})  # fmt: skip

    # -- the hooks --------------------------------------------------------------------------

    def run(self) -> Reply:
        if self.event == "SessionStart" and self.payload.get("source") in ("compact", "clear"):
            return Reply()  # the same session goes on: no new start, and no brief taken here
        if self.config.nats_url is None:
            if self.event == "SessionStart":
                return _fail_open(
                    "NATS_URL is not set for Claude Code: run `yokeflow-intervention agents add "
                    f"{self.project}` and put the URL it prints in the `env` of "
                    ".claude/settings.json (`yokeflow-hook --check` tells what is missing)"
                )
            return Reply()  # said once, at the start of the session
        if self.event == "PostToolUseFailure" and self.payload.get("is_interrupt"):
            return Reply()  # the user interrupted the call: not a failure of the tool
        handler = {
            "PreToolUse": self._pre_tool_use,
            "PostToolUse": self._post_tool_use,
            "PostToolUseFailure": self._post_tool_use,
            "SessionStart": self._session_start,
            "Stop": self._stop_hook,
            "SessionEnd": self._session_end,
            "PermissionRequest": self._waiting,
            "Notification": self._waiting,
        }.get(self.event)
        return handler() if handler is not None else Reply()

    def _pre_tool_use(self) -> Reply:
        self._connect(with_verdicts=True)
        control = self._control()
        if control is not None and control.get("state") == "paused":
            return self._stop(control)
        tool = str(self.payload.get("tool_name") or "tool")
        tool_input = self.payload.get("tool_input")
        seq = self._publish("tool_call", tool=tool, call_id=self._call_id(),
                            input=clip_input(tool_input if isinstance(tool_input, dict) else {}))  # fmt: skip
        verdict = self._verdict(seq, self.config.verdict_timeout)
        if verdict is None:  # the detector is down or behind: the control state decides
            control = self._control()
            if control is not None and control.get("state") == "paused":
                return self._stop(control)
        elif verdict.get("decision") == "stop" and isinstance(verdict.get("control"), dict):
            return self._stop(verdict["control"])
        elif verdict.get("decision") == "warn" and verdict.get("warning"):
            return self._context(str(verdict["warning"]))
        return Reply()

    def _call_id(self) -> str | None:
        call_id = self.payload.get("tool_use_id")
        return str(call_id)[:200] if call_id else None

    def _post_tool_use(self) -> Reply:
        self._connect(with_verdicts=True)
        ok = self.event == "PostToolUse"
        response = self.payload.get("tool_response")
        exit_code, error = (0, "") if ok else failure_of(self.payload.get("error") or response)
        duration = self.payload.get("duration_ms")
        result = {"ok": ok, "exit_code": exit_code, "error": error,
                  "output": _text(response) if ok and response is not None else "",
                  "duration_ms": duration if isinstance(duration, int) and duration >= 0 else None}  # fmt: skip
        seq = self._publish("tool_result", call_id=self._call_id(),
                            tool=str(self.payload.get("tool_name") or "tool"), result=result)  # fmt: skip
        silent = self.state.update(lambda s: float(s.get("silent_until", 0)) > time.time())
        verdict = None if silent else self._verdict(seq, self.config.warning_wait)
        if verdict is None:
            return Reply()
        if verdict.get("decision") == "stop" and isinstance(verdict.get("control"), dict):
            return self._stop(verdict["control"])
        if verdict.get("decision") == "warn" and verdict.get("warning"):
            return self._context(str(verdict["warning"]))
        return Reply()

    def _session_start(self) -> Reply:
        wire = self._connect()
        brief = self._brief(wire)
        self._publish("session_started", workspace=self.root,
                      resumed_from=brief[0] if brief else None)  # fmt: skip
        if brief is None:
            return Reply()
        return self._context(brief[1])

    def _brief(self, wire: Wire) -> tuple[str, str] | None:
        """(intervention, brief) for a session that continues after a resume: from the
        orchestrator's file, or the latest one the pauser left for this project, taken once
        (an agent may only read the bucket, so delivery is remembered on this side)."""
        context_file, resumed_from = os.environ.get(CONTEXT_ENV), os.environ.get(RESUMED_FROM_ENV)
        if context_file and resumed_from and os.path.isfile(context_file):
            with open(context_file, encoding="utf-8") as brief_file:
                return resumed_from, brief_file.read()
        value = wire.kv_get(CONTROL_BUCKET, brief_key(self.project), self.deadline)
        brief = json.loads(value) if value else None
        if not isinstance(brief, dict) or not brief.get("intervention_id"):
            return None
        intervention = str(brief["intervention_id"])
        if not self.state.first_time("delivered", intervention, self.state.briefs):
            return None
        return intervention, str(brief.get("resume_context") or "")

    def _stop_hook(self) -> Reply:  # the agent finished a turn: what it said
        self._connect()
        self._publish("agent_message", text=last_reply(self.payload))
        return Reply()

    def _waiting(self) -> Reply:
        """A permission dialog, or Claude Code telling the user it waits for them: the session
        waits for a person. No decision is given here: the person decides."""
        fields = waiting_of(self.payload)
        if fields is None:
            return Reply()
        self._connect()
        self._publish("waiting", **fields)
        return Reply()

    def _session_end(self) -> Reply:
        self._connect()
        paused = self.state.update(lambda state: bool(state.get("blockers_written")))
        self._publish("session_ended",
                      reason="paused" if paused else str(self.payload.get("reason") or "completed"))  # fmt: skip
        self.state.remove()
        return Reply()


def run_hook(stdin: str, config: HookConfig | None = None) -> Reply:
    """One hook invocation: what to tell Claude Code. Never raises."""
    started = time.monotonic()
    try:
        payload = json.loads(stdin)
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        return _fail_open(f"bad hook input: {exc}")
    hook: _Hook | None = None
    try:
        hook = _Hook(payload, config or HookConfig(), started)
        return hook.run()
    except HookConfigError as exc:
        return _fail_open(str(exc))
    except WireError as exc:
        where = mask_url(hook.config.nats_url) if hook and hook.config.nats_url else "NATS"
        return _fail_open(str(exc) if str(exc).startswith(where) else f"{where}: {exc}")
    except Exception as exc:  # fail open, and say why
        return _fail_open(repr(exc))
    finally:
        if hook is not None and hook.wire is not None:
            hook.wire.close()


_REQUIRED_HOOKS = ("PreToolUse", "PostToolUse", "PostToolUseFailure")
_USEFUL_HOOKS = ("SessionStart", "Stop", "SessionEnd", "PermissionRequest", "Notification")
# Claude Code's `notification_type`s that mean a person is waited for, and the waiting kind.
_WAITING_NOTICES = {
    "permission_prompt": "permission",
    "idle_prompt": "idle",
    "elicitation_dialog": "question",
}


def claude_settings(root: str) -> tuple[dict[str, str], dict[str, list[Any]], list[str]]:
    """What Claude Code would give the hook in `root`: the `env` and `hooks` of the user's and
    the project's settings files (later files win, as in Claude Code), and the files read."""
    env: dict[str, str] = {}
    hooks: dict[str, list[Any]] = {}
    read: list[str] = []
    for path in (os.path.join(os.path.expanduser("~"), ".claude", "settings.json"),
                 os.path.join(root, ".claude", "settings.json"),
                 os.path.join(root, ".claude", "settings.local.json")):  # fmt: skip
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            print(f"settings       {path}: unreadable ({exc})")
            continue
        read.append(path)
        if isinstance(data, dict):
            if isinstance(data.get("env"), dict):
                env.update({str(k): str(v) for k, v in data["env"].items()})
            if isinstance(data.get("hooks"), dict):
                for event, matchers in data["hooks"].items():
                    if isinstance(matchers, list):
                        hooks.setdefault(str(event), []).extend(matchers)
    return env, hooks, read


def _wired(matchers: list[Any]) -> dict[str, Any] | None:
    """The first of our hooks among an event's matchers."""
    for matcher in matchers:
        for hook in matcher.get("hooks", []) if isinstance(matcher, dict) else []:
            command = hook.get("command", "") if isinstance(hook, dict) else ""
            if "yokeflow-hook" in command or "yokeflow-intervention hook" in command:
                return dict(hook)
    return None


def report_settings(root: str) -> dict[str, str]:
    """Prints which hook events the settings files wire to us; returns their `env`."""
    env, hooks, read = claude_settings(root)
    print("settings       " + (", ".join(read) if read else "no .claude/settings.json found"))
    wired = {event: _wired(hooks.get(event, [])) for event in _REQUIRED_HOOKS + _USEFUL_HOOKS}
    missing = [event for event in _REQUIRED_HOOKS if wired[event] is None]
    print("hooks          " + " ".join(f"{e}{'' if h else ' (missing)'}" for e, h in wired.items()))
    if missing:
        print(f"               without {', '.join(missing)} failures go unseen (see the README)")
    end = wired["SessionEnd"]
    timeout = end.get("timeout") if end is not None else None
    if end is not None and not (isinstance(timeout, int | float) and timeout >= 5):
        print('               SessionEnd needs "timeout": 10, else Claude Code cancels it')
    return env


def check(config: HookConfig, session: str | None) -> int:
    """`--check`: whether this machine's hooks are wired, step by step, with the environment
    Claude Code would give them (the settings files' `env` over the shell's)."""
    root = os.path.abspath(os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    settings_env = report_settings(root)
    if settings_env:
        try:
            config = HookConfig({**os.environ, **settings_env})
        except HookConfigError as exc:
            print(f"settings       {exc}")
            return 1
    project = _identifier(config.project_override or os.path.basename(root))
    print(f"project root   {root}")
    print(f"project id     {project}" + ("" if config.project_override else " (the root's name)"))
    print(f"hook state     {config.state_dir}")
    if config.nats_url is None:
        print("NATS_URL       not set: nothing is recorded. Run `yokeflow-intervention agents add "
              f"{project}` and put the URL in the `env` of .claude/settings.json")  # fmt: skip
        return 1
    deadline = time.monotonic() + 5
    try:
        wire = Wire.connect(config.nats_url, agent_inbox_prefix(project), deadline,
                            "yokeflow-hook-check")  # fmt: skip
    except WireError as exc:
        print(f"NATS           {mask_url(config.nats_url)}: {exc}")
        return 1
    print(f"NATS           {mask_url(config.nats_url)}: connected, credentials accepted")
    try:
        # A publish the stream must refuse (it expects a last sequence no subject has): it
        # proves the permission and the stream without storing anything.
        subject = agent_events_subject(project, "yokeflow-check")
        reply = wire.request(subject, b"{}", deadline,
                             **{"Nats-Expected-Last-Subject-Sequence": "999999999"})  # fmt: skip
        if reply.status == "503":
            print(
                f"events         no stream stores {subject}: run `yokeflow-intervention provision`"
            )
            return 1
        print(f"events         may publish on agent.events.{project}.*")
        key = session_key(project, session or "yokeflow-check")
        control = wire.kv_get(CONTROL_BUCKET, key, deadline)
        print("control state  readable" + (f": {control.decode()}" if session and control else ""))
        wire.flush(deadline)
    except WireError as exc:
        print(f"permissions    refused: {exc} (are these the credentials of project {project}?)")
        return 1
    finally:
        wire.close()
    print("ok: the hooks of this project are wired")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--check"]:
        try:
            config = HookConfig()
        except HookConfigError as exc:
            print(exc)
            return 1
        return check(config, argv[1] if len(argv) > 1 else None)
    reply = run_hook(sys.stdin.read())
    if reply.output is not None:
        print(json.dumps(reply.output))
    if reply.stderr:
        print(reply.stderr, file=sys.stderr)
    return reply.code


if __name__ == "__main__":
    sys.exit(main())
