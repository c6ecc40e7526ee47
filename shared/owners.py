"""Tables owned and enforced: each service that uses PostgreSQL connects as a role of its own,
allowed exactly the tables it owns, writes into and reads, as NATS enforces roles on the bus.

The owners are declared here, once, and applied after the migrations by provisioning
(`apply_table_owners`: `up`, `provision`), not by a migration: grants are recomputed from this
table on every provisioning, so a table a later migration adds, or a reader added here, is
granted without a migration of its own, and nothing granted by hand survives. A table no row
names is left to the operator's role (a warning at provisioning; a unit test fails).

Roles are named `yokeflow_<service>` and are created with LOGIN, with the password
`$YOKEFLOW_DB_PASSWORD_<SERVICE>` when provisioning's environment has one (Compose, Kubernetes);
the embedded PostgreSQL trusts its unix socket, which only its own folder's user reaches, so
`up` gives each service its role's URL without a password. A single `DATABASE_URL` for every
service (the operator's own role) still works: the roles then exist unused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

__all__ = [
    "DATABASE_SERVICES",
    "OPERATOR_TABLES",
    "OWNERS",
    "VIEWS",
    "Ownership",
    "apply_table_owners",
    "database_role",
    "passwords_from_environment",
    "role_url",
]

log = logging.getLogger(__name__)

# The services that use PostgreSQL; the detector and the orchestrator keep their state on NATS.
DATABASE_SERVICES = ("pauser", "notifier", "recovery", "api")
_EVERY_CHANGE = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Ownership:
    """Who may do what to one table: its owner every change; `writers` the privileges named
    (an audit row, a project registered on the way); `readers` SELECT."""

    owner: str
    writers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    readers: tuple[str, ...] = ()


OWNERS: dict[str, Ownership] = {
    "projects": Ownership("pauser", writers={"api": ("INSERT",)}, readers=("api",)),
    "sessions": Ownership("pauser"),
    "paused_sessions": Ownership("pauser", readers=("api", "notifier", "recovery")),
    "intervention_actions": Ownership(
        "pauser",
        writers={"notifier": ("INSERT",), "recovery": ("INSERT",)},
        readers=("api", "notifier", "recovery"),
    ),
    "session_warnings": Ownership("pauser", readers=("api",)),
    "notification_preferences": Ownership("api", readers=("notifier",)),
    "notification_deliveries": Ownership("notifier", readers=("api",)),
    "notification_throttle": Ownership("notifier"),
    "notification_decisions": Ownership("notifier"),
    "incident_pages": Ownership("notifier"),
    "slack_messages": Ownership("notifier"),
    "action_link_uses": Ownership("api"),
    "action_link_audit": Ownership("api"),
}
# Views read through their owner's rights (the operator's role that ran the migrations).
VIEWS: dict[str, tuple[str, ...]] = {
    "active_interventions": ("api", "pauser"),
    "intervention_history": ("api", "pauser"),
}
# The operator's alone (the role that runs migrations): no service touches them.
OPERATOR_TABLES = ("schema_migrations",)


def database_role(service: str) -> str:
    return f"yokeflow_{service}"


def role_url(url: str, service: str, password: str | None = None) -> str:
    """`url` (the operator's) with the service's role as its user instead."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(database_role(service), safe="")
    secret = f":{quote(password, safe='')}" if password else ""
    return urlunsplit(parts._replace(netloc=f"{user}{secret}@{host}"))


def passwords_from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Each role's password, from `$YOKEFLOW_DB_PASSWORD_<SERVICE>`, where set."""
    found = {s: environ.get(f"YOKEFLOW_DB_PASSWORD_{s.upper()}", "") for s in DATABASE_SERVICES}
    return {service: password for service, password in found.items() if password}


def _grants() -> list[tuple[str, str, tuple[str, ...]]]:
    """(relation, service, privileges) for every grant the tables above declare."""
    grants: list[tuple[str, str, tuple[str, ...]]] = []
    for table, ownership in OWNERS.items():
        grants.append((table, ownership.owner, _EVERY_CHANGE))
        for service, privileges in ownership.writers.items():
            grants.append((table, service, privileges))
        for service in ownership.readers:
            grants.append((table, service, ("SELECT",)))
    for view, readers in VIEWS.items():
        grants += [(view, service, ("SELECT",)) for service in readers]
    return grants


async def apply_table_owners(url: str, passwords: Mapping[str, str] | None = None) -> list[str]:
    """Create the services' roles, then grant each exactly what the tables above declare (and
    revoke whatever else it had), in one transaction. Returns the relations no row names."""
    conn = await asyncpg.connect(url)
    try:
        for service in DATABASE_SERVICES:
            role = database_role(service)
            # Roles belong to the whole server: several databases (or provisioners) share them.
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                try:
                    await conn.execute(f'CREATE ROLE "{role}" LOGIN')
                except asyncpg.DuplicateObjectError:
                    pass
            password = (passwords or {}).get(service)
            if password:
                statement = await conn.fetchval(
                    "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                    role,
                    password,
                )
                await conn.execute(statement)
        async with conn.transaction():
            for service in DATABASE_SERVICES:
                role = database_role(service)
                await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
                await conn.execute(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}"')
                await conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            for relation, service, privileges in _grants():
                await conn.execute(
                    f'GRANT {", ".join(privileges)} ON {relation} TO "{database_role(service)}"'
                )
                if "INSERT" in privileges:  # a serial id: its sequence too
                    for sequence in await _sequences_of(conn, relation):
                        await conn.execute(
                            f'GRANT USAGE ON SEQUENCE {sequence} TO "{database_role(service)}"'
                        )
        found = await conn.fetch(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')"""
        )
    finally:
        await conn.close()
    named = {*OWNERS, *VIEWS, *OPERATOR_TABLES}
    unowned = sorted(r["relname"] for r in found if r["relname"] not in named)
    if unowned:
        log.warning(
            "no owner declared for %s (shared/owners.py): only the operator's role may use them",
            ", ".join(unowned),
        )
    return unowned


async def _sequences_of(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        """SELECT s.oid::regclass::text AS name FROM pg_class s
           JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
           JOIN pg_class t ON t.oid = d.refobjid
           WHERE s.relkind = 'S' AND t.relname = $1""",
        table,
    )
    return [row["name"] for row in rows]
