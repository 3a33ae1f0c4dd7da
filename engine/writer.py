"""The outcome writer: the only place a shard makes delivery results durable.

Outcomes are flushed every few milliseconds or every few hundred: attempts by COPY, task states by
one UNNEST update fenced by the shard's epoch and by each task's attempt count, event roll-ups and
analytics roll-ups alongside, all in one transaction. A delivery counts as done only once that
transaction commits. While Postgres is down the batch is kept and retried, never dropped.

A failed write may have committed all the same (the COMMIT's acknowledgement lost to a restart, a
dropped connection, a timeout), so a retried write is idempotent: outcomes whose attempt rows are
there already are left out, the task update matches only tasks still at the attempt count their
outcome was decided on, attempt rows go in with ON CONFLICT DO NOTHING, and the analytics count only
the rows inserted now. What to do about a failure (retry, split out a poison outcome, give up the
lease) is decided in engine/policy/recording.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from control import metrics
from control.services import rollups
from control.store.queries import q
from engine.model import Outcome
from engine.policy.recording import WedgeWatch, classify, halves, retry_delay_s, step

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


def _attempt_row(o: Outcome) -> tuple[Any, ...]:
    return (o.attempt_id, o.task.id, o.task.event_id, o.task.client_id, o.task.project_id, o.task.endpoint_id,
            o.task.event_type, o.attempt_number, o.status_code, _clean(o.response_body), _clean(o.error),
            o.error_category, o.outcome, o.duration_ms, o.overhead_us, o.attempted_at)


def describe(exc: BaseException) -> str:
    """An error for the log. A data error's message can quote the rows (response bodies), so only
    its type and SQLSTATE are logged; a transient one's message is about the connection."""
    state = getattr(exc, "sqlstate", None)
    name = type(exc).__name__ + (f" {state}" if state else "")
    return f"{name}: {exc}" if classify(exc) == "transient" else name


@dataclass(slots=True)
class Flushed:
    recorded: int = 0     # outcomes done with: committed (applied, found applied, or fenced out)
    dropped: int = 0      # poison outcomes given up on


