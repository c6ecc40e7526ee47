"""Acting for a project without trusting its agents: the workspace an operator registered, the
project's OS user, and an environment with none of the services' secrets.

Recovery and the orchestrator start processes for agents; an agent's event may name a workspace
(a path it chose) and nothing else about where, how or as whom anything runs.
"""

from __future__ import annotations

import getpass
import os
import pwd
import stat
from pathlib import Path
from typing import Any

from .settings import ProjectRegistration

__all__ = [
    "ConfinementError",
    "changeable_by",
    "run_as",
    "run_as_tenant",
    "scrubbed_environment",
    "workspace_within",
]

# What a process started for an agent may inherit from the service's environment.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "TERM")


class ConfinementError(ValueError):
    """The action would leave what the operator registered; the message says how."""


def workspace_within(claimed: str | None, project: ProjectRegistration) -> str:
    """The workspace to act in: the one an agent reported if it resolves (links followed)
    inside the registered root, the root itself when none was reported; anything else raises."""
    root = os.path.realpath(project.workspace_root)
    if not claimed:
        return root
    real = os.path.realpath(claimed)
    if os.path.commonpath([root, real]) != root:
        raise ConfinementError(
            f"workspace {claimed[:200]!r} is outside the registered workspace root {root}"
        )
    return real


def run_as(user: str | None) -> dict[str, Any]:
    """`subprocess` arguments that run a command as `user` (only root can switch users)."""
    if user is None:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfinementError(f"the project's user {user!r} does not exist") from None
    if entry.pw_uid == os.geteuid():
        return {}
    if os.geteuid() != 0:
        raise ConfinementError(f"cannot run as {user!r}: this service is not root")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run_as_tenant(user: str | None) -> dict[str, Any]:
    """`subprocess` arguments for a helper started for a project (its Redis, an install, a
    restart, a configured command): its registered user, and never root or this service's own
    user, so that nothing done through the helper (its admin commands, code it loads, files it
    writes, its environment) gains a privilege the project's agent does not already have."""
    if user is None:
        raise ConfinementError(
            "no OS user is registered for the project (projects.<id>.user): "
            "a helper never runs as this service"
        )
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfinementError(f"the project's user {user!r} does not exist") from None
    if entry.pw_uid == 0:
        raise ConfinementError(f"the project's user {user!r} is root: a helper never runs as root")
    if entry.pw_uid == os.geteuid():
        raise ConfinementError(
            f"the project's user {user!r} is this service's own user: a helper runs as the project"
        )
    return run_as(user)


def changeable_by(path: str, user: str) -> str | None:
    """The first of `path`, what its links lead to and the folders above them that `user` could
    write, replace or rename (so make run something else), or None: a program recovery runs
    and then trusts the verdict of must be the operator's, not the agent's."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfinementError(f"the project's user {user!r} does not exist") from None
    groups = set(os.getgrouplist(user, entry.pw_gid))
    chain = [Path(path), Path(os.path.realpath(path))]
    for candidate in dict.fromkeys([p for link in chain for p in (link, *link.parents)]):
        try:
            info = os.lstat(candidate)
        except OSError:
            continue  # a missing part: whoever can write the folder above it is checked
        if info.st_uid == entry.pw_uid:
            return str(candidate)
        mode = info.st_mode
        if stat.S_ISLNK(mode) or (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
            continue  # a link's own mode means nothing; in a sticky folder only owners rename
        if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and info.st_gid in groups):
            return str(candidate)
    return None


def scrubbed_environment(user: str | None, **extra: str) -> dict[str, str]:
    """An allow-listed environment: PATH and locale, the user's HOME, and `extra`; never the
    services' secrets (API token, database URL, Twilio and SMTP credentials, NATS URL)."""
    name = user or getpass.getuser()
    try:
        home = pwd.getpwnam(name).pw_dir
    except KeyError:
        home = os.path.expanduser("~")
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {**env, "HOME": home, "USER": name, "LOGNAME": name, **extra}
