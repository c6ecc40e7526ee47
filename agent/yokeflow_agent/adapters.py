"""`yokeflow-hook [--client NAME] [--env FILE]`: the hook program of every agent CLI, where each
client's configuration lives, and `--check`.

`--client` picks the adapter (`claude`, the default, `gemini`, `codex`, `copilot`, `opencode`);
only that module is imported, so a hook pays for one client. `connect` writes a client's hook
configuration where the client really reads it (`agents connect` calls it with the project's
credentials), and `check` reads it back: which hooks are wired, with which settings, and whether
the bus takes an event with them.

Where each client reads its hooks, and what gates them:
- claude: `.claude/settings.json` of the project, or `~/.claude/settings.json`; settings in
  its `env`.
- gemini: `.gemini/settings.json` of the project, which Gemini reads only in a trusted folder
  (`~/.gemini/trustedFolders.json`: `connect` trusts the folder it wires), or
  `~/.gemini/settings.json`; settings in each hook's own `env`.
- codex: `.codex/hooks.json` of the project, which Codex reads only in a trusted project
  (`[projects."DIR"] trust_level = "trusted"` in `~/.codex/config.toml`: `connect` adds it),
  or `~/.codex/hooks.json`; settings in a file of the agent user's (`--env FILE`, mode 0600),
  since Codex hooks have no environment. Codex runs a hook only once it is trusted by the hash
  it computes for it: `connect` asks `codex app-server` for that hash and records it in
  `~/.codex/config.toml`, for its own hooks only.
- copilot: a file of its own, `.github/hooks/yokeflow-intervention.json` of the project, which
  Copilot reads only in a trusted folder (`trusted_folders` in `~/.copilot/config.json`:
  `connect` adds it), or `~/.copilot/hooks/yokeflow-intervention.json`; settings in each hook's
  `env`; each entry names its event (`--event`), which Copilot's payloads do not.
- opencode: a plugin, `.opencode/plugins/yokeflow-intervention.js` of the project or
  `~/.config/opencode/plugins/yokeflow-intervention.js` (OpenCode's hooks are JS), which runs
  the hook for each of its hooks; settings in a file of the agent user's (`--env FILE`, mode
  0600), as for Codex: a plugin has no environment of its own to give.
"""

from __future__ import annotations

import os
import sys
import time

from . import jsonlite as json
from .hooks import Client, HookConfig, HookConfigError, identifier, run_client_hook, settings_file
from .names import CONTROL_BUCKET, agent_events_subject, agent_inbox_prefix, session_key
from .wire import Wire, WireError, mask_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CLIENTS", "check", "client", "connect", "main"]

# The hook events each client is wired for: (events that must be wired, further events),
# and the matcher a tool event takes.
_EVENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "claude": (
        ("PreToolUse", "PostToolUse", "PostToolUseFailure"),
        ("SessionStart", "Stop", "SessionEnd", "PermissionRequest", "Notification"),
        "*",
    ),
    "gemini": (
        ("BeforeTool", "AfterTool"),
        ("SessionStart", "AfterAgent", "SessionEnd", "Notification"),
        ".*",
    ),
    "codex": (
        ("PreToolUse", "PostToolUse"),
        ("SessionStart", "Stop", "SessionEnd", "PermissionRequest"),
        "*",
    ),
    "copilot": (
        ("preToolUse", "postToolUse", "permissionRequest"),
        ("sessionStart", "agentStop", "sessionEnd", "notification"),
        "",
    ),
    "opencode": (
        ("tool.execute.before", "tool.execute.after"),
        (
            "tool.error",
            "session.start",
            "session.idle",
            "session.deleted",
            "session.exit",
            "permission.asked",
            "question.asked",
        ),
        "",
    ),
}
CLIENTS = tuple(_EVENTS)
_TOOL_EVENTS = frozenset(
    {"PreToolUse", "PostToolUse", "PostToolUseFailure", "BeforeTool", "AfterTool"}
)


