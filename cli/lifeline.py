"""`up`'s stack dies with `up`, and one data folder runs one stack.

An `up` that dies abruptly (SIGKILL, an OOM kill, a crash) runs no cleanup of its own, so its
children must notice by themselves:

- Each service process asks the kernel for SIGTERM when its parent dies (Linux
  `PR_SET_PDEATHSIG`, set between fork and exec by `die_with_parent`). The signal follows the
  *thread* that forked, so `up` starts services from its main thread only.
- PostgreSQL is started by `pg_ctl`, which detaches the postmaster from `up`, and NATS must be
  stopped cleanly for JetStream's sake: a small watchdog (`python -m
  yokeflow_intervention.cli.lifeline`) reads a pipe from `up`, one line per server and per
  service process `up` started, and when the pipe closes (however `up` ended) stops what still
  runs, in `up`'s own order: the services first (SIGTERM, then SIGKILL after 10 s; a process is
  known by its pid *and* start time, so a reused pid is left alone), then PostgreSQL, then NATS.
  It runs in a session of its own, so a Ctrl-C meant for `up` does not stop it before `up` has
  stopped the rest.
- `up` holds an exclusive `flock` on `<data_dir>/up.lock` (which names its pid) for its life;
  the watchdog inherits the lock and keeps it until it has stopped the servers, so a second `up`
  on the same folder either refuses, naming the running one's pid, or waits for the previous
  stack to be stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import psutil

from yokeflow_intervention.shared.embedded import EmbeddedNats, EmbeddedPostgres, pid_alive
from yokeflow_intervention.shared.runtime import product_command

__all__ = ["Lifeline", "StackRunning", "die_with_parent", "hold_data_folder"]

_PR_SET_PDEATHSIG = 1
# How long a second `up` waits for the stack of an `up` that died to be stopped by its watchdog.
STOPPING_PATIENCE = 60.0
# How long a service has to stop on SIGTERM before the watchdog kills it (as `up` allows).
SERVICE_GRACE = 10.0


def _set_parent_death_signal() -> None:
    """Runs in the child between fork and exec: ask for SIGTERM when the parent goes, and go
    at once if it already went (it may have died before the request was made)."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def die_with_parent() -> Callable[[], None] | None:
    """The `preexec_fn` that makes a child die with this process (Linux); None elsewhere, where
    the watchdog and `up`'s own shutdown are all there is."""
    return _set_parent_death_signal if sys.platform == "linux" else None


class StackRunning(RuntimeError):
    """Another `up` runs on this data folder; the message names its pid and how to stop it."""


def _lock_holder(lock_file: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(lock_file.read_text().split()[0])
    return None


def hold_data_folder(data_dir: Path, patience: float = STOPPING_PATIENCE) -> int:
    """Take `<data_dir>/up.lock` for this process and return its descriptor (kept open for the
    process's life). Raises StackRunning while another `up` runs there; waits up to `patience`
    seconds when the one holding it has died and its watchdog is still stopping its servers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_file = data_dir / "up.lock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + patience
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _lock_holder(lock_file)
            if holder is not None and pid_alive(holder):
                os.close(fd)
                raise StackRunning(
                    f"`yokeflow-intervention up` is already running on {data_dir} (pid {holder}):"
                    f" stop it first (Ctrl-C in its terminal, or `kill {holder}`), or give this"
                    " one another data folder (`data_dir`, YOKEFLOW_DATA_DIR)"
                ) from None
            if time.monotonic() > deadline:
                os.close(fd)
                raise StackRunning(
                    f"the stack of an `up` that ended (pid {holder}) on {data_dir} is still being"
                    f" stopped after {patience:.0f} s; see {data_dir}/logs, then try again"
                ) from None
            if not told:
                print(f"  waiting for the stack of an `up` that ended (pid {holder}) to stop")
                told = True
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Lifeline:
    """`up`'s end of the watchdog: tell it each server `up` started; closing it (or dying)
    makes the watchdog stop them."""

    def __init__(self, data_dir: Path, lock_fd: int) -> None:
        self.watchdog = subprocess.Popen(
            product_command("cli.lifeline", str(data_dir)),
            stdin=subprocess.PIPE,
            pass_fds=(lock_fd,),
            start_new_session=True,
        )
        assert self.watchdog.stdin is not None
        self._pipe: IO[bytes] = self.watchdog.stdin

    def guard(self, server: EmbeddedNats | EmbeddedPostgres) -> None:
        self._tell("nats" if isinstance(server, EmbeddedNats) else "postgres")

    def guard_process(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):  # one that is already gone needs no stopping
            self._tell(f"process {pid} {psutil.Process(pid).create_time()!r}")

    def _tell(self, line: str) -> None:
        self._pipe.write(f"{line}\n".encode())
        self._pipe.flush()

    def close(self) -> None:
        """After `up` has stopped everything itself: the watchdog finds nothing left and ends."""
        self._pipe.close()
        self.watchdog.wait(30)


def watch(data_dir: Path, pipe: IO[bytes]) -> list[str]:
    """Read what `up` started until the pipe closes, then stop what still runs: the services,
    then PostgreSQL, then NATS. Returns what it stopped."""
    guarded = {line.strip().decode() for line in pipe}
    services = _still_running(line for line in guarded if line.startswith("process "))
    stopped = [f"service {p.pid}" for p in services]
    for process in services:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    for process in _lingering(services, SERVICE_GRACE):
        with contextlib.suppress(psutil.Error):
            process.kill()
    if "postgres" in guarded:
        postgres = EmbeddedPostgres(data_dir / "postgres")
        if postgres.running:
            postgres.stop()
            stopped.append("postgres")
    if "nats" in guarded:
        nats = EmbeddedNats(data_dir / "nats")
        if nats.attach():
            nats.stop()
            stopped.append("nats")
    return stopped


def _lingering(processes: list[psutil.Process], patience: float) -> list[psutil.Process]:
    """Those of `processes` still running after `patience` seconds. An ended one may stay a
    zombie until its new parent reaps it (not every container's init does): it has ended."""

    def ended(process: psutil.Process) -> bool:
        try:
            return bool(process.status() == psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + patience
    while (running := [p for p in processes if not ended(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running


def _still_running(lines: Iterable[str]) -> list[psutil.Process]:
    """The processes named `process PID START_TIME` that still run as those very processes."""
    running = []
    for line in lines:
        _, pid, started = line.split()
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(int(pid))
            if repr(process.create_time()) == started and process.is_running():
                running.append(process)
    return running


def main() -> None:
    # Signals meant for `up`'s terminal are not for the watchdog: it ends when the pipe does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    data_dir = Path(sys.argv[1])
    stopped = watch(data_dir, sys.stdin.buffer)
    if stopped:
        print(f"  `up` ended without stopping {', '.join(stopped)}: stopped", flush=True)


if __name__ == "__main__":
    main()
