"""A project's own OS user, for tests made from the agent's side of the machine: recovery's
helpers must run as this user, and what this user can do through them is what is tested."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# A system interpreter every user can run (the test venv's may live in root's home).
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class AgentUser:
    name: str
    uid: int
    gid: int
    home: Path

    def folder(self, name: str) -> Path:
        """A folder this user owns (its workspace, say), reachable by it."""
        path = self.home / name
        path.mkdir(parents=True)
        os.chown(path, self.uid, self.gid)
        return path

    def python(self, code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run Python as this user, with nothing but what the user has: no environment."""
        return subprocess.run(
            [SYSTEM_PYTHON, "-I", "-c", code],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            env={},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def agent_user() -> Iterator[AgentUser]:
    """A throwaway unprivileged user with a home of its own, removed at the end of the run."""
    if os.geteuid() != 0:
        pytest.skip("acting as a project's own OS user needs root (to create a throwaway user)")
    if not shutil.which("useradd") or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs useradd and a system Python to act as a project's user")
    base = Path(tempfile.mkdtemp(prefix="yokeflow-agent-"))
    base.chmod(0o755)
    name = f"yfagent{uuid.uuid4().hex[:8]}"
    home = base / name
    subprocess.run(
        [
            "useradd",
            "--home-dir",
            str(home),
            "--create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )
    import pwd

    entry = pwd.getpwnam(name)
    home.chmod(0o755)  # the services (root) and the tests look inside
    try:
        yield AgentUser(name, entry.pw_uid, entry.pw_gid, home)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def operator_folder() -> Iterator[Path]:
    """A folder only root can change that every user can read: where an operator keeps the
    programs recovery may run for a project (an interpreter, say)."""
    folder = Path(tempfile.mkdtemp(prefix="yokeflow-operator-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