def client(name: str, event: str = "") -> Client:
    """The adapter of client `name` (only its module is imported); `event`: the hook's event,
    for a client whose payloads do not name it (Copilot)."""
    if name == "claude":
        from .claude_code import ClaudeCode

        return ClaudeCode()
    if name == "gemini":
        from .gemini import GeminiCli

        return GeminiCli()
    if name == "codex":
        from .codex import CodexCli

        return CodexCli()
    if name == "copilot":
        from .copilot import CopilotCli

        return CopilotCli(event)
    if name == "opencode":
        from .opencode import OpenCode

        return OpenCode()
    raise HookConfigError(f"unknown client {name!r} (one of: {', '.join(CLIENTS)})")


# -- where each client reads its hooks ---------------------------------------------------------


def config_path(name: str, scope: str, root: str, home: str) -> str:
    """The file client `name` reads its hooks from, for a project at `root` or the user."""
    base = home if scope == "user" else root
    if name == "copilot":  # a file of its own among the folder's hook files
        folder = (
            os.path.join(".copilot", "hooks")
            if scope == "user"
            else os.path.join(".github", "hooks")
        )
        return os.path.join(base, folder, "yokeflow-intervention.json")
    if name == "opencode":  # a plugin of its own among the folder's plugins
        folder = os.path.join(".config", "opencode") if scope == "user" else ".opencode"
        return os.path.join(base, folder, "plugins", "yokeflow-intervention.js")
    folder = {"claude": ".claude", "gemini": ".gemini", "codex": ".codex"}[name]
    return os.path.join(base, folder, "hooks.json" if name == "codex" else "settings.json")


def env_file(home: str, project: str) -> str:
    """Where `connect` keeps a project's hook settings for a client without an `env`."""
    return os.path.join(home, ".config", "yokeflow-intervention", f"agent-{project}.json")


def _hook_command() -> str:
    """This Python running `yokeflow_hook.py` by path with `-I -S` (that file says why), both by
    full path: the agent user's PATH may have neither."""
    from shlex import quote  # here, not at the top: it imports `re`, which every hook would pay

    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "yokeflow_hook.py")
    return f"{quote(sys.executable)} -I -S {quote(launcher)}"


def _ours(hook: Any) -> bool:
    command = (hook.get("command") or hook.get("bash") or "") if isinstance(hook, dict) else ""
    return any(
        name in command
        for name in ("yokeflow_hook.py", "yokeflow-hook", "yokeflow-intervention hook")
    )


def _read_text(path: str) -> str:
    """A configuration file's text; "" for one that does not exist yet."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        return ""


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.loads(file.read())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object; fix or move it first")
    return data


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.yokeflow-tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _wire_hooks(data: dict[str, Any], name: str, hook: dict[str, Any]) -> None:
    """Put `hook` on every event of client `name`, replacing any earlier one of ours (so
    connecting twice leaves one entry) and keeping everyone else's."""
    required, useful, matcher = _EVENTS[name]
    hooks = data.setdefault("hooks", {})
    for event in required + useful:
        kept = []
        for group in hooks.get(event, []) if isinstance(hooks.get(event), list) else []:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                group = {**group, "hooks": [h for h in group["hooks"] if not _ours(h)]}
                if not group["hooks"]:
                    continue
            kept.append(group)
        entry: dict[str, Any] = {"hooks": [dict(hook)]}
        if event in _TOOL_EVENTS:
            entry["matcher"] = matcher
        if name == "claude" and event == "SessionEnd":
            entry["hooks"][0]["timeout"] = 10  # else Claude Code cancels it at exit
        hooks[event] = [*kept, entry]


