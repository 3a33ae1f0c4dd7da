"""One shard: a uvloop process owning a contiguous range of partitions.

The shard composes the pieces that each do one job: its lease (engine/lease.py), the LISTEN
connection (engine/listener.py), the endpoint settings cache (engine/endpoint_cache.py), fair claims
(engine/claimer.py), the in-memory scheduler (engine/dispatch.py), request building
(engine/request.py), the destination kinds (engine/destinations: HTTP, stores, brokers), the retry
policy (engine/policy/retry.py) and the outcome writer.
What is left here is the dispatch loop that ties them together. Postgres stays the source of truth:
whatever is only in memory can be rebuilt from it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from control.crypto import box_for
from control.logs import setup_logging
from control.policy.assignment import assign
from control.policy.partitioning import shard_ranges
from control.policy.ssrf import AddressPolicy
from control.policy.transform import TransformRunner
from control.services.events import time_ordered_ids
from control.settings import Settings, load_settings
from control.signalling import (
    ENDPOINT_CHANNEL,
    RELEASE_CHANNEL,
    WORK_CHANNEL,
    parse_release_payload,
    parse_work_payload,
)
from control.store.db import close_pool, create_pool, partitions_of
from control.store.queries import q
from engine.claimer import Claimer
from engine.destinations import Kinds
from engine.dispatch import Dispatcher, Finish, Target
from engine.endpoint_cache import EndpointCache
from engine.housekeeping import housekeeping
from engine.lease import DB_ERRORS, Lease
from engine.listener import listen
from engine.membership import EXIT_REASSIGNED, MEMBERS_CHANNEL, Membership
from engine.model import EndpointConfig, Outcome, Task
from engine.policy.breaker import CircuitBreaker
from engine.policy.retry import AttemptResult, Decision, NewerCopy, RetrySettings, decide
from engine.request import Deferred, RequestBuilder
from engine.sender import Senders, SendResult
from engine.stats import EndpointLimiterStats, ShardStats, limiter_stats, report_loop
from engine.writer import OutcomeWriter

log = logging.getLogger("mittr.engine.shard")


_ATTEMPT_IDS: list[uuid.UUID] = []
_ATTEMPT_IDS_AT = 0.0


def _next_attempt_id() -> uuid.UUID:
    """Attempt ids (UUIDv7) made 256 at a time, one urandom call for all; a batch older than 0.1 s
    is made anew, so the ids stay time-ordered."""
    global _ATTEMPT_IDS_AT
    now = time.monotonic()
    if not _ATTEMPT_IDS or now - _ATTEMPT_IDS_AT > 0.1:
        _ATTEMPT_IDS[:] = time_ordered_ids(256)
        _ATTEMPT_IDS.reverse()
        _ATTEMPT_IDS_AT = now
    return _ATTEMPT_IDS.pop()
RECONCILE_S = 5.0               # endpoint settings compared with Postgres this often
MARK_DELIVERING_AFTER_MS = 1000  # an attempt on the wire this long shows as `delivering`
NOT_THE_RECEIVERS_FAULT = ("blocked", "transform", "cancelled")
WRITES_FAILING = "outcomes could not be recorded for longer than the lease TTL"
LEASE_UNRENEWED = "the lease could not be renewed for about its TTL"
STOP_WAIT_S = 5.0               # each step of a shard's shutdown waits at most this long


class LeaseLost(RuntimeError):
    """Another owner holds our range now (or we gave it up); everything we hold must be dropped."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Shard:
    def __init__(self, settings: Settings, index: int, count: int, owner: str, member: str | None = None) -> None:
        """`member`: this shard is shard `index` of the `count` of that engine member, and its range
        follows the live members (engine/membership.py). Without it, shard `index` of `count` across
        the whole database owns a fixed range (the explicit `--first/--total` override)."""
        self.settings = settings
        eng = settings.engine
        self.index, self.count, self.owner, self.member = index, count, owner, member
        self.membership: Membership | None = None
        self.reassigned: tuple[int, int] | None = None
        self._signalled = False
        self.joined = False
        self.max_buffered = int(eng["max_buffered"])
        self.horizon_s = float(eng["claim_horizon_s"])
        self.box = box_for(settings.security["encryption_key"])
        self.requests = RequestBuilder(
            TransformRunner(int(eng["transform_time_limit_ms"]), int(eng["transform_memory_mb"]) * 2**20,
                            int(eng["transform_max_contexts"]),
                            tenant_ms_per_s=float(eng["transform_tenant_ms_per_s"])),
            AddressPolicy.from_engine(eng), int(eng["default_timeout_ms"]))
        self.direct_retry = RetrySettings(int(eng["default_retry_backoff_ms"]),
                                          float(eng["default_retry_backoff_mult"]),
                                          int(eng["default_retry_backoff_max"]))
        self.dispatcher = self._new_dispatcher()
        self.stopping = False
        self._stop_reason: str | None = None
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.pool: asyncpg.Pool
        self.lease: Lease
        self.writer: OutcomeWriter
        self.kinds: Kinds
        self.endpoints: EndpointCache
        self.claimer: Claimer
        self.delivered = 0

    def _new_dispatcher(self) -> Dispatcher:
        eng = self.settings.engine
        return Dispatcher(now_ms(), int(eng["max_in_flight"]), int(eng["max_in_flight_per_endpoint"]))

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> int:
        """Take a range, work it, hand it over when the members say so and take the next one, all in
        this process; exit on a stop, a lost lease, or a hand-over that left work in flight."""
        eng, db = self.settings.engine, self.settings.database
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):     # from the start: a stop while waiting is quiet
            loop.add_signal_handler(sig, self._on_signal)
        # A transaction left open by a shard cut off mid-way must not outlive its lease: its locks
        # would stall the range's next owner (and every writer sharing a roll-up row).
        idle_s = min(float(db["idle_in_transaction_timeout_s"]), float(eng["lease_ttl_s"]) / 2)
        self.pool = await create_pool(self.settings.database_url, 2, max(4, int(db["pool_max"]) // 2), idle_s)
        partitions = await partitions_of(self.pool)
        if self.member is not None:
            self.membership = Membership(self.pool, self.member, self.count, self.index, partitions,
                                         float(eng["lease_ttl_s"]), float(eng["lease_renew_s"]))
        self.kinds = Kinds(Senders(int(eng["max_in_flight"]), int(eng["response_body_limit"]), str(eng["ca_file"])),
                           str(eng.get("storage_root") or ""))
        self.endpoints = EndpointCache(self.pool, self.box, eng)
        # Slow chores belong to the process, not to a range: they go on across hand-overs.
        chores = asyncio.create_task(self._guarded(
            "housekeeping", lambda: housekeeping(self.pool, self.settings, lambda: self._signalled)))
        code = 1
        try:
            while True:
                code = await self._tenure(partitions)
                if code != 0 or self.reassigned is None or self._signalled:
                    break
                # Handed over cleanly (nothing in flight, everything recorded or given back): the
                # next range is taken by this same process, with a fresh in-memory scheduler.
                self.stopping, self.reassigned, self._stop_reason = False, None, None
                self.dispatcher = self._new_dispatcher()
        finally:
            chores.cancel()
            await asyncio.wait([chores], timeout=STOP_WAIT_S)
            await asyncio.wait([asyncio.create_task(self.kinds.close())], timeout=STOP_WAIT_S)
            self.requests.transforms.close()
            await close_pool(self.pool, STOP_WAIT_S if code == 0 else 0)
        log.info("shard stopped", extra={"shard": self.index, "delivered": self.delivered})
        return code

    async def _tenure(self, partitions: int) -> int:
        """One range, from taking its lease to releasing it. 0: stopped or handed over cleanly;
        EXIT_REASSIGNED: handed over with work still in flight (a fresh process takes the next
        range, so no late callback of this one can touch it); 3: the lease was lost."""
        eng = self.settings.engine
        ttl_s, renew_s = float(eng["lease_ttl_s"]), float(eng["lease_renew_s"])
        watcher: asyncio.Task[None] | None = None
        if self.membership is None:
            lo, hi = shard_ranges(partitions, self.count)[self.index]
        else:
            found = await self._assigned_range()
            if found is None:
                return 0
            lo, hi = found
            # Follow the members from now on, also while waiting for the range's previous owner.
            watcher = asyncio.create_task(self._guarded("membership", lambda: self._watch_members((lo, hi))))
        self.lease = Lease(self.pool, lo, hi, self.owner, ttl_s, renew_s)
        if lo == hi or not await self.lease.acquire(lambda: self.stopping):
            # Nothing assigned (more shards than partitions), or asked to stop or move while waiting.
            while lo == hi and not self.stopping:  # noqa: ASYNC110 - the watcher or a signal ends it
                await asyncio.sleep(0.1)
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            return 0
        self.writer = OutcomeWriter(self.pool, lambda: self.lease.epoch, int(eng["writer_batch"]),
                                    int(eng["writer_interval_ms"]), on_flushed=self._flushed,
                                    on_stuck=lambda: self._give_up(WRITES_FAILING), on_dropped=self._dropped,
                                    stuck_after_s=float(eng["lease_ttl_s"]))
        self.claimer = Claimer(self.pool, self.lease, self.dispatcher, self.endpoints, self.writer, self.box,
                               batch=int(eng["claim_batch"]), max_buffered=self.max_buffered,
                               horizon_s=self.horizon_s, scan_interval_s=int(eng["scan_interval_ms"]) / 1000,
                               on_claimed=self._wake.set, stopping=lambda: self.stopping,
                               partitions=partitions, ranges=lambda: self._all_ranges(partitions),
                               spread_width=int(eng.get("hot_target_shards", 1)))
        log.info("shard started", extra={"shard": self.index, "range": self.lease.slot, "epoch": self.lease.epoch})
        stopping = lambda: self.stopping  # noqa: E731
        workers = [asyncio.create_task(self._guarded(name, fn)) for name, fn in (
            ("writer", self.writer.run),
            ("listener", lambda: listen(self.settings.database_url, {
                WORK_CHANNEL: self._on_work, ENDPOINT_CHANNEL: self._on_endpoint, RELEASE_CHANNEL: self._on_release,
                MEMBERS_CHANNEL: self._on_members,
            }, self._on_listening, stopping)),
            ("claimer", self.claimer.run),
            ("lease", lambda: self.lease.keep(lambda: self._give_up("lease lost"), stopping)),
            ("watch", self._watch),
            ("stats", lambda: report_loop(self.pool, self._stats_snapshot, stopping)))]
        if watcher is not None:
            workers.append(watcher)
        code = 0
        try:
            await self._dispatch_loop()
        except LeaseLost as exc:
            log.error("lease gone; exiting so the supervisor restarts this shard",
                      extra={"shard": self.index, "reason": str(exc)})
            code = 3
            exit_by(float(eng["drain_timeout_s"]) + STOP_WAIT_S * 3)
        clean = await self._drain(code == 0)
        fenced = code == 3 and self._stop_reason != WRITES_FAILING
        if fenced:
            # The lease is gone: nothing this process could still write would be accepted, and
            # its connections may have gone silent (a partition). Drop them at once, so that no
            # loop waits on one on its way out; a fresh process takes over.
            self.pool.terminate()
        for w in workers:
            w.cancel()
        _, pending = await asyncio.wait(workers, timeout=STOP_WAIT_S)
        if pending and not fenced:
            # Stuck on a connection that went silent (cancelling a query waits for the server):
            # dropping the connections fails those waits at once. The pool is gone with them, so
            # this process takes no other range: the supervisor starts a fresh one.
            log.warning("background loops did not stop; dropping the database connections",
                        extra={"shard": self.index, "loops": len(pending)})
            self.pool.terminate()
            await asyncio.wait(pending, timeout=STOP_WAIT_S)
            code = code or 3
        if code == 0 or self._stop_reason == WRITES_FAILING:
            await self.lease.release()
        if code == 0 and self.reassigned is not None:
            log.info("range handed over", extra={"shard": self.index, "range": self.lease.slot, "clean": clean,
                                                 "assigned": f"{self.reassigned[0]}-{self.reassigned[1]}"})
            if not clean:
                return EXIT_REASSIGNED
        return code

    # -- membership --------------------------------------------------------------------------------
    async def _assigned_range(self) -> tuple[int, int] | None:
        """This shard's range from the live members (the first time, joining them); None when asked
        to stop first."""
        assert self.membership is not None
        while not self.stopping:
            try:
                if not self.joined:
                    await self.membership.join()
                    self.joined = True
                return await self.membership.view()
            except DB_ERRORS as exc:
                log.warning("reading the engine members failed", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
        return None

    async def _watch_members(self, held: tuple[int, int]) -> None:
        assert self.membership is not None
        await self.membership.watch(held, self._on_reassigned, lambda: self.stopping)

    def _all_ranges(self, partitions: int) -> list[tuple[int, int]]:
        """Every shard's range as this shard last saw the members (where hot targets spread to)."""
        if self.membership is None:
            return shard_ranges(partitions, self.count)
        return list(assign(self.membership.members, partitions).values())

    def _on_reassigned(self, assigned: tuple[int, int]) -> None:
        """The live members give this shard another range: stop claiming, finish what is in flight
        and hand back what is held (the graceful drain), release the lease, then take the new range."""
        self.reassigned = assigned
        self.request_stop()

    def _on_signal(self) -> None:
        self._signalled = True
        self.request_stop()

    async def _guarded(self, name: str, loop_fn: Any) -> None:
        """Keep a background loop alive: an unexpected error is logged and the loop restarted, so a
        surprise from a driver during an outage cannot silently stop claiming or recording."""
        while True:
            try:
                await loop_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop failed; restarting it", extra={"loop": name, "shard": self.index})
                if self.stopping and name != "writer":
                    return
                await asyncio.sleep(0.5)

    def request_stop(self) -> None:
        self.stopping = True
        self._wake.set()
        if hasattr(self, "claimer"):
            self.claimer.want()

    def _give_up(self, reason: str) -> None:
        """Leave the range to a fresh process (the supervisor restarts this one): the lease was
        taken over, or outcomes could not be recorded for too long to keep claiming."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._wake.set()

    async def _drain(self, graceful: bool) -> bool:
        """Stop claiming, let in-flight attempts finish and be recorded, give the rest back, all
        within `drain_timeout_s` (the supervisor kills a shard that takes much longer). True when
        nothing was left in flight and everything was written."""
        # Without the lease (or unable to write) nothing in flight can be recorded any more:
        # waiting for it would only keep a fenced process around.
        deadline = time.monotonic() + (float(self.settings.engine["drain_timeout_s"]) if graceful else 1.0)
        while self.dispatcher.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - callbacks finish them
            await asyncio.sleep(0.01)
        flying = self.dispatcher.in_flight
        unsent = [t.id for t in self.dispatcher.all_idle()]
        if graceful and unsent:
            self.writer.release(unsent)
        if not graceful:
            return False
        return await self.writer.drain(max(1.0, deadline - time.monotonic())) and not flying

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- notifications -----------------------------------------------------------------------------
    def _on_listening(self) -> None:
        self.claimer.want()          # anything announced while the listener was away

    def _on_members(self, payload: str) -> None:
        if self.membership is not None:
            self.membership.poke(payload)

    def _on_work(self, payload: str) -> None:
        if any(self.lease.owns(p) for p in parse_work_payload(payload)):
            self.claimer.want()

    def _on_endpoint(self, payload: str) -> None:
        ident, _, part = payload.partition(":")
        try:
            endpoint_id = uuid.UUID(ident)
        except ValueError:
            return
        # Ours by its home partition, or held here from a helper partition (a spread hot endpoint).
        if not (part.isdigit() and self.lease.owns(int(part))) and ident not in self.dispatcher.targets:
            return
        self._spawn(self._refresh_endpoints([endpoint_id]))

    def _on_release(self, payload: str) -> None:
        """An edited event's delivery moved away: the copy held for its old origin is not sent."""
        parsed = parse_release_payload(payload)
        if parsed is None or not self.lease.owns(parsed[0]):
            return
        _, key, task_ids = parsed
        for task_id in task_ids:
            self.dispatcher.withdraw(key, task_id)

    # -- endpoint settings ---------------------------------------------------------------------------
    async def _refresh_endpoints(self, ids: list[uuid.UUID]) -> None:
        for cfg in await self.endpoints.refresh(ids):
            self._apply_config(cfg)

    def _apply_config(self, cfg: EndpointConfig) -> None:
        target = self.dispatcher.targets.get(str(cfg.id))
        if target is not None:
            self.dispatcher.configure(target, cfg, now_ms())
        if cfg.active and not cfg.deleted:
            self.claimer.want()
            self._wake.set()
            return
        if target is None:
            return
        # Paused: hand back everything not already in flight. Deleted: end it, with the reason.
        idle = [t.id for t in self.dispatcher.drop_idle(target)]
        if idle and cfg.deleted:
            self._spawn(self._bury(idle))
        elif idle:
            self.writer.release(idle)

    async def _bury(self, task_ids: list[uuid.UUID]) -> None:
        try:
            await self.claimer.bury(task_ids)
        except DB_ERRORS as exc:     # still claimed by us: the orphan sweep gives them back, and
            log.warning("could not end deleted endpoint's deliveries", extra={"error": str(exc)})
            self.claimer.orphans_suspected = True   # the next claim ends them

    async def _watch(self) -> None:
        """Once a second: show long attempts as `delivering`; every few seconds: catch endpoint
        changes whose notification was lost, and retry refreshes that failed."""
        last_reconcile = time.monotonic()
        while not self.stopping:
            await asyncio.sleep(1.0)
            try:
                await self._mark_delivering()
            except DB_ERRORS as exc:
                log.warning("marking attempts in flight failed", extra={"error": str(exc)})
            try:
                await self._share_breakers()
            except DB_ERRORS as exc:
                log.warning("reading spread endpoints' breakers failed", extra={"error": str(exc)})
            if time.monotonic() - last_reconcile >= RECONCILE_S or self.endpoints.stale:
                try:
                    for cfg in await self.endpoints.reconcile():
                        self._apply_config(cfg)
                    last_reconcile = time.monotonic()
                except DB_ERRORS as exc:
                    log.warning("endpoint reconcile failed", extra={"error": str(exc)})

    async def _share_breakers(self) -> None:
        """A spread endpoint is sent by several shards: a breaker one of them opened (persisted by
        `_persist_breaker`) opens it here too, so the failing receiver is not hammered by the rest."""
        spread = {t.endpoint_id: t for t in self.dispatcher.spread(now_ms())
                  if t.endpoint_id is not None and t.breaker is not None}
        if not spread:
            return
        for row in await self.pool.fetch(q("circuit_states"), list(spread)):
            target, opened = spread[row["id"]], row["circuit_opened_at"]
            if row["circuit_state"] == "open" and opened is not None and target.breaker is not None \
                    and target.breaker.adopt_open(int(opened.timestamp() * 1000)):
                self.dispatcher.wake(target)

    async def _lease_tokens(self, target: Target) -> None:
        """Lease a chunk of a spread endpoint's rate from its bucket in Postgres (shared with every
        shard sending it; keyed by the endpoint's id)."""
        shared = target.shared
        if shared is None or target.endpoint_id is None:
            return
        try:
            row = await self.pool.fetchrow(q("rate_bucket_take"), target.endpoint_id, float(shared.rate),
                                           shared.chunk(), 0)
            shared.granted(int(row["granted"]), float(row["tokens"]), now_ms() / 1000)
        except DB_ERRORS as exc:
            log.warning("leasing a spread endpoint's tokens failed", extra={"error": str(exc)})
            shared.failed(now_ms() / 1000)
        self.dispatcher.wake(target)
        self._wake.set()

    async def _mark_delivering(self) -> None:
        cutoff = now_ms() - MARK_DELIVERING_AFTER_MS
        ids: list[uuid.UUID] = []
        attempts: list[int] = []
        for target in self.dispatcher.targets.values():
            for task_id, sent in target.flying.items():
                task = target.held.get(task_id)
                if sent <= cutoff and task is not None and not task.marked:
                    task.marked = True
                    ids.append(task_id)
                    attempts.append(task.attempts)
        if not ids:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(q("mark_delivering"), ids, attempts, self.lease.epoch)
            if rows:
                await conn.execute(q("rollup_events"), list({r["event_id"] for r in rows}))

    # -- dispatching -------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        dispatcher = self.dispatcher
        while not self.stopping:
            if self._stop_reason is not None:
                raise LeaseLost(self._stop_reason)
            if not self.lease.valid():
                # Cut off from Postgres for about a TTL: another owner may hold the range by now,
                # so nothing more goes out from here (the fence would refuse the outcomes anyway).
                raise LeaseLost(LEASE_UNRENEWED)
            now = now_ms()
            dispatcher.advance(now)
            for target, task in dispatcher.take(now):
                self._start(target, task, time.perf_counter_ns())
            while dispatcher.token_requests:
                self._spawn(self._lease_tokens(dispatcher.token_requests.pop()))
            nxt = dispatcher.next_due_ms()
            timeout = 1.0 if nxt is None else min(1.0, max(0.0, (nxt - now) / 1000))
            self._wake.clear()
            if timeout > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                except TimeoutError:
                    pass

    def _start(self, target: Target, task: Task, taken_ns: int) -> None:
        """Start one attempt, synchronously up to the socket write; its outcome is recorded by
        `_finish_attempt`, called from the connection's callback as soon as the response is in.
        Whatever goes wrong before the request is handed over ends as a failed attempt (category
        `other`, with the reason), never as a task stuck in flight."""
        cfg = target.cfg
        attempted_at = datetime.now(UTC)
        try:
            built = self.requests.build(task, cfg)
            if isinstance(built, Deferred):
                task.marked = False
                self.dispatcher.defer(target, task, now_ms() + max(1, built.ms))
                return
            if isinstance(built, SendResult):
                self._finish_attempt(target, task, attempted_at, taken_ns, built)
                return
            self.kinds.of(cfg).start(     # HTTP push, a store or a broker (engine/destinations)
                cfg, task, built, attempted_at,
                lambda result: self._finish_attempt(target, task, attempted_at, taken_ns, result))
        except Exception as exc:
            log.warning("delivery could not be prepared", extra={"task": str(task.id), "error": type(exc).__name__})
            now = time.perf_counter_ns()
            failed = SendResult(None, "", f"could not prepare the request: {type(exc).__name__}: {exc}", "other",
                                "failure", False, None, now, now)
            self._finish_attempt(target, task, attempted_at, taken_ns, failed, counts_for_breaker=False)

    def _finish_attempt(self, target: Target, task: Task, attempted_at: datetime, taken_ns: int,
                        result: SendResult, counts_for_breaker: bool | None = None) -> None:
        if not task.in_flight:
            return                       # finished already (a sender reporting twice)
        task.marked = False
        try:
            outcome, decision = self._outcome(task, target, result, attempted_at, result.sent_ns - taken_ns)
        except Exception:
            log.exception("outcome could not be built", extra={"task": str(task.id)})
            self.dispatcher.finish(target, task, "retry", False, now_ms(), now_ms() + 1000, False)
            self._wake.set()
            return
        self.writer.add(outcome)
        how: Finish = "delivered" if decision.status == "delivered" else (
            "retry" if decision.retrying else "final")
        counts = result.category not in NOT_THE_RECEIVERS_FAULT if counts_for_breaker is None else counts_for_breaker
        latency = (result.done_ns - result.sent_ns) / 1e6 if result.status_code is not None or \
            result.category == "timeout" else None
        changed = self.dispatcher.finish(target, task, how, counts, now_ms(),
                                         decision.next_attempt_ms if how == "retry" else None,
                                         decision.keep_claim, latency)
        if changed and target.breaker is not None and target.endpoint_id is not None:
            self._spawn(self._persist_breaker(target.endpoint_id, target.breaker))
        if self.claimer.held < self.max_buffered // 2:
            self.claimer.want()
        self._wake.set()

    def _outcome(self, task: Task, target: Target, r: SendResult, attempted_at: datetime,
                 prep_ns: int) -> tuple[Outcome, Decision]:
        cfg = target.cfg
        retry = RetrySettings(cfg.retry_backoff_ms, cfg.retry_backoff_mult, cfg.retry_backoff_max) \
            if cfg is not None else self.direct_retry
        newer = task.newer
        now = now_ms()
        decision = decide(
            AttemptResult(r.outcome == "success", r.permanent, r.status_code, r.retry_after),
            attempts_before=task.attempts,
            max_attempts=newer.max_attempts if newer is not None else task.max_attempts,
            settings=retry, now_ms=now, jitter=random.random(), horizon_ms=int(self.horizon_s * 1000),
            fifo=target.gate is not None,
            # A copy withdrawn mid-send (its event now goes elsewhere) gives its claim up, unless
            # this shard already holds the new copy, so whoever owns the new destination claims it.
            may_keep=not task.superseded or task.id in self.dispatcher.holder,
            newer=NewerCopy(newer.attempts, newer.due_ms) if newer is not None else None)
        attempt_number = task.attempts + 1
        task.attempts = decision.attempts
        if decision.status == "delivered":
            self.delivered += 1
        overhead_ns = prep_ns + (time.perf_counter_ns() - r.done_ns)
        return Outcome(
            task=task, attempt_id=_next_attempt_id(), attempt_number=attempt_number, status_code=r.status_code,
            response_body=r.response_body, error=r.error, error_category=r.category, outcome=r.outcome,
            duration_ms=max(0, (r.done_ns - r.sent_ns) // 1_000_000), overhead_us=overhead_ns // 1000,
            attempted_at=attempted_at, new_status=decision.status, next_attempt_at=_ms_to_dt(decision.next_attempt_ms),
            keep_claim=decision.keep_claim, delivered_at=_ms_to_dt(now) if decision.status == "delivered" else None,
            attempts=decision.attempts, prior_attempts=decision.prior_attempts), decision

    def _dropped(self, outcome: Outcome) -> None:
        """The writer gave up on a poison outcome: its task is still claimed in Postgres with the
        old attempt count, so the copy in memory (whose count ran ahead) must not be sent again;
        the orphan sweep gives the task back to be claimed afresh."""
        self.dispatcher.forget(outcome.task.id)
        self.claimer.orphans_suspected = True

    def _flushed(self, _batch: list[Outcome], _matched: set[uuid.UUID]) -> None:
        if self.claimer.held < self.max_buffered // 2:
            self.claimer.want()    # the writer's backlog made room: claim without waiting for a scan

    @property
    def held(self) -> int:
        return self.claimer.held

    def _stats_snapshot(self) -> tuple[ShardStats, list[EndpointLimiterStats]]:
        d = self.dispatcher
        return (ShardStats(self.index, self.lease.lo, self.lease.hi, self.owner, self.lease.epoch, d.buffered,
                           d.in_flight, self.delivered),
                limiter_stats(d.targets.values(), now_ms() / 1000))

    async def _persist_breaker(self, endpoint_id: uuid.UUID, breaker: CircuitBreaker) -> None:
        opened = breaker.opened_at_ms
        try:
            await self.pool.execute(q("set_circuit_state"), endpoint_id, breaker.state.value,
                                    _ms_to_dt(opened) if opened else None)
        except DB_ERRORS as exc:
            log.warning("breaker state not persisted", extra={"endpoint": str(endpoint_id), "error": str(exc)})


def exit_by(seconds: float) -> None:
    """A shard that lost its lease holds nothing worth saving (its writes are fenced): if its
    shutdown is still not done after `seconds` (a driver waiting on a dead link), the process
    ends anyway, so that the supervisor starts a fresh one and its member's ranges do not sit with
    a process that will never take them."""
    def now() -> None:
        log.error("shard did not stop in time; exiting", extra={"after_s": seconds})
        os._exit(3)
    timer = threading.Timer(seconds, now)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mittr-shard", description="Run one Mittr engine shard.")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--owner", default=f"{socket.gethostname()}:{os.getpid()}")
    parser.add_argument("--member", default=None,
                        help="the engine member this shard belongs to; its range follows the live members")
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    setup_logging(settings.log["level"], role=f"shard-{args.index}")
    import uvloop

    owner = f"{args.member or args.owner}:{args.index}"
    shard = Shard(settings, args.index, args.count, owner, member=args.member)
    return uvloop.run(shard.run())


if __name__ == "__main__":
    raise SystemExit(main())
