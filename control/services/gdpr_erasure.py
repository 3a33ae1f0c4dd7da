"""GDPR erasure: every row of one workspace, removed in bounded batches.

Each batch is one statement and so one short transaction: no long locks, no giant WAL record, and
the engine and other tenants keep going meanwhile. Events go with their deliveries (bounded by the
deliveries' count too), attempts by their own index, the people who belong to no other workspace
with their sessions and tokens, then every table of the schema that has a client_id column (tables
added later included), and the audit log last, with the append-only trigger's leave for this
workspace only. Repeating it, or running it twice at once, is harmless.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import asyncpg

from control.store.queries import q

# Tables the erasure handles itself (or that go with their parent row), besides the generic pass.
OWN_STEPS = frozenset({"clients", "gdpr_erasures", "audit_logs", "events", "tasks", "endpoint_versions"})
# Order of the generic pass for the tables known today; tables added later follow, by name.
KNOWN_ORDER = ("delivery_rollups", "endpoints", "event_types", "api_keys", "sessions", "auth_tokens",
               "memberships", "client_usage", "projects")


@dataclass(frozen=True, slots=True)
class EraseLimits:
    rows: int = 5000      # rows per statement in every table
    events: int = 2000    # events per statement ...
    tasks: int = 5000     # ... whose deliveries (removed with them) number at most this


DEFAULT_LIMITS = EraseLimits()
Progress = Callable[[str, int], None]


def erase_order(tables: Iterable[str]) -> list[str]:
    """The generic pass's tables: the known ones in KNOWN_ORDER, then any other by name."""
    rest = sorted(set(tables) - OWN_STEPS)
    known = [t for t in KNOWN_ORDER if t in rest]
    return known + [t for t in rest if t not in known]


async def erase_rows(pool: asyncpg.Pool, client_id: uuid.UUID, limits: EraseLimits = DEFAULT_LIMITS,
                     progress: Progress | None = None) -> dict[str, int]:
    """Remove every row of the workspace, batch by batch (each one statement, one transaction);
    rows removed per table. Safe to repeat and to run twice at once."""
    counts: Counter[str] = Counter()

    def note(table: str, n: int) -> None:
        counts[table] += n
        if progress is not None:
            progress(table, n)

    async def drain(table: str, batch: Callable[[], Awaitable[int]]) -> None:
        while n := await batch():
            note(table, n)

    async def events() -> int:
        row = await pool.fetchrow(q("gdpr_erase_events"), client_id, limits.events, limits.tasks)
        if row["events"]:
            note("tasks", int(row["tasks"]))
        return int(row["events"])

    async def attempts() -> int:
        return _count(await pool.execute(q("gdpr_erase_attempts"), client_id, limits.rows))

    async def audit_logs() -> int:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(q("gdpr_allow_audit_erasure"), str(client_id))
            return int(await conn.fetchval(q("gdpr_erase_rows"), "audit_logs", client_id, limits.rows))

    def rows_of(table: str) -> Callable[[], Awaitable[int]]:
        async def batch() -> int:
            return int(await pool.fetchval(q("gdpr_erase_rows"), table, client_id, limits.rows))
        return batch

    await pool.execute(q("gdpr_erase_rate_buckets"), client_id)
    await drain("users", lambda: pool.fetchval(q("gdpr_erase_sole_members"), client_id, limits.rows))
    await drain("events", events)
    await drain("delivery_attempts", attempts)
    await pool.execute(q("gdpr_erase_endpoint_stats"), client_id)
    pending = erase_order(r["name"] for r in await pool.fetch(q("gdpr_client_tables")))
    while pending:
        blocked = []
        for table in pending:
            try:
                await drain(table, rows_of(table))
            except asyncpg.ForeignKeyViolationError:
                blocked.append(table)     # still referenced by a table later in the pass
        if len(blocked) == len(pending):
            raise RuntimeError(f"erasure stuck on foreign keys between {', '.join(blocked)}")
        pending = blocked
    await drain("audit_logs", audit_logs)
    return dict(counts)


def _count(status: str) -> int:
    """Rows of a command tag such as `DELETE 42`."""
    return int(status.rsplit(" ", 1)[-1])