def connect(name: str, scope: str, root: str, home: str, settings: dict[str, str]) -> list[str]:
    """Write client `name`'s hook configuration so it reports to the project with `settings`
    (NATS_URL, YOKEFLOW_PROJECT_ID, ...); return a line per file written, saying why."""
    from shlex import quote

    if name not in _EVENTS:
        raise ValueError(f"unknown client {name!r} (one of: {', '.join(CLIENTS)})")
    root, home = os.path.abspath(root), os.path.abspath(home)
    project = settings["YOKEFLOW_PROJECT_ID"]
    path = config_path(name, scope, root, home)
    if name == "opencode":
        return _connect_opencode(path, scope, _write_settings(home, project, settings))
    data = _read_json(path)
    command = _hook_command()
    written: list[str] = []
    if name == "claude":
        env = data.get("env")
        data["env"] = {**(env if isinstance(env, dict) else {}), **settings}
        _wire_hooks(data, name, {"type": "command", "command": command})
    elif name == "gemini":
        hook = {
            "type": "command",
            "name": "yokeflow-intervention",
            "command": f"{command} --client gemini",
            "env": settings,
        }
        _wire_hooks(data, name, hook)
    elif name == "copilot":
        required, useful, _ = _EVENTS[name]
        data = {
            "version": 1,
            "hooks": {
                event: [
                    {
                        "type": "command",
                        "bash": f"{command} --client copilot --event {event}",
                        "env": settings,
                        "timeoutSec": 10,
                    }
                ]
                for event in required + useful
            },
        }
    else:
        settings_path = _write_settings(home, project, settings)
        written.append(settings_path + _SETTINGS_WRITTEN)
        hook = {
            "type": "command",
            "command": f"{command} --client codex --env {quote(settings_path)}",
        }
        _wire_hooks(data, name, hook)
    # Project settings hold the agent's credentials: readable by the user only.
    _write(path, json.dumps(data, indent=2) + "\n", 0o600)
    written.insert(0, f"{path}: hooks {', '.join(_EVENTS[name][0] + _EVENTS[name][1])}")
    if name == "gemini" and scope == "project":
        written.append(_trust_gemini_folder(home, root))
    if name == "copilot" and scope == "project":
        written.append(_trust_copilot_folder(home, root))
    if name == "codex":
        if scope == "project":
            written.append(_trust_codex_project(home, root))
        written.append(_trust_codex_hooks(home, root))
        written.append(
            "a paused Codex session cannot be halted from a hook: its further calls are "
            "refused; interrupt its turn or end the codex process to stop it"
        )
    return written


def _write_settings(home: str, project: str, settings: dict[str, str]) -> str:
    """The hook's settings for a client whose hooks have no environment (`--env FILE`); the
    file's path."""
    path = env_file(home, project)
    _write(path, json.dumps(settings, indent=2) + "\n", 0o600)
    os.chmod(path, 0o600)
    return path


_SETTINGS_WRITTEN = ": the hook's settings (mode 0600: they hold the project's agent credentials)"


_PLUGIN_COMMAND = "const COMMAND = "


def _connect_opencode(path: str, scope: str, settings_path: str) -> list[str]:
    """OpenCode's hooks are a JS plugin: ours (package data), with the hook's command line, in
    a plugin folder OpenCode loads every file of."""
    from importlib.resources import files
    from shlex import quote

    command = f"{_hook_command()} --client opencode --env {quote(settings_path)}"
    source = files(__package__).joinpath("opencode_plugin.js").read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(_PLUGIN_COMMAND))
    lines[at] = f"{_PLUGIN_COMMAND}{json.dumps(command)};\n"
    _write(path, "".join(lines))
    required, useful, _ = _EVENTS["opencode"]
    written = [
        f"{path}: a plugin reporting {', '.join(required + useful)}",
        settings_path + _SETTINGS_WRITTEN,
    ]
    if scope == "project":
        written.append(
            f"OpenCode installs its plugin package into {os.path.dirname(os.path.dirname(path))} "
            "at its next start, as into every config folder it reads (the npm registry, once)"
        )
    return written