class OutcomeWriter:
    def __init__(self, pool: asyncpg.Pool, epoch: Callable[[], int], batch: int, interval_ms: int,
                 on_flushed: Callable[[list[Outcome], set[uuid.UUID]], None] | None = None,
                 on_stuck: Callable[[], None] | None = None,
                 on_dropped: Callable[[Outcome], None] | None = None,
                 stuck_after_s: float = 30.0, stuck_failures: int = 5) -> None:
        """`on_stuck` is called once when writes have failed without a break for `stuck_after_s`
        seconds (pass the lease TTL) and at least `stuck_failures` times: the shard should then give
        its lease up. `on_dropped` gets each poison outcome dropped; its task is still claimed."""
        self.pool = pool
        self.epoch = epoch
        self.batch = batch
        self.interval = interval_ms / 1000
        self.pending: list[Outcome] = []
        self.releases: list[uuid.UUID] = []
        self.on_flushed = on_flushed
        self.on_stuck = on_stuck
        self.on_dropped = on_dropped
        self.watch = WedgeWatch(stuck_after_s, stuck_failures)
        self._tried: set[uuid.UUID] = set()     # attempt ids that were in a write that failed
        self._wake = asyncio.Event()
        self._stopping = False
        self.flushed_total = 0
        self.dropped_total = 0

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

    @property
    def wedged(self) -> bool:
        """Writes have been failing long enough for `on_stuck` to have been called."""
        return self.watch.wedged

    async def run(self) -> None:
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
                flushed = await self.flush_once()
            except Exception as exc:   # transient: flush_once deals with poison itself
                self._failed(describe(exc))
                await asyncio.sleep(retry_delay_s(self.watch.streak))
                continue
            if flushed.dropped and not flushed.recorded:
                self._failed("every outcome of the batch was refused")
            else:
                self.watch.success()

    def _failed(self, error: str) -> None:
        if self.watch.failure(asyncio.get_running_loop().time()):
            log.error("outcome writer wedged; giving the lease up",
                      extra={"error": error, "failures": self.watch.streak, "pending": len(self.pending)})
            if self.on_stuck is not None:
                self.on_stuck()
        else:
            log.warning("writer flush failed; will retry", extra={"error": error, "failures": self.watch.streak})

    async def flush_once(self) -> Flushed:
        """Write the head of the backlog. A transient failure is raised (the caller retries it
        whole); a poison batch is split until the outcome at fault stands alone and is dropped."""
        batch = self.pending[: self.batch]
        releases = self.releases[:]
        try:
            matched, new = await self._write(batch, releases)
        except Exception as exc:
            self._tried.update(o.attempt_id for o in batch)
            if classify(exc) == "transient":
                raise
            if not batch:
                self._drop_releases(releases, exc)
                return Flushed()
            log.warning("writer batch refused; isolating the outcome at fault",
                        extra={"error": describe(exc), "size": len(batch)})
            await self._release_alone(releases)
            return await self._isolate(batch, exc)
        self._done(batch, matched, new)
        del self.releases[: len(releases)]
        return Flushed(recorded=len(batch))

    async def _release_alone(self, releases: list[uuid.UUID]) -> None:
        if not releases:
            return
        try:
            await self._write([], releases)
        except Exception as exc:
            if classify(exc) == "transient":
                raise
            self._drop_releases(releases, exc)
            return
        del self.releases[: len(releases)]

    def _drop_releases(self, releases: list[uuid.UUID], exc: Exception) -> None:
        # The orphan sweep gives back whatever the shard claimed and no longer holds.
        log.error("task releases refused; the orphan sweep returns them",
                  extra={"error": describe(exc), "tasks": len(releases)})
        del self.releases[: len(releases)]

    async def _isolate(self, chunk: list[Outcome], exc: Exception) -> Flushed:
        """`chunk`, at the head of the backlog, failed with `exc`: halve it until it writes."""
        what = step(classify(exc), len(chunk))
        if what == "retry":
            raise exc
        if what == "drop":
            self._drop(chunk[0], exc)
            return Flushed(dropped=1)
        total = Flushed()
        for half in halves(chunk):
            try:
                matched, new = await self._write(half, [])
            except Exception as failure:
                self._tried.update(o.attempt_id for o in half)
                part = await self._isolate(half, failure)
                total.recorded += part.recorded
                total.dropped += part.dropped
            else:
                self._done(half, matched, new)
                total.recorded += len(half)
        return total

    def _drop(self, o: Outcome, exc: Exception) -> None:
        log.error("outcome refused by the database; dropped, its task stays claimed until the orphan sweep",
                  extra={"error": describe(exc), "task": str(o.task.id), "event": str(o.task.event_id),
                         "attempt": str(o.attempt_id), "attempt_number": o.attempt_number})
        self._forget([o])
        self.dropped_total += 1
        if self.on_dropped is not None:
            self.on_dropped(o)

    def _forget(self, chunk: list[Outcome]) -> None:
        n = len(chunk)
        assert all(a is b for a, b in zip(self.pending[:n], chunk, strict=True)), "chunks leave in order"
        del self.pending[:n]
        self._tried.difference_update(o.attempt_id for o in chunk)

    def _done(self, chunk: list[Outcome], matched: set[uuid.UUID], new: list[Outcome]) -> None:
        metrics.observe_attempts((o.outcome, o.duration_ms, o.overhead_us) for o in new)
        self._forget(chunk)
        self.flushed_total += len(chunk)
        if self.on_flushed is not None and chunk:
            self.on_flushed(chunk, matched)

    async def _write(self, outcomes: list[Outcome], releases: list[uuid.UUID]) -> tuple[set[uuid.UUID], list[Outcome]]:
        """One transaction. Returns the tasks updated and the outcomes whose attempts it inserted."""
        epoch = self.epoch()
        retry = any(o.attempt_id in self._tried for o in outcomes)
        matched: set[uuid.UUID] = set()
        new: list[Outcome] = []
        async with self.pool.acquire() as conn, conn.transaction():
            if retry:
                found = await conn.fetch(q("applied_attempts"), [o.attempt_id for o in outcomes],
                                         [o.attempted_at for o in outcomes])
                applied = {r["id"] for r in found}
                outcomes = [o for o in outcomes if o.attempt_id not in applied]
            if outcomes:
                rows = await self._record(conn, outcomes, epoch)
                matched = {r["id"] for r in rows}
                kept = [o for o in outcomes if o.task.id in matched]
                if kept:
                    records = [_attempt_row(o) for o in kept]
                    if retry:
                        columns = [list(c) for c in zip(*records, strict=True)]
                        inserted = await conn.fetch(q("insert_attempts"), *columns)
                        ids = {r["id"] for r in inserted}
                        new = [o for o in kept if o.attempt_id in ids]
                    else:
                        # A first try: none of these attempts can be there yet, so COPY is safe.
                        await conn.copy_records_to_table("delivery_attempts", records=records, columns=ATTEMPT_COLUMNS)
                        new = kept
                    await self._rollup_events(conn, rows)
                    # Analytics rollups, last so that their rows stay locked only until the commit.
                    await rollups.apply(conn, rollups.aggregate(_fact(o) for o in new))
            if releases:
                await conn.execute(q("release_tasks"), releases, epoch)
        return matched, new

    @staticmethod
    async def _rollup_events(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
        """Events of one task take their task's new state as it is (no read of tasks); the others,
        fan-out events, are aggregated over their tasks."""
        rest = await conn.fetchval(q("rollup_single_task_events"), [r["event_id"] for r in rows],
                                   [r["status"] for r in rows], [r["attempts"] for r in rows],
                                   [r["delivered_at"] for r in rows])
        if rest:
            await conn.execute(q("rollup_events"), rest)

    @staticmethod
    async def _record(conn: asyncpg.Connection, outcomes: list[Outcome], epoch: int) -> list[asyncpg.Record]:
        """The task update: each task gets its latest outcome's state, fenced by every attempt count
        one of its outcomes here was decided on (see record_outcomes)."""
        latest: dict[uuid.UUID, Outcome] = {}
        priors: dict[uuid.UUID, list[int]] = {}
        for o in outcomes:
            latest[o.task.id] = o   # a retry may finish before its first outcome is flushed
            counts = priors.setdefault(o.task.id, [])
            if o.prior_attempts not in counts:
                counts.append(o.prior_attempts)
        rows = [(latest[task_id], prior) for task_id, counts in priors.items() for prior in counts]
        found: list[asyncpg.Record] = await conn.fetch(
            q("record_outcomes"),
            [o.task.id for o, _ in rows], [o.new_status for o, _ in rows], [o.attempts for o, _ in rows],
            [o.next_attempt_at for o, _ in rows], [epoch if o.keep_claim else None for o, _ in rows],
            [_clean(o.error) if o.error else None for o, _ in rows], [o.delivered_at for o, _ in rows], epoch,
            [prior for _, prior in rows])
        return found

    async def drain(self, within: float) -> bool:
        """Flush everything (called on shutdown); False if Postgres did not take it in time."""
        self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (self.pending or self.releases) and loop.time() < deadline:  # noqa: ASYNC110 - run() flushes
            await asyncio.sleep(0.01)
        return not (self.pending or self.releases)
