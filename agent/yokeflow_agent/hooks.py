"""What every agent CLI's hook adapter shares: the settings, the session's state file, and the
one engine that turns a normalised hook into contract v1 events and a verdict into an answer.

An agent CLI (Claude Code, Gemini CLI, Codex, Copilot CLI, OpenCode) starts a hook process for
every tool call, so this is built to cost milliseconds: plain Python only (no pydantic, no
nats-py, no asyncio), one NATS connection per hook through the small client in `wire`, and no
fixed wait. Before a tool call runs, the hook announces it and waits for the detector's verdict
on that very call (`agent.verdicts.<project>.<session>`), up to `YOKEFLOW_VERDICT_TIMEOUT`: the
4th identical failing call is refused before it runs, and a healthy call goes on as soon as the
detector has looked at it.

Each client's module is a `Client`: a normaliser (`hooked`: its hook's JSON as a `Hooked`,
which says what happened in the contract's terms) and the way back (`stop`, `context`,
`fail_open`: a verdict in that client's own block, halt and context primitives). The engine
never knows which client it serves beyond `Client.name`, which goes on `session_started`.

It fails open: on any error of its own (NATS unreachable, streams missing, a bad setting) it
lets the agent work and says why, because an outage of the watcher must never stop the
watched. Every step runs under one deadline (`YOKEFLOW_HOOK_BUDGET`, 0.9 s).

On a pause it blocks the call (and halts the session where the client allows it), and writes
the blocker entry to `claude-progress.md` at the project root: the stable root the client
names, never the folder the agent `cd`-ed to. Per-session state (the next `seq`, which blocker
and brief were handled) lives in the user's state folder, outside the project, under a lock
held only while the state file is read and written, and is removed when the session ends.

Settings, all from the environment (or the hook's `--env FILE`, see `settings_file`):
NATS_URL (the project's agent URL, from `yokeflow-intervention agents add PROJECT`),
YOKEFLOW_PROJECT_ID (default: the project root's name), YOKEFLOW_PROJECT_ROOT (default: what
the client names), YOKEFLOW_HOOK_STATE_DIR, YOKEFLOW_VERDICT_TIMEOUT (0.5 s),
YOKEFLOW_WARNING_WAIT (0.2 s), YOKEFLOW_HOOK_BUDGET (0.9 s).
"""

from __future__ import annotations

import fcntl
import os
import time

from . import jsonlite as json
from .events import PROGRESS_FILE, agent_event, blocker_entry, clip_input, hash_text
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

__all__ = [
    "OUTPUT_LIMIT",
    "Client",
    "HookConfig",
    "HookConfigError",
    "HookState",
    "Hooked",
    "Reply",
    "identifier",
    "permission_asked",
    "read_transcript_tail",
    "result_of",
    "root_of",
    "run_client_hook",
    "settings_file",
    "text_of",
]

OUTPUT_LIMIT = 4000
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


def settings_file(path: str) -> dict[str, str]:
    """The settings `agents connect` wrote for a client whose hook configuration has no place
    for an environment (Codex): a JSON object of strings, readable by its owner only."""
    with open(path, encoding="utf-8") as file:
        data = json.loads(file.read())
    if not isinstance(data, dict):
        raise HookConfigError(f"{path}: expected a JSON object of settings")
    return {str(k): str(v) for k, v in data.items()}


class HookConfig:
    """The hook's settings, all from the environment."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.nats_url = env.get("NATS_URL") or None
        self.project_override = env.get("YOKEFLOW_PROJECT_ID") or None
        self.root_override = env.get("YOKEFLOW_PROJECT_ROOT") or None
        self.state_dir = env.get("YOKEFLOW_HOOK_STATE_DIR") or _default_state_dir(env)
        self.verdict_timeout = _seconds("YOKEFLOW_VERDICT_TIMEOUT", 0.5, env)
        self.warning_wait = _seconds("YOKEFLOW_WARNING_WAIT", 0.2, env)
        self.budget = _seconds("YOKEFLOW_HOOK_BUDGET", 0.9, env)
        self.session_override = env.get("YOKEFLOW_SESSION_ID") or None


_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def identifier(value: str) -> str:
    """`value` as an id (a subject token): other characters become `-`."""
    cleaned = "".join(c if c in _ID_CHARS else "-" for c in value)
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned.strip("-")[:128] or "unknown"


def text_of(value: Any) -> str:
    """A tool's output or error as text, clipped."""
    if isinstance(value, str):
        return value[:OUTPUT_LIMIT]
    return json.dumps(value, default=str)[:OUTPUT_LIMIT]