def _opencode_hooks(path: str) -> dict[str, Any]:
    """The OpenCode plugin at `path` read as a hooks configuration (each hook it names, run by
    its COMMAND), for `--check`; {} when there is none."""
    try:
        with open(path, encoding="utf-8") as file:
            source = file.read()
    except FileNotFoundError:
        return {}
    line = next((ln for ln in source.splitlines() if ln.startswith(_PLUGIN_COMMAND)), "")
    command = json.loads(line[len(_PLUGIN_COMMAND) :].rstrip(";")) if line else ""
    required, useful, _ = _EVENTS["opencode"]
    return {"hooks": {e: [{"command": command}] for e in required + useful if f'"{e}"' in source}}


def _trust_gemini_folder(home: str, root: str) -> str:
    path = os.path.join(home, ".gemini", "trustedFolders.json")
    trusted = _read_json(path)
    trusted[root] = "TRUST_FOLDER"
    _write(path, json.dumps(trusted, indent=2) + "\n", 0o600)
    return f"{path}: {root} trusted (Gemini ignores a project's hooks in an untrusted folder)"


def _trust_copilot_folder(home: str, root: str) -> str:
    """Copilot keeps its trusted folders in `config.json`, a file it manages (JSON after
    `//` comment lines); the rest of it is kept."""
    path = os.path.join(home, ".copilot", "config.json")
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line for line in file if not line.lstrip().startswith("//")]
    except FileNotFoundError:
        lines = []
    data = json.loads("".join(lines) or "{}")
    folders = data.get("trusted_folders") if isinstance(data.get("trusted_folders"), list) else []
    data["trusted_folders"] = [*[f for f in folders if f != root], root]
    _write(path, json.dumps(data, indent=2) + "\n", 0o600)
    return (
        f"{path}: {root} trusted (Copilot runs a project's .github/hooks only in a trusted folder)"
    )


