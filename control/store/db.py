"""Connections: asyncpg pools with orjson codecs, and the migration runner."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg
import orjson

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x6D69_7474_72  # advisory lock key: two processes never migrate at once
log = logging.getLogger("mittr.store")
# What a lost or unreachable database raises (the API answers 503 UNAVAILABLE for these).
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                 asyncpg.AdminShutdownError, asyncpg.InterfaceError)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


# The server probes an idle TCP client after 30 s and drops it after three unanswered probes 10 s
# apart: a client host that vanished (power loss, partition) loses its session, and the session
# advisory locks it held (retention, alert evaluator, billing rollover), in about a minute instead
# of the kernel's two hours. Ignored on Unix-socket connections.
KEEPALIVES = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}


async def connect(url: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(url, server_settings=KEEPALIVES)
    await init_connection(conn)
    return conn


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without asyncpg's reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL): one round trip saved on every acquire, measured as a share of the API's
    CPU per request. Pooled connections never carry session state: LISTEN and session advisory
    locks use connections of their own (`connect`), settings are per transaction. An open
    transaction is still rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(url: str, min_size: int = 2, max_size: int = 10,
                      idle_in_transaction_s: float = 0) -> asyncpg.Pool:
    """`idle_in_transaction_s` > 0: PostgreSQL ends a session of this pool that sits in an open
    transaction that long without a statement. A process cut off from the database in the middle
    of a transaction (a partitioned engine host, a frozen API host) would otherwise keep its row and
    advisory locks until TCP gives up, hours later, and stall every process that needs them: the
    writers updating the same roll-up rows, the next owner of its range."""
    settings = dict(KEEPALIVES)
    if idle_in_transaction_s > 0:
        settings["idle_in_transaction_session_timeout"] = str(max(1, round(idle_in_transaction_s * 1000)))
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=init_connection,
                                     command_timeout=60, connection_class=PooledConnection,
                                     server_settings=settings)
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, timeout_s: float) -> None:
    """Close within `timeout_s`, else drop every connection at once. asyncpg's graceful close
    waits for each connection's queries and for the server to answer its terminate message, which
    on a link that went silent (a partition, a dead host) is until TCP gives up, hours later; a
    process that must exit (a shard that lost its lease) would hang there."""
    if timeout_s > 0:
        try:
            await asyncio.wait_for(pool.close(), timeout_s)
            return
        except (TimeoutError, *DATABASE_DOWN, asyncpg.PostgresError):
            pass
    pool.terminate()


def migration_files() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number = int(path.name.split("_", 1)[0])
        found.append((number, path.stem, path))
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError("two migrations share a number")
    return found


async def migrate(conn: asyncpg.Connection, partitions: int = 4096) -> list[str]:
    """Apply pending migrations in order, under an advisory lock; returns the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for number, name, path in migration_files():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                   number, name)
            applied.append(name)
            log.info("migration applied", extra={"migration": name})
        await conn.execute(
            "INSERT INTO mittr_meta (key, value) VALUES ('partitions', $1) ON CONFLICT (key) DO NOTHING",
            str(partitions))
        await conn.execute("SELECT mittr_ensure_attempt_partitions(current_date - 1, 9)")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied


async def partitions_of(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The partition count fixed when the database was made (config only seeds it)."""
    value = await conn.fetchval("SELECT value FROM mittr_meta WHERE key = 'partitions'")
    return int(value)