def result_of(
    ok: bool, exit_code: int | None, text: str, duration_ms: Any = None
) -> dict[str, Any]:
    """The contract's ToolResultBody of a call: its text is the output of a call that worked and
    the error of one that failed (a client gives one text for both)."""
    return {
        "ok": ok,
        "exit_code": exit_code,
        "output": text[:OUTPUT_LIMIT] if ok else "",
        "error": "" if ok else text[:OUTPUT_LIMIT],
        "duration_ms": duration_ms if isinstance(duration_ms, int) and duration_ms >= 0 else None,
    }


def permission_asked(tool: str | None, command: Any = None, message: Any = "") -> dict[str, Any]:
    """The contract's Waiting fields of a permission prompt a client shows its user: "Allow
    TOOL: COMMAND" for a call that runs a command, else the client's own words, else "Allow
    TOOL?". `tool` None: the client does not say (the engine names the tool it last asked
    about)."""
    if isinstance(command, str) and command:
        prompt = f"Allow {tool or 'tool'}: {command}"
    else:
        prompt = str(message or "") or f"Allow {tool or 'tool'}?"
    return {"kind": "permission", "prompt": prompt[:2000], "tool": tool[:200] if tool else None}


def read_transcript_tail(path: Any, tail_bytes: int = 256 * 1024) -> list[str]:
    """The last lines of a client's JSONL transcript; none when it cannot be read."""
    try:
        with open(str(path or ""), "rb") as transcript:
            transcript.seek(max(transcript.seek(0, os.SEEK_END) - tail_bytes, 0))
            return transcript.read().decode(errors="replace").splitlines()
    except OSError:
        return []


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


class Reply:
    """What the hook tells its client: an exit code, stdout (JSON) and stderr."""

    def __init__(
        self, code: int = 0, output: dict[str, Any] | None = None, stderr: str = ""
    ) -> None:
        self.code = code
        self.output = output
        self.stderr = stderr


class Hooked:
    """One hook of any client, in the contract's terms. `kind` is one of: `start` (a session
    begins), `call` (a tool is about to run), `result` (it ran: `result` is the contract's
    ToolResultBody), `turn` (the agent finished a turn: `text`), `end` (`reason`), `waiting`
    (the session waits for a person: `waiting` holds the contract's Waiting fields), or "" (a
    hook the product does not record), or `permission` (the client asks whether a call may
    run: where a halt is said)."""

    __slots__ = (
        "call_id",
        "event",
        "kind",
        "reason",
        "result",
        "root",
        "session",
        "text",
        "tool",
        "tool_input",
        "waiting",
    )

    def __init__(self, kind: str, event: str, session: str, root: str) -> None:
        self.kind = kind
        self.event = event  # the client's own name of the hook, for its answer
        self.session = session
        self.root = root
        self.tool = "tool"
        self.tool_input: dict[str, Any] = {}
        self.call_id: str | None = None
        self.result: dict[str, Any] = {}
        self.text = ""
        self.reason = "completed"
        self.waiting: dict[str, Any] | None = None


class Client:
    """One agent CLI: how its hooks read (`hooked`) and how a verdict is said back to it."""

    name = ""
    # Whether a hook can end the session (Codex: no; its other calls are refused instead).
    halts = True
    # Whether a later hook of the same call says the halt (Copilot's permissionRequest).
    halts_later = False

    def hooked(self, payload: dict[str, Any], config: HookConfig) -> Hooked:
        raise NotImplementedError

    def stop(self, hooked: Hooked, reason: str) -> Reply:
        """Refuse this call and halt the session, as the client documents it."""
        raise NotImplementedError

    def context(self, hooked: Hooked, text: str) -> Reply:
        """Put `text` (a warning, the resume brief) in the agent's own context."""
        raise NotImplementedError

    def fail_open(self, hooked: Hooked | None, problem: str) -> Reply:
        """Let the agent work on, and tell the user why nothing was recorded."""
        message = f"YokeFlow Intervention hook: not recorded: {problem}"[:1000]
        return Reply(0, {"systemMessage": message}, message)

    def missing_url(self, project: str) -> str:
        return (
            f"NATS_URL is not set: run `yokeflow-intervention agents connect {project} "
            f"{self.name}` (`yokeflow-hook --check --client {self.name}` tells what is "
            "missing)"
        )


