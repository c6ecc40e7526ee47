"""Tables owned and enforced by PostgreSQL itself: from each service's role, on the real server,
every change to a table it does not own (nor was granted) is refused, as is reading one it does
not read; what it was granted works. And every table the migrations create has an owner."""

from __future__ import annotations

import asyncpg
import pytest

from yokeflow_intervention.shared.owners import (
    DATABASE_SERVICES,
    OPERATOR_TABLES,
    OWNERS,
    VIEWS,
    apply_table_owners,
)

from ..infra import ROLE_PASSWORDS, TestInfra

# Each statement needs exactly its privilege and changes nothing: PostgreSQL checks privileges
# before it looks at a row ({0}: the relation, {1}: its first column).
PROBES = {
    "SELECT": "SELECT 1 FROM {0} LIMIT 0",
    "INSERT": "INSERT INTO {0} ({1}) SELECT NULL WHERE false",
    "UPDATE": "UPDATE {0} SET {1} = NULL WHERE false",
    "DELETE": "DELETE FROM {0} WHERE false",
}


def _allowed(service: str, relation: str) -> set[str]:
    if relation in VIEWS:
        return {"SELECT"} if service in VIEWS[relation] else set()
    if relation in OPERATOR_TABLES:
        return set()
    ownership = OWNERS[relation]
    if ownership.owner == service:
        return set(PROBES)
    allowed = set(ownership.writers.get(service, ()))
    return allowed | ({"SELECT"} if service in ownership.readers else set())


async def _probe(conn: asyncpg.Connection, privilege: str, relation: str) -> bool:
    """Whether this role may do `privilege` to `relation`."""
    column = await conn.fetchval(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1", relation
    )
    try:
        async with conn.transaction():
            await conn.execute(PROBES[privilege].format(relation, column))
            raise _RolledBack
    except _RolledBack:
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False


class _RolledBack(Exception):
    """Undoes a probe that succeeded (none changes a row, but none may be left behind)."""


@pytest.fixture(scope="module")
async def unowned(infra: TestInfra) -> list[str]:
    return await apply_table_owners(infra.database_url, ROLE_PASSWORDS)


async def test_every_table_the_migrations_create_has_an_owner(unowned: list[str]) -> None:
    assert unowned == []


@pytest.mark.parametrize("service", DATABASE_SERVICES)
async def test_a_service_role_may_do_exactly_what_its_tables_grant(
    infra: TestInfra, unowned: list[str], service: str
) -> None:
    conn = await asyncpg.connect(infra.database_url_of(service))
    try:
        assert await conn.fetchval("SELECT current_user") == f"yokeflow_{service}"
        refused, granted = [], []
        for relation in (*OWNERS, *VIEWS, *OPERATOR_TABLES):
            privileges = ("SELECT",) if relation in VIEWS else tuple(PROBES)
            for privilege in privileges:
                (granted if await _probe(conn, privilege, relation) else refused).append(
                    (relation, privilege)
                )
        expected = {
            (r, p)
            for r in (*OWNERS, *VIEWS, *OPERATOR_TABLES)
            for p in PROBES
            if p in _allowed(service, r)
        }
        assert set(granted) == expected
        # Writing another service's table, concretely: the notifier's ledger from the pauser's
        # role, the pauser's interventions from anyone else's.
        other = "notification_deliveries" if service != "notifier" else "paused_sessions"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(f"DELETE FROM {other}")
        assert ("schema_migrations", "SELECT") in refused
    finally:
        await conn.close()
