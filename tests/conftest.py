"""Fixtures shared by the whole suite; real servers start once per test run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client

from yokeflow_intervention.shared.bus import provision
from yokeflow_intervention.shared.db import migrate
from yokeflow_intervention.shared.owners import apply_table_owners

from .helpers import FAULT_REPORT, ServiceProcesses
from .infra import ROLE_PASSWORDS, TestInfra, test_infrastructure


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestInfra]:
    data_dir = tmp_path_factory.mktemp("infra")
    with test_infrastructure(data_dir) as found:

        async def prepare() -> None:
            nc = await nats.connect(found.nats_url)
            await provision(nc)
            await nc.close()
            await migrate(found.database_url)
            await apply_table_owners(found.database_url, ROLE_PASSWORDS)

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


@pytest.fixture
def services(infra: TestInfra, tmp_path: Path) -> Iterator[ServiceProcesses]:
    procs = ServiceProcesses(infra, tmp_path)
    yield procs
    procs.stop_all()


FAULT_TABLE_HEADER = (
    "| fault | what was done | stuck sessions | paused | duplicate pauses | webhook notices "
    "processed | resends dropped by receiver | emails | emails `unknown` | recovered "
    "| next sessions started | dead letters | seconds |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FAULT_REPORT] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault-injection counts, on screen and in test-output/faults.md."""
    rows = terminalreporter.config.stash[FAULT_REPORT]
    if not rows:
        return
    table = "\n".join([FAULT_TABLE_HEADER, *rows])
    terminalreporter.write_sep("=", "faults on a 3-node NATS cluster")
    terminalreporter.write_line(table)
    report = Path(__file__).resolve().parents[1] / "test-output" / "faults.md"
    report.parent.mkdir(exist_ok=True)
    report.write_text(table + "\n")