def root_of(config: HookConfig, *given: Any) -> str:
    """The project root: the configured one, else the first the client names, else the cwd."""
    for root in (config.root_override, *given):
        if root:
            return os.path.abspath(str(root))
    return os.getcwd()


class _Hook:
    def __init__(self, client: Client, hooked: Hooked, config: HookConfig, started: float) -> None:
        self.client = client
        self.hooked = hooked
        self.config = config
        self.deadline = started + config.budget
        self.root = hooked.root
        self.project = identifier(config.project_override or os.path.basename(self.root))
        # A session the orchestrator started after a resume carries the id it recorded.
        self.session = identifier(config.session_override or hooked.session)
        self.state = HookState(config.state_dir, self.project, self.session)
        self.wire: Wire | None = None

    # -- the bus ----------------------------------------------------------------------------

    def _connect(self, with_verdicts: bool = False) -> Wire:
        assert self.config.nats_url is not None
        wire = Wire.connect(
            self.config.nats_url,
            agent_inbox_prefix(self.project),
            self.deadline,
            f"yokeflow-hook-{self.project}",
        )
        self.wire = wire
        if with_verdicts:  # before the event goes out, so the answer cannot be missed
            wire.subscribe(verdicts_subject(self.project, self.session), _VERDICTS)
        return wire

    def _publish(self, type_: str, **fields: Any) -> int:
        assert self.wire is not None
        seq = self.state.take_seq()
        event = agent_event(self.project, self.session, seq, type_, **fields)
        data = json.dumps(event).encode()
        self.wire.js_publish(
            agent_events_subject(self.project, self.session), data, event["event_id"], self.deadline
        )
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
        value = self.wire.kv_get(
            CONTROL_BUCKET, session_key(self.project, self.session), self.deadline
        )
        control = json.loads(value) if value else None
        return control if isinstance(control, dict) else None

    # -- what a pause does ------------------------------------------------------------------

    def _stop(self, control: dict[str, Any]) -> Reply:
        """Block this call, halt the session where the client can, and write the blocker
        entry once."""
        intervention = str(control.get("intervention_id") or "")
        if self.state.first_time("blockers_written", intervention):
            # For a client whose halt is said by a later hook of the same call (Copilot's
            # permissionRequest), without a network round trip between the two.
            self.state.update(lambda state: state.update(halting=control))
            from datetime import UTC, datetime  # a pause only: not on every hook's path

            with open(os.path.join(self.root, PROGRESS_FILE), "a", encoding="utf-8") as progress:
                progress.write("\n" + blocker_entry(self.session, control, datetime.now(UTC)))
        reason = (
            f"YokeFlow intervention: session paused by intervention {intervention}: "
            f"{control.get('reason', '')}. Stop and wait for a human; the blocker is "
            f"recorded in {PROGRESS_FILE}."
        )
        if not self.client.halts:
            reason += " Every further tool call is refused until a human resumes the session."
        return self.client.stop(self.hooked, reason[:2000])

    def _answer(self, verdict: dict[str, Any] | None) -> Reply:
        if verdict is None:
            return Reply()
        if verdict.get("decision") == "stop" and isinstance(verdict.get("control"), dict):
            return self._stop(verdict["control"])
        if verdict.get("decision") == "warn" and verdict.get("warning"):
            return self.client.context(self.hooked, str(verdict["warning"]))
        return Reply()

    # -- the hooks --------------------------------------------------------------------------

    def run(self) -> Reply:
        kind = self.hooked.kind
        if not kind:
            return Reply()
        if self.config.nats_url is None:
            if kind == "start":
                return self.client.fail_open(self.hooked, self.client.missing_url(self.project))
            return Reply()  # said once, at the start of the session
        handler = {
            "permission": self._permission,
            "call": self._call,
            "result": self._result,
            "start": self._session_start,
            "turn": self._turn,
            "end": self._session_end,
            "waiting": self._waiting,
        }[kind]
        return handler()

    def _call(self) -> Reply:
        self._connect(with_verdicts=True)
        control = self._control()
        if control is not None and control.get("state") == "paused":
            return self._stop(control)
        if self.client.halts_later:  # resumed: a halt said before no longer holds
            self.state.update(lambda state: state.pop("halting", None))
        hooked = self.hooked
        seq = self._publish(
            "tool_call",
            tool=hooked.tool,
            call_id=hooked.call_id or self._open_call(),
            input=clip_input(hooked.tool_input),
        )
        verdict = self._verdict(seq, self.config.verdict_timeout)
        if verdict is None:  # the detector is down or behind: the control state decides
            control = self._control()
            if control is not None and control.get("state") == "paused":
                return self._stop(control)
        return self._answer(verdict)

    def _permission(self) -> Reply:
        """A client asks whether a call it is about to run may (Copilot's permissionRequest):
        refused, and the session halted, once the session is paused."""
        tool = self.hooked.tool

        def ask(state: dict[str, Any]) -> Any:
            state["asked"] = tool  # for a permission prompt that will not name its tool
            return state.get("halting")

        halting = self.state.update(ask)
        if isinstance(halting, dict):
            return self._stop(halting)
        self._connect()
        control = self._control()
        if control is not None and control.get("state") == "paused":
            return self._stop(control)
        return Reply()

    def _result(self) -> Reply:
        self._connect(with_verdicts=True)
        hooked = self.hooked
        seq = self._publish(
            "tool_result",
            call_id=hooked.call_id or self._close_call(),
            tool=hooked.tool,
            result=hooked.result,
        )
        silent = self.state.update(lambda s: float(s.get("silent_until", 0)) > time.time())
        return self._answer(None if silent else self._verdict(seq, self.config.warning_wait))

    def _call_key(self) -> str:
        call = [self.hooked.tool, self.hooked.tool_input]
        return hash_text(json.dumps(call, sort_keys=True, default=str))

    def _open_call(self) -> str:
        """A call id for a client that gives none (Gemini): the detector pairs a result with
        its call by id. Kept until the result of the same tool and input comes."""
        call_id = f"hook-{os.urandom(6).hex()}"
        key = self._call_key()

        def remember(state: dict[str, Any]) -> None:
            opened = state.setdefault("open_calls", {})
            opened.setdefault(key, []).append(call_id)
            while len(opened) > 50:  # calls whose results never came
                del opened[next(iter(opened))]

        self.state.update(remember)
        return call_id

    def _close_call(self) -> str | None:
        key = self._call_key()

        def take(state: dict[str, Any]) -> str | None:
            opened = state.get("open_calls", {})
            waiting = opened.get(key) or []
            call_id = waiting.pop(0) if waiting else None
            if not waiting:
                opened.pop(key, None)
            return call_id

        return self.state.update(take)

    def _session_start(self) -> Reply:
        wire = self._connect()
        brief = self._brief(wire)
        self._publish(
            "session_started",
            workspace=self.root,
            client=self.client.name or None,
            resumed_from=brief[0] if brief else None,
        )
        if brief is None:
            return Reply()
        return self.client.context(self.hooked, brief[1])

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

    def _turn(self) -> Reply:  # the agent finished a turn: what it said
        self._connect()
        self._publish("agent_message", text=self.hooked.text[:OUTPUT_LIMIT])
        return Reply()

    def _waiting(self) -> Reply:
        """A permission dialog, or the client telling its user it waits for them: the session
        waits for a person. No decision is given here: the person decides. A permission prompt
        that does not name its tool (Copilot's notification) is for the tool the client last
        asked permission for (its permissionRequest, just before)."""
        waiting = dict(self.hooked.waiting or {})
        if waiting.get("kind") == "permission" and not waiting.get("tool"):
            waiting["tool"] = self.state.update(lambda state: state.get("asked"))
        self._connect()
        self._publish("waiting", **waiting)
        return Reply()

    def _session_end(self) -> Reply:
        self._connect()
        paused = self.state.update(lambda state: bool(state.get("blockers_written")))
        self._publish("session_ended", reason="paused" if paused else self.hooked.reason)
        self.state.remove()
        return Reply()


def run_client_hook(client: Client, stdin: str, config: HookConfig | None = None) -> Reply:
    """One hook invocation of `client`: what to tell it. Never raises."""
    started = time.monotonic()
    try:
        payload = json.loads(stdin)
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        return client.fail_open(None, f"bad hook input: {exc}")
    hooked: Hooked | None = None
    hook: _Hook | None = None
    try:
        config = config or HookConfig()
        hooked = client.hooked(payload, config)
        hook = _Hook(client, hooked, config, started)
        return hook.run()
    except HookConfigError as exc:
        return client.fail_open(hooked, str(exc))
    except WireError as exc:
        where = mask_url(hook.config.nats_url) if hook and hook.config.nats_url else "NATS"
        return client.fail_open(
            hooked, str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        )
    except Exception as exc:  # fail open, and say why
        return client.fail_open(hooked, repr(exc))
    finally:
        if hook is not None and hook.wire is not None:
            hook.wire.close()
