"""Bringing due work from Postgres into a shard's memory, fairly.

One statement claims a batch of due tasks of the shard's range under its lease epoch. Each target
may hold only its cap (engine/policy/admission.py): targets at their cap are named in the claim and
skipped, so a backlog that one endpoint drains slowly stays in Postgres and a fresh endpoint's
event is claimed at once. Work claimed for a deleted endpoint (an ingest raced the DELETE) is ended
as dead on the spot. A claim whose reply was lost is found by the orphan sweep and given back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import asyncpg

from control.crypto import SecretBox
from control.policy.partitioning import partition_for, target_key
from control.signalling import notify_work
from control.store.queries import q
from engine.dispatch import ClaimPlan, Dispatcher, Target
from engine.endpoint_cache import EndpointCache
from engine.lease import DB_ERRORS, Lease
from engine.model import Task, fifo_key
from engine.policy.spread import helper_partitions, top_up
from engine.writer import OutcomeWriter

log = logging.getLogger("mittr.engine.claimer")
ORPHAN_SWEEP_S = 60.0
DELETED_REASON = "endpoint deleted"
SPREAD_EVERY_S = 0.25     # hot targets are looked at (and their helpers topped up) at most this often
SCAN_MAX = 20_000         # most unclaimed tasks read to count what waits in a hot target's helpers


def now_ms() -> int:
    return int(time.time() * 1000)


class Claimer:
    def __init__(self, pool: asyncpg.Pool, lease: Lease, dispatcher: Dispatcher, endpoints: EndpointCache,
                 writer: OutcomeWriter, box: SecretBox, *, batch: int, max_buffered: int, horizon_s: float,
                 scan_interval_s: float, on_claimed: Callable[[], None], stopping: Callable[[], bool],
                 partitions: int = 0, ranges: Callable[[], list[tuple[int, int]]] = list,
                 spread_width: int = 1) -> None:
        """`partitions`, `ranges` (every shard's range now) and `spread_width` (most shards one hot
        target is spread over; 1: never) drive hot-target spreading (engine/policy/spread.py)."""
        self.pool, self.lease, self.dispatcher = pool, lease, dispatcher
        self.endpoints, self.writer, self.box = endpoints, writer, box
        self._secrets: dict[str, str] = {}     # sealed client signing secret -> opened
        self.batch, self.max_buffered = batch, max_buffered
        self.horizon_s, self.scan_interval_s = horizon_s, scan_interval_s
        self.on_claimed, self.stopping = on_claimed, stopping
        self.wanted = asyncio.Event()
        self.orphans_suspected = False
        self.buried = 0
        self.partitions, self.ranges, self.spread_width = partitions, ranges, spread_width
        self.spread_at = 0.0
        self.moved = 0          # tasks this shard moved to helper partitions

    @property
    def held(self) -> int:
        """Tasks in memory: claimed and unfinished, plus outcomes not yet written. Counting the
        writer's backlog is the backpressure that keeps memory flat when Postgres records outcomes
        slower than the sinks answer."""
        return self.dispatcher.buffered + len(self.writer.pending)

    def want(self) -> None:
        self.wanted.set()

    async def run(self) -> None:
        last_sweep = time.monotonic()
        while not self.stopping():
            try:
                await asyncio.wait_for(self.wanted.wait(), timeout=self.scan_interval_s)
            except TimeoutError:
                pass
            self.wanted.clear()
            if self.orphans_suspected or time.monotonic() - last_sweep > ORPHAN_SWEEP_S:
                try:
                    await self.release_orphans()
                    self.orphans_suspected = False
                    last_sweep = time.monotonic()
                except DB_ERRORS as exc:
                    log.warning("orphan sweep failed", extra={"error": str(exc)})
                    continue
            await self.claim_all()
            if self.spread_width > 1 and time.monotonic() - self.spread_at >= SPREAD_EVERY_S:
                self.spread_at = time.monotonic()
                try:
                    await self.spread_hot()
                except DB_ERRORS as exc:
                    log.warning("spreading a hot target failed", extra={"error": str(exc)})

    async def claim_all(self) -> None:
        plan = self._plan()
        steps = [("claim_fifo_tasks", plan)]
        if plan.bounded:
            steps.append(("claim_bounded_tasks", plan))
        steps.append(("claim_tasks", plan))
        for query, _ in steps:
            while not self.stopping() and self.held < self.max_buffered:
                room = min(self.batch, self.max_buffered - self.held)
                try:
                    got = await self.claim_once(query, room, plan)
                except DB_ERRORS as exc:
                    # The claim may have committed before the connection broke: sweep next time.
                    self.orphans_suspected = True
                    log.warning("claim failed", extra={"error": str(exc)})
                    await asyncio.sleep(0.5)
                    return
                if got < room or query == "claim_bounded_tasks":
                    break
                plan = self._plan()

    def _plan(self) -> ClaimPlan:
        """The next claim's plan. Making it drops from memory what a target holds beyond twice its
        cap, so those tasks go back to Postgres here, every time: a plan made between two claims of
        one round used to leave them claimed and unheld until the orphan sweep (60 s later)."""
        plan = self.dispatcher.claim_plan(self.max_buffered, self.batch, now_ms())
        if plan.shed:
            self.writer.release(plan.shed)
        return plan

    async def release_orphans(self) -> None:
        """Runs between claims (never during one): what this epoch claimed is either in memory or
        waiting in the writer; anything else was stranded by a lost reply and goes back."""
        known = set(self.dispatcher.holder)
        known.update(o.task.id for o in self.writer.pending)
        await self.pool.execute(q("release_orphans"), self.lease.lo, self.lease.hi, self.lease.epoch, list(known))

    async def claim_once(self, query: str, limit: int, plan: ClaimPlan) -> int:
        lease = self.lease
        args: tuple[object, ...]
        if query == "claim_fifo_tasks":
            args = (limit, plan.skip_endpoints)
        elif query == "claim_bounded_tasks":
            args = (self.horizon_s, [e for e, _ in plan.bounded], [r for _, r in plan.bounded])
        else:
            args = (self.horizon_s, limit, plan.skip_endpoints, sorted(plan.skip_partitions))
        rows = await self.pool.fetch(q(query), lease.slot, lease.epoch, lease.lo, lease.hi, *args)
        if not rows:
            return 0
        await self.endpoints.load({r["endpoint_id"] for r in rows
                                   if r["endpoint_id"] and self.endpoints.get(r["endpoint_id"]) is None})
        now = now_ms()
        dispatcher = self.dispatcher
        deleted: list[uuid.UUID] = []
        for row in rows:
            endpoint_id = row["endpoint_id"]
            cfg = self.endpoints.get(endpoint_id) if endpoint_id else None
            if endpoint_id is not None and (cfg is None or cfg.deleted):
                deleted.append(row["id"])
                continue
            key = str(endpoint_id) if endpoint_id else target_key(None, row["destination"])
            task = Task.from_claim(row, key)
            target = dispatcher.targets.get(key)
            if target is None:
                target = dispatcher.target(key, endpoint_id)
                dispatcher.configure(target, cfg, now)
                if self.partitions:
                    target.home = partition_for(key, self.partitions)
            if task.partition != target.home and target.home >= 0 and target.gate is None:
                dispatcher.share(target, now)    # claimed from a helper partition: the target is spread
            if target.gate is not None and target.cfg is not None:
                task.fifo_key = fifo_key(target.cfg.fifo_partition_key, task.payload)
            task.client_secret = self._open(task.client_secret)
            dispatcher.add(target, task, now)
        if deleted:
            await self.bury(deleted)
        self.on_claimed()
        return len(rows)

    def _open(self, sealed: str) -> str:
        """A client's signing secret, decrypted once per shard rather than for every claimed task
        (AES-GCM and base64 per task were 3% of a shard's time); a rotated secret is a new value."""
        opened = self._secrets.get(sealed)
        if opened is None:
            if len(self._secrets) >= 10_000:
                self._secrets.clear()
            opened = self._secrets[sealed] = self.box.open(sealed)
        return opened

    async def spread_hot(self) -> None:
        """Top up the helper partitions of the hot targets whose home is in this shard's range."""
        now = now_ms()
        hot = [(t, cap) for t, cap in self.dispatcher.hot(self.max_buffered, now) if self.lease.owns(t.home)]
        if not hot:
            return
        ranges = self.ranges()
        for target, cap in hot:
            helpers = helper_partitions(target.home, ranges, self.spread_width)
            if helpers:
                await self._top_up(target, helpers, cap)

    async def _top_up(self, target: Target, helpers: list[int], cap: int) -> None:
        scan = min(SCAN_MAX, 4 * cap * (len(helpers) + 1))
        rows = await self.pool.fetch(q("hot_waiting"), helpers, target.endpoint_id, scan)
        waiting = {r["partition"]: r["n"] for r in rows}
        dests = top_up(helpers, [waiting.get(p, 0) for p in helpers], cap)
        self.dispatcher.share(target, now_ms())
        if not dests:
            return
        lease = self.lease
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await conn.fetch(q("spread_tasks"), lease.slot, lease.epoch, target.home, target.endpoint_id,
                                     self.horizon_s, dests)
            if moved:
                await notify_work(conn, {r["partition"] for r in moved})
        self.moved += len(moved)

    async def bury(self, task_ids: list[uuid.UUID]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(q("bury_tasks"), task_ids, self.lease.epoch, DELETED_REASON)
            if rows:
                await conn.execute(q("rollup_events"), list({r["event_id"] for r in rows}))
        self.buried += len(rows)
        log.info("ended deliveries of deleted endpoints", extra={"count": len(rows)})
