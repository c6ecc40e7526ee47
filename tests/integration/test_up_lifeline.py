"""`up`'s stack dies with it: after `kill -9` of `up`, no process of its tree, its NATS or its
PostgreSQL is left and its ports are free; a second `up` started at once waits for that and then
starts cleanly (no service restarted), and a third one on the same data folder, while the
second runs, refuses and names its pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from yokeflow_intervention.shared.embedded import free_port
from yokeflow_intervention.shared.runtime import product_command

from ..helpers import cli


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_", "DATABASE_"))
    }
    env.update(YOKEFLOW_DATA_DIR=str(data_dir), YOKEFLOW_API_PORT=str(port), PYTHONUNBUFFERED="1")
    return env


def _start_up(tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        product_command("cli", "up", "--quiet"),
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _until_ready(up: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert up.poll() is None, log.read_text(errors="replace")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"up was not ready within {timeout} s:\n{log.read_text(errors='replace')}")


def _stack(up: subprocess.Popen[bytes], data_dir: Path) -> list[psutil.Process]:
    """Every process of `up`'s stack: its tree (services, NATS, the watchdog) and PostgreSQL's
    postmaster, which `pg_ctl` detached from it."""
    processes = psutil.Process(up.pid).children(recursive=True)
    postmaster = int((data_dir / "postgres/pgdata/postmaster.pid").read_text().split()[0])
    processes.append(psutil.Process(postmaster))
    return processes


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # ended; waits for a reaper
    except psutil.NoSuchProcess:
        return True


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def _killed_at_end(processes: list[psutil.Process]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.kill()


def test_a_killed_up_leaves_nothing_and_a_second_up_starts_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = _env(data_dir, port)
    first = _start_up(tmp_path, env, "first")
    left: list[psutil.Process] = [psutil.Process(first.pid)]
    with _killed_at_end(left):
        _until_ready(first, port, tmp_path / "first.log")
        stack = _stack(first, data_dir)
        left += stack
        names = " ".join(" ".join(p.cmdline()) for p in stack)
        for part in ("nats-server", "postgres", "services.api", "services.detector"):
            assert part in names, names
        nats_port = json.loads((data_dir / "nats/server.json").read_text())["port"]

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = _start_up(tmp_path, env, "second")  # at once, as someone restarting would
        left.append(psutil.Process(second.pid))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_gone(p) for p in stack):
            time.sleep(0.2)
        assert [p.pid for p in stack if not _gone(p)] == [], "left running after kill -9 of up"
        assert not _listening(nats_port)

        _until_ready(second, port, tmp_path / "second.log")
        left += _stack(second, data_dir)
        assert "restarting" not in (tmp_path / "second.log").read_text()
        assert not ({p.pid for p in _stack(second, data_dir)} & {p.pid for p in stack})

        refused = cli("up", "--quiet", env=env, cwd=tmp_path, timeout=60)
        assert refused.returncode == 1
        assert f"already running on {data_dir.resolve()} (pid {second.pid})" in refused.stderr
        assert f"kill {second.pid}" in refused.stderr

        stack = _stack(second, data_dir)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
        assert [p.pid for p in stack if not _gone(p)] == [], "left running after up stopped"
