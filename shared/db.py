"""PostgreSQL access: a pool and the versioned migration runner.

Migrations are the numbered SQL files in shared/migrations, applied once each, in order, in a
transaction, under an advisory lock, so several services starting together apply them once.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

__all__ = ["MIGRATION_LOCK_ID", "create_pool", "migrate", "pending_migrations"]

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 0x59F1_0001


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("yokeflow_intervention.shared") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def create_pool(url: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    applied = set()
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [name for version, name, _ in _migration_files() if version not in applied]


async def migrate(url: str) -> list[str]:
    """Apply the migrations not yet applied; return their file names."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            applied = {
                r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
            }
            done = []
            for version, name, sql in _migration_files():
                if version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                log.info("applied migration %s", name)
                done.append(name)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()
