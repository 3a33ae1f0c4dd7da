"""The outcome writer: the only place a shard makes delivery results durable.

Outcomes are flushed every few milliseconds or every few hundred: attempts by COPY, task states by
one UNNEST update fenced by the shard's epoch, event roll-ups alongside, all in one transaction.
A delivery counts as done only once that transaction commits. While Postgres is down the batch is
kept and retried, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import asyncpg

from control import metrics
from control.services import rollups
from control.store.queries import q
from engine.model import Outcome

log = logging.getLogger("mittr.engine.writer")

ATTEMPT_COLUMNS = [
    "id", "task_id", "event_id", "client_id", "project_id", "endpoint_id", "event_type", "attempt_number",
    "status_code", "response_body", "error", "error_category", "outcome", "duration_ms",
    "processing_overhead_us", "attempted_at",
]


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _fact(o: Outcome) -> rollups.AttemptFact:
    return rollups.AttemptFact(o.task.client_id, o.task.project_id, o.task.endpoint_id, o.attempted_at,
                               o.outcome, o.error_category, o.duration_ms, o.new_status)


class OutcomeWriter:
    def __init__(self, pool: asyncpg.Pool, epoch: Callable[[], int], batch: int, interval_ms: int,
                 on_flushed: Callable[[list[Outcome], set[uuid.UUID]], None] | None = None) -> None:
        self.pool = pool
        self.epoch = epoch
        self.batch = batch
        self.interval = interval_ms / 1000
        self.pending: list[Outcome] = []
        self.releases: list[uuid.UUID] = []
        self.on_flushed = on_flushed
        self._wake = asyncio.Event()
        self._stopping = False
        self.flushed_total = 0

    def add(self, outcome: Outcome) -> None:
        self.pending.append(outcome)
        if len(self.pending) >= self.batch:
            self._wake.set()

    def release(self, task_ids: list[uuid.UUID]) -> None:
        """Give claimed-but-unsent tasks back to the queue (pause, shutdown, beyond the horizon)."""
        self.releases.extend(task_ids)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self.pending) + len(self.releases)

    async def run(self) -> None:
        failures = 0
        while True:
            if not self.pending and not self.releases:
                if self._stopping:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                except TimeoutError:
                    continue
            elif len(self.pending) < self.batch and not self._stopping:
                await asyncio.sleep(self.interval)
            try:
                await self.flush_once()
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                failures += 1
                log.warning("writer flush failed; will retry", extra={"error": str(exc), "failures": failures})
                await asyncio.sleep(min(0.05 * 2 ** failures, 2.0))

    async def flush_once(self) -> None:
        batch = self.pending[: self.batch]
        releases = self.releases[:]
        epoch = self.epoch()
        latest: dict[uuid.UUID, Outcome] = {}
        for o in batch:
            latest[o.task.id] = o   # a retry may finish before its first outcome is flushed
        async with self.pool.acquire() as conn, conn.transaction():
            matched: set[uuid.UUID] = set()
            if latest:
                rows = await conn.fetch(
                    q("record_outcomes"),
                    list(latest), [o.new_status for o in latest.values()],
                    [o.task.attempts for o in latest.values()],
                    [o.next_attempt_at for o in latest.values()],
                    [epoch if o.keep_claim else None for o in latest.values()],
                    [_clean(o.error) if o.error else None for o in latest.values()],
                    [o.delivered_at for o in latest.values()], epoch)
                matched = {r["id"] for r in rows}
                records = [
                    (o.attempt_id, o.task.id, o.task.event_id, o.task.client_id, o.task.project_id,
                     o.task.endpoint_id, o.task.event_type, o.attempt_number, o.status_code,
                     _clean(o.response_body), _clean(o.error), o.error_category, o.outcome, o.duration_ms,
                     o.overhead_us, o.attempted_at)
                    for o in batch if o.task.id in matched]
                if records:
                    await conn.copy_records_to_table("delivery_attempts", records=records,
                                                     columns=ATTEMPT_COLUMNS)
                    await conn.execute(q("rollup_events"), list({r["event_id"] for r in rows}))
                    # Analytics rollups, last so that their rows stay locked only until the commit.
                    await rollups.apply(conn, rollups.aggregate(_fact(o) for o in batch if o.task.id in matched))
            if releases:
                await conn.execute(q("release_tasks"), releases, epoch)
        metrics.observe_attempts((o.outcome, o.duration_ms, o.overhead_us) for o in batch if o.task.id in matched)
        del self.pending[: len(batch)]
        del self.releases[: len(releases)]
        self.flushed_total += len(batch)
        if self.on_flushed is not None and batch:
            self.on_flushed(batch, matched)

    async def drain(self, within: float) -> bool:
        """Flush everything (called on shutdown); False if Postgres did not take it in time."""
        self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (self.pending or self.releases) and loop.time() < deadline:  # noqa: ASYNC110 - run() flushes
            await asyncio.sleep(0.01)
        return not (self.pending or self.releases)
