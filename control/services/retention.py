"""Retention: remove what is older than `[retention]` allows, without long locks.

- Events (with their tasks) once created more than `events_days` ago and every delivery has ended
  (delivered or dead). Work still queued, in flight, waiting for a retry (`failed`) or for a poll
  acknowledgement keeps its event, however old. Walked along the primary key (ids are UUIDv7, so
  "created before the cutoff" is a key range) in bounded batches, one short transaction each.
- Delivery attempts by whole day partitions once the day ended more than `attempts_days` ago
  (DROP TABLE: no row deletes), and old rows of the default partition.
- Analytics rollups of minutes more than `rollups_days` ago.

One run per cluster at a time (a session advisory lock); shards run it every `interval_s`, and
`mittr prune` on demand.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from control.settings import Settings, SettingsError
from control.store.db import connect
from control.store.queries import q

log = logging.getLogger("mittr.retention")

RETENTION_LOCK = 0x6D69_7474_7270  # advisory lock key ("mittrp"): one pruning run per cluster
BATCH_ROWS = 5000                   # rows per transaction: each step holds its locks only briefly
DEADLOCK_TRIES = 3
NIL_UUID = uuid.UUID(int=0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_MAX = (1 << 48) - 1


def uuid_floor(ts: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `ts`'s millisecond (timestamp bits, all else zero): ids made in an
    earlier millisecond sort below it, ids made from that millisecond on sort at or above it."""
    if ts.tzinfo is None:
        raise ValueError("uuid_floor needs an aware datetime")
    ms = min(max((ts - EPOCH) // timedelta(milliseconds=1), 0), MS_MAX)
    return uuid.UUID(int=ms << 80)


def cutoff(now: datetime, days: int) -> datetime | None:
    """What is older than this goes; None (0 days) keeps everything."""
    return now - timedelta(days=days) if days > 0 else None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    events_days: int
    attempts_days: int
    rollups_days: int
    interval_s: int
    batch: int = BATCH_ROWS

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The `[retention]` section, checked; attempts_days -1 means "as long as events"."""
        sec = settings.section("retention")

        def whole(key: str, least: int) -> int:
            value = sec[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise SettingsError(f"retention.{key}: expected an integer >= {least}, got {value!r}")
            return value

        events = whole("events_days", 0)
        attempts = whole("attempts_days", -1)
        return cls(events, events if attempts == -1 else attempts, whole("rollups_days", 0),
                   whole("interval_s", 0))


@dataclass
class PruneReport:
    """What a run removed (or, dry, would remove). `skipped` says why nothing ran."""

    dry_run: bool
    skipped: str | None = None
    events: int = 0
    tasks: int = 0
    partitions: list[str] = field(default_factory=list)          # attempt day partitions dropped
    partitions_skipped: list[str] = field(default_factory=list)  # lock not granted in time: next run
    partition_rows: int | None = None                            # their rows; counted by dry runs only
    default_attempts: int = 0
    rollups: int = 0

    @property
    def removed_anything(self) -> bool:
        return bool(self.events or self.partitions or self.default_attempts or self.rollups)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[str, PruneReport], None]


def _quiet(_step: str, _report: PruneReport) -> None:
    return None


async def prune(conn: asyncpg.Connection, policy: RetentionPolicy, *, dry_run: bool = False,
                now: datetime | None = None, progress: Progress = _quiet,
                only_if_due: bool = False) -> PruneReport:
    """One run on `conn` (it holds the advisory lock, so it must not be shared meanwhile). A dry run
    takes no lock and changes nothing. `only_if_due`: skip when any process finished a run less
    than `interval_s` ago (how shards share the schedule)."""
    report = PruneReport(dry_run)
    now = now or datetime.now(UTC)
    if dry_run:
        await _run_steps(conn, policy, now, report, progress)
        return report
    if not await conn.fetchval(q("retention_try_lock"), RETENTION_LOCK):
        report.skipped = "another process is pruning"
        return report
    try:
        if only_if_due and not await conn.fetchval(q("retention_due"), float(policy.interval_s)):
            report.skipped = "not due"
            return report
        await _run_steps(conn, policy, now, report, progress)
        await conn.execute(q("retention_mark_run"))
    finally:
        if not conn.is_closed():
            try:
                await conn.fetchval(q("retention_unlock"), RETENTION_LOCK)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass   # the lock ends with the session anyway
    return report


async def _run_steps(conn: asyncpg.Connection, policy: RetentionPolicy, now: datetime, report: PruneReport,
                     progress: Progress) -> None:
    events_cut = cutoff(now, policy.events_days)
    if events_cut is not None:
        await _prune_events(conn, policy.batch, events_cut, report, progress)
    attempts_cut = cutoff(now, policy.attempts_days)
    if attempts_cut is not None:
        await _prune_attempts(conn, policy.batch, attempts_cut, report, progress)
    rollups_cut = cutoff(now, policy.rollups_days)
    if rollups_cut is not None:
        await _prune_rollups(conn, policy.batch, rollups_cut, report, progress)


async def _prune_events(conn: asyncpg.Connection, batch: int, cut: datetime, report: PruneReport,
                        progress: Progress) -> None:
    floor, after = uuid_floor(cut), NIL_UUID
    while True:
        for attempt in range(DEADLOCK_TRIES):
            try:   # a deadlock with a replay locking the same event: that batch again
                row = await conn.fetchrow(q("retention_events_batch"), after, floor, cut, batch, report.dry_run)
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_TRIES - 1:
                    raise
        assert row is not None
        if not row["found"]:
            return
        report.events += row["found"] if report.dry_run else row["deleted"]
        report.tasks += row["found_tasks"] if report.dry_run else row["deleted_tasks"]
        progress("events", report)
        if row["found"] < batch:
            return
        after = row["last_id"]


async def _prune_attempts(conn: asyncpg.Connection, batch: int, cut: datetime, report: PruneReport,
                          progress: Progress) -> None:
    if report.dry_run:
        report.partition_rows = 0
    parts = await conn.fetch(q("retention_attempt_partitions"), cut)
    for i, part in enumerate(parts):
        name = part["name"]
        if report.dry_run:
            report.partition_rows = (report.partition_rows or 0) + await conn.fetchval(
                q("retention_count_attempts_between"), part["lower_bound"], part["upper_bound"])
            report.partitions.append(name)
        else:
            try:
                dropped = await conn.fetchval(q("retention_drop_attempt_partition"), name)
            except asyncpg.LockNotAvailableError:   # a long reader of the attempts: the rest would wait too
                report.partitions_skipped = [p["name"] for p in parts[i:]]
                log.warning("attempts busy; partitions left for the next run", extra={"partition": name})
                break
            if dropped:
                report.partitions.append(name)
        progress("attempts", report)
    if report.dry_run:
        report.default_attempts = await conn.fetchval(q("retention_count_default_attempts"), cut)
        return
    while True:
        gone = await conn.fetchval(q("retention_delete_default_attempts"), cut, batch)
        report.default_attempts += gone
        if gone:
            progress("attempts", report)
        if gone < batch:
            return


async def _prune_rollups(conn: asyncpg.Connection, batch: int, cut: datetime, report: PruneReport,
                         progress: Progress) -> None:
    if report.dry_run:
        report.rollups = await conn.fetchval(q("retention_count_rollups"), cut)
        return
    for client in await conn.fetch(q("retention_rollup_clients")):
        while True:
            gone = await conn.fetchval(q("retention_delete_rollups"), client["client_id"], cut, batch)
            report.rollups += gone
            if gone:
                progress("rollups", report)
            if gone < batch:
                break


async def prune_on_schedule(url: str, policy: RetentionPolicy) -> PruneReport | None:
    """A shard's periodic run, on a connection of its own (the shard's pool stays free for
    deliveries). Never raises: a failure is logged and the next interval tries again."""
    try:
        conn = await connect(url)
        try:
            report = await prune(conn, policy, only_if_due=True)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        log.warning("retention run failed", extra={"error": str(exc)})
        return None
    except Exception:
        log.exception("retention run failed")
        return None
    if report.removed_anything or report.partitions_skipped:
        log.info("retention run", extra=report.as_dict())
    return report