def _codex_hooks(root: str, deadline: float) -> list[dict[str, Any]]:
    """The hooks Codex sees for a project at `root`, as its app-server lists them, with the
    hash it trusts each by; raises OSError, ValueError or SubprocessError when Codex cannot
    say."""
    import select
    import shutil
    import subprocess

    codex = shutil.which("codex")
    if codex is None:
        raise FileNotFoundError("no `codex` on PATH")
    client_info = {"name": "yokeflow-intervention", "version": "1"}
    requests = [
        {"id": 1, "method": "initialize", "params": {"clientInfo": client_info}},
        {"method": "initialized"},
        {"id": 2, "method": "hooks/list", "params": {"cwd": root}},
    ]
    server = subprocess.Popen(
        [codex, "app-server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=root,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        server.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        server.stdin.flush()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([server.stdout], [], [], deadline - time.monotonic())
            line = server.stdout.readline() if ready else b""
            if not line:
                break
            answer = json.loads(line)
            if answer.get("id") == 2:
                if "result" not in answer:
                    raise ValueError(f"codex app-server: {answer.get('error')}")
                listed = answer["result"].get("data", [])
                return [hook for entry in listed for hook in entry.get("hooks", [])]
        raise TimeoutError("codex app-server did not list its hooks")
    finally:
        server.kill()
        server.wait()


def _trust_codex_hooks(home: str, root: str) -> str:
    """Trust the hooks `connect` just wrote, as a human does under Codex's `/hooks`: by the
    hash Codex computes for each (its app-server lists them), in `~/.codex/config.toml`. Only
    our own hooks, by their command; a hook changed later is untrusted again by Codex itself."""
    import subprocess

    try:
        hooks = [hook for hook in _codex_hooks(root, time.monotonic() + 30) if _ours(hook)]
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return (
            f"codex hooks NOT trusted ({exc}): Codex runs no hook until it is trusted; open "
            "`codex` and trust them under /hooks, or run `codex exec "
            "--dangerously-bypass-hook-trust` where you vet the hooks yourself"
        )
    path = os.path.join(home, ".codex", "config.toml")
    text = _read_text(path)
    for hook in hooks:
        table = f"[hooks.state.{json.dumps(str(hook['key']))}]"
        if table in text:  # an earlier connect's entry: replaced
            start = text.index(table)
            end = text.find("\n[", start + len(table))
            text = text[:start].rstrip("\n") + ("\n\n" + text[end + 1 :] if end >= 0 else "")
        separator = "\n" if text and not text.endswith("\n") else ""
        text += f'{separator}\n{table}\ntrusted_hash = "{hook["currentHash"]}"\n'
    _write(path, text)
    return f"{path}: {len(hooks)} hooks trusted, by the hash Codex computes for each"


def _trust_codex_project(home: str, root: str) -> str:
    path = os.path.join(home, ".codex", "config.toml")
    text = _read_text(path)
    table = f"[projects.{json.dumps(root)}]"
    if table not in text:
        _write(
            path,
            text
            + ("\n" if text and not text.endswith("\n") else "")
            + f'\n{table}\ntrust_level = "trusted"\n',
        )
    return f"{path}: {root} trusted (Codex reads a project's .codex/ only in a trusted project)"


# -- --check -----------------------------------------------------------------------------------


def _entries(group: Any) -> list[Any]:
    """The hooks of one entry of an event: a matcher group's, or (Copilot) the entry itself."""
    if not isinstance(group, dict):
        return []
    return list(group["hooks"]) if isinstance(group.get("hooks"), list) else [group]


def installed_settings(
    name: str, root: str, home: str
) -> tuple[dict[str, str], list[str], list[str]]:
    """(settings, wired events, files read) of client `name`'s hooks for a project at `root`:
    the user's file, then the project's (later wins, as in the clients)."""
    from shlex import split

    settings: dict[str, str] = {}
    wired: list[str] = []
    read: list[str] = []
    for scope in ("user", "project"):
        path = config_path(name, scope, root, home)
        data = _opencode_hooks(path) if name == "opencode" else _read_json(path)
        if not data:
            continue
        read.append(path)
        if isinstance(data.get("env"), dict):
            settings.update({str(k): str(v) for k, v in data["env"].items()})
        for event, groups in (data.get("hooks") or {}).items():
            for group in groups if isinstance(groups, list) else []:
                for hook in _entries(group):
                    if not _ours(hook):
                        continue
                    wired.append(str(event))
                    if isinstance(hook.get("env"), dict):
                        settings.update({str(k): str(v) for k, v in hook["env"].items()})
                    words = split(str(hook.get("command") or hook.get("bash") or ""))
                    if "--env" in words[:-1]:
                        settings.update(settings_file(words[words.index("--env") + 1]))
    return settings, wired, read


def ending_waits(root: str, home: str) -> bool:
    """Whether Claude Code's SessionEnd hook of ours has a timeout long enough to publish."""
    for scope in ("user", "project"):
        for group in (
            _read_json(config_path("claude", scope, root, home))
            .get("hooks", {})
            .get("SessionEnd", [])
        ):
            for hook in group.get("hooks", []) if isinstance(group, dict) else []:
                timeout = hook.get("timeout") if _ours(hook) else None
                if isinstance(timeout, int | float) and timeout >= 5:
                    return True
    return False


def check(name: str, session: str | None) -> int:
    """`--check`: whether client `name`'s hooks are wired for the project in the current folder,
    step by step, with the settings the client would give them, and whether the bus takes an
    event with them."""
    given = os.environ.get("YOKEFLOW_PROJECT_ROOT")
    if name == "claude":
        given = given or os.environ.get("CLAUDE_PROJECT_DIR")
    root = os.path.abspath(given or os.getcwd())
    try:
        settings, wired, read = installed_settings(name, root, os.path.expanduser("~"))
        config = HookConfig({**os.environ, **settings})
    except (OSError, ValueError) as exc:
        print(f"settings       {exc}")
        return 1
    required, useful, _ = _EVENTS[name]
    print(f"client         {name}")
    print("settings       " + (", ".join(read) if read else "no hook configuration found"))
    print(
        "hooks          "
        + " ".join(f"{e}{'' if e in wired else ' (missing)'}" for e in required + useful)
    )
    missing = [event for event in required if event not in wired]
    if missing:
        print(
            f"               without {', '.join(missing)} calls or failures go unseen: run "
            f"`yokeflow-intervention agents connect PROJECT {name}`"
        )
    if (
        name == "claude"
        and "SessionEnd" in wired
        and not ending_waits(root, os.path.expanduser("~"))
    ):
        print('               SessionEnd needs "timeout": 10, else Claude Code cancels it')
    project = identifier(config.project_override or os.path.basename(root))
    print(f"project root   {root}")
    print(f"project id     {project}" + ("" if config.project_override else " (the root's name)"))
    print(f"hook state     {config.state_dir}")
    if config.nats_url is None:
        print(
            "NATS_URL       not set: nothing is recorded. Run `yokeflow-intervention agents "
            f"connect {project} {name}`"
        )
        return 1
    if not check_bus(config.nats_url, project, session):
        return 1
    print(f"ok: the hooks of this project are wired ({name})")
    return 0


def check_bus(nats_url: str, project: str, session: str | None) -> bool:
    """Whether the credentials connect, may publish the project's events to a stream that
    stores them, and may read its control state; printed step by step."""
    deadline = time.monotonic() + 5
    try:
        wire = Wire.connect(nats_url, agent_inbox_prefix(project), deadline, "yokeflow-hook-check")
    except WireError as exc:
        print(f"NATS           {mask_url(nats_url)}: {exc}")
        return False
    print(f"NATS           {mask_url(nats_url)}: connected, credentials accepted")
    try:
        # A synthetic event the stream must refuse (it expects a last sequence no subject
        # has): the stream's answer proves the event reached it, without storing anything.
        subject = agent_events_subject(project, "yokeflow-check")
        reply = wire.request(
            subject, b"{}", deadline, **{"Nats-Expected-Last-Subject-Sequence": "999999999"}
        )
        if reply.status == "503":
            print(
                f"events         no stream stores {subject}: run `yokeflow-intervention provision`"
            )
            return False
        print(
            f"events         may publish on agent.events.{project}.* (a synthetic event "
            "reached the stream)"
        )
        key = session_key(project, session or "yokeflow-check")
        control = wire.kv_get(CONTROL_BUCKET, key, deadline)
        print("control state  readable" + (f": {control.decode()}" if session and control else ""))
        wire.flush(deadline)
    except WireError as exc:
        print(f"permissions    refused: {exc} (are these the credentials of project {project}?)")
        return False
    finally:
        wire.close()
    return True


# -- the program -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`yokeflow-hook [--client NAME] [--env FILE] [--event NAME] [--check [SESSION]]`. Parsed
    by hand:
    argparse costs every hook milliseconds."""
    args = list(sys.argv[1:] if argv is None else argv)
    given = {"--client": "claude", "--env": "", "--event": ""}
    for flag in given:
        if flag in args[:-1]:
            at = args.index(flag)
            given[flag] = args[at + 1]
            del args[at : at + 2]
    name, env_path = given["--client"], given["--env"] or None
    if args[:1] == ["--check"]:
        if name not in _EVENTS:
            print(f"unknown client {name!r} (one of: {', '.join(CLIENTS)})")
            return 1
        return check(name, args[1] if len(args) > 1 and args[1] else None)
    stdin = sys.stdin.read()
    try:
        adapter = client(name, given["--event"])
    except HookConfigError:
        from .claude_code import ClaudeCode  # a hook must answer even when misconfigured

        adapter = ClaudeCode()
    try:
        config = HookConfig({**os.environ, **settings_file(env_path)} if env_path else None)
    except (OSError, ValueError) as exc:
        reply = adapter.fail_open(None, f"settings {env_path}: {exc}")
    else:
        reply = run_client_hook(adapter, stdin, config)
    if reply.output is not None:
        print(json.dumps(reply.output))
    if reply.stderr:
        print(reply.stderr, file=sys.stderr)
    return reply.code


if __name__ == "__main__":
    sys.exit(main())
