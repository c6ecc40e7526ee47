"""Fixtures shared by the whole suite; real servers start once per test run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client

from shared.bus import provision
from shared.db import migrate

from .infra import TestInfra, test_infrastructure


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestInfra]:
    data_dir = tmp_path_factory.mktemp("infra")
    with test_infrastructure(data_dir) as found:

        async def prepare() -> None:
            nc = await nats.connect(found.nats_url)
            await provision(nc)
            await nc.close()
            await migrate(found.database_url)

        asyncio.run(prepare())
        yield found


@pytest.fixture(scope="session")
async def nc(infra: TestInfra) -> AsyncIterator[Client]:
    client = await nats.connect(infra.nats_url)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def db(infra: TestInfra) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(infra.database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Ids no other test uses, so tests can share the servers."""
    suffix = uuid.uuid4().hex[:10]
    return lambda name: f"{name}-{suffix}"


def service_env(infra: TestInfra, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_", "DATABASE_"))
    }
    env.update(NATS_URL=infra.nats_url, DATABASE_URL=infra.database_url, PYTHONUNBUFFERED="1")
    env["YOKEFLOW_DATA_DIR"] = str(infra.data_dir)
    env.update(extra)
    return env


class ServiceProcesses:
    """Real service processes, as `up` runs them; every one is killed at teardown."""

    def __init__(self, infra: TestInfra, log_dir: Path) -> None:
        self.infra = infra
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, service: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{service}-{len(self.running)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=service_env(self.infra, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.log_dir,
        )
        self.running.append(process)
        return process

    @staticmethod
    def kill9(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


@pytest.fixture
def services(infra: TestInfra, tmp_path: Path) -> Iterator[ServiceProcesses]:
    procs = ServiceProcesses(infra, tmp_path)
    yield procs
    procs.stop_all()
