"""One shard: a uvloop process owning a contiguous range of partitions.

It claims due tasks in its range, holds them in per-target queues and a timer wheel, sends them
round-robin across targets under in-flight limits, and hands every outcome to the writer.
Postgres stays the source of truth: whatever is only in memory can be rebuilt from it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from control.crypto import box_for
from control.logs import setup_logging
from control.policy.partitioning import shard_ranges, target_key
from control.policy.signing import standard_webhook_headers
from control.policy.ssrf import AddressPolicy
from control.policy.transform import TransformRunner
from control.services.events import time_ordered_ids
from control.services.retention import RetentionPolicy, prune_on_schedule
from control.settings import Settings, SettingsError, load_settings
from control.signalling import (
    ENDPOINT_CHANNEL,
    RELEASE_CHANNEL,
    WORK_CHANNEL,
    parse_release_payload,
    parse_work_payload,
)
from control.store.db import create_pool, partitions_of
from control.store.queries import q
from engine.dispatch import Dispatcher, Finish, Target
from engine.model import EndpointConfig, Outcome, Task, ed25519_key, fifo_key
from engine.policy.backoff import backoff_delay_ms, parse_retry_after
from engine.policy.breaker import CircuitBreaker
from engine.sender import Senders, SendResult, delivery_headers
from engine.stats import EndpointLimiterStats, ShardStats, limiter_stats, report_loop
from engine.writer import OutcomeWriter

log = logging.getLogger("mittr.engine.shard")
RETRY_AFTER_STATUSES = (429, 503)
ORPHAN_SWEEP_S = 60.0


class LeaseLost(RuntimeError):
    """Another owner holds our range now; everything we hold must be dropped."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Shard:
    def __init__(self, settings: Settings, index: int, count: int, owner: str) -> None:
        self.settings = settings
        eng = settings.engine
        self.index, self.count, self.owner = index, count, owner
        self.allow_private = bool(eng["allow_private_networks"])
        self.direct_policy = AddressPolicy.build(self.allow_private)
        self.max_buffered = int(eng["max_buffered"])
        self.claim_batch = int(eng["claim_batch"])
        self.horizon_s = float(eng["claim_horizon_s"])
        self.scan_interval = int(eng["scan_interval_ms"]) / 1000
        self.lease_ttl = float(eng["lease_ttl_s"])
        self.lease_renew = float(eng["lease_renew_s"])
        self.box = box_for(settings.security["encryption_key"])
        self.transforms = TransformRunner(int(eng["transform_time_limit_ms"]), int(eng["transform_memory_mb"]) * 2**20,
                                          int(eng["transform_max_contexts"]))
        self.epoch = 0
        self.slot = ""
        self.lo = self.hi = 0
        self.dispatcher = Dispatcher(now_ms(), int(eng["max_in_flight"]), int(eng["max_in_flight_per_endpoint"]))
        self.endpoints: dict[uuid.UUID, EndpointConfig] = {}
        self.stopping = False
        self._lease_lost = False
        self._orphans_suspected = False
        self._wake = asyncio.Event()
        self._claim_now = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.pool: asyncpg.Pool
        self.writer: OutcomeWriter
        self.senders: Senders
        self.delivered = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> int:
        db = self.settings.database
        self.pool = await create_pool(self.settings.database_url, 2, max(4, int(db["pool_max"]) // 2))
        partitions = await partitions_of(self.pool)
        self.lo, self.hi = shard_ranges(partitions, self.count)[self.index]
        self.slot = f"{self.lo}-{self.hi}"
        await self._acquire_lease()
        eng = self.settings.engine
        self.senders = Senders(int(eng["max_in_flight"]), int(eng["response_body_limit"]), str(eng["ca_file"]))
        self.writer = OutcomeWriter(self.pool, lambda: self.epoch, int(eng["writer_batch"]),
                                    int(eng["writer_interval_ms"]), on_flushed=self._flushed)
        log.info("shard started", extra={"shard": self.index, "range": self.slot, "epoch": self.epoch})
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        workers = [asyncio.create_task(self._guarded(name, fn)) for name, fn in (
            ("writer", self.writer.run), ("listener", self._listen), ("claimer", self._claim_loop),
            ("lease", self._lease_loop), ("housekeeping", self._housekeeping),
            ("stats", lambda: report_loop(self.pool, self._stats_snapshot, lambda: self.stopping)))]
        code = 0
        try:
            await self._dispatch_loop()
        except LeaseLost:
            log.error("lease lost; exiting so the supervisor restarts this shard", extra={"shard": self.index})
            code = 3
        await self._drain(code == 0)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await self.senders.close()
        if code == 0:
            try:
                await self.pool.execute(q("release_lease"), self.slot, self.epoch)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
        await self.pool.close()
        log.info("shard stopped", extra={"shard": self.index, "delivered": self.delivered})
        return code

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
        self._claim_now.set()

    async def _drain(self, graceful: bool) -> None:
        """Stop claiming, let in-flight attempts finish and be recorded, give the rest back."""
        deadline = time.monotonic() + float(self.settings.engine["drain_timeout_s"])
        while self.dispatcher.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - callbacks finish them
            await asyncio.sleep(0.01)
        unsent = [t.id for t in self.dispatcher.all_idle()]
        if graceful and unsent:
            self.writer.release(unsent)
        if graceful:
            await self.writer.drain(float(self.settings.engine["drain_timeout_s"]))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lease -------------------------------------------------------------------------------------
    async def _acquire_lease(self) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('mittr_leases'))")
                    live = await conn.fetch(q("overlapping_live_leases"), self.slot, self.lo, self.hi)
                    if not live:
                        await conn.execute(q("drop_overlapping_leases"), self.slot, self.lo, self.hi)
                        epoch = await conn.fetchval(q("acquire_lease"), self.slot, self.lo, self.hi,
                                                    self.owner, self.lease_ttl)
                        if epoch is not None:
                            self.epoch = int(epoch)
                            reset = await conn.execute(q("reset_stale_claims"), self.lo, self.hi, self.epoch)
                            log.info("lease acquired", extra={"shard": self.index, "epoch": self.epoch,
                                                              "reclaimed": reset})
                            return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("lease acquisition failed", extra={"error": str(exc)})
            await asyncio.sleep(1.0)

    async def _lease_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.lease_renew)
            try:
                renewed = await self.pool.fetchval(q("renew_lease"), self.slot, self.epoch, self.lease_ttl)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("lease renewal failed", extra={"error": str(exc)})
                continue
            if renewed is None:
                self._lease_lost = True
                self._wake.set()
                return

    # -- wake-ups: LISTEN/NOTIFY plus a periodic scan ----------------------------------------------
    async def _listen(self) -> None:
        while not self.stopping:
            conn = None
            try:
                conn = await asyncpg.connect(self.settings.database_url)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=closed: ev.set())
                await conn.add_listener(WORK_CHANNEL, self._on_work)
                await conn.add_listener(ENDPOINT_CHANNEL, self._on_endpoint)
                await conn.add_listener(RELEASE_CHANNEL, self._on_release)
                self._claim_now.set()          # anything announced while we were away
                while not closed.is_set() and not self.stopping:
                    try:
                        await asyncio.wait_for(closed.wait(), timeout=5)
                    except TimeoutError:
                        await conn.execute("SELECT 1")   # notice a dead server promptly
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    def _on_work(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if any(self.lo <= p < self.hi for p in parse_work_payload(payload)):
            self._claim_now.set()

    def _on_endpoint(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        ident, _, part = payload.partition(":")
        if not part.isdigit() or not self.lo <= int(part) < self.hi:
            return
        try:
            endpoint_id = uuid.UUID(ident)
        except ValueError:
            return
        self._spawn(self._refresh_endpoint(endpoint_id))

    def _on_release(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """An edited event's delivery moved away: the copy held for its old origin is not sent."""
        parsed = parse_release_payload(payload)
        if parsed is None or not self.lo <= parsed[0] < self.hi:
            return
        _, key, task_ids = parsed
        for task_id in task_ids:
            self.dispatcher.withdraw(key, task_id)

    def _config(self, row: Any) -> EndpointConfig:
        cfg = EndpointConfig.from_row(row, self.allow_private)
        cfg.signing_secret = self.box.open(cfg.signing_secret)
        cfg.mtls_key = self.box.open_optional(cfg.mtls_key)
        cfg.sw_ed25519_private = self.box.open_optional(cfg.sw_ed25519_private)
        return cfg

    async def _refresh_endpoint(self, endpoint_id: uuid.UUID) -> None:
        try:
            rows = await self.pool.fetch(q("endpoint_configs"), [endpoint_id])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.endpoints.pop(endpoint_id, None)
            return
        if not rows:
            return
        cfg = self._config(rows[0])
        self.endpoints[endpoint_id] = cfg
        target = self.dispatcher.targets.get(str(endpoint_id))
        if target is not None:
            self.dispatcher.configure(target, cfg, now_ms())
        if cfg.active and not cfg.deleted:
            self._claim_now.set()
            self._wake.set()
            return
        if target is None:
            return
        # Paused or deleted: hand back (or, deleted, simply drop) everything not already in flight.
        idle = self.dispatcher.drop_idle(target)
        if idle and not cfg.deleted:
            self.writer.release([t.id for t in idle])

    # -- claiming ----------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        last_sweep = time.monotonic()
        while not self.stopping:
            try:
                await asyncio.wait_for(self._claim_now.wait(), timeout=self.scan_interval)
            except TimeoutError:
                pass
            self._claim_now.clear()
            if self._orphans_suspected or time.monotonic() - last_sweep > ORPHAN_SWEEP_S:
                try:
                    await self._release_orphans()
                    self._orphans_suspected = False
                    last_sweep = time.monotonic()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    log.warning("orphan sweep failed", extra={"error": str(exc)})
                    continue
            for query in ("claim_fifo_tasks", "claim_tasks"):
                while not self.stopping and self.held < self.max_buffered:
                    room = min(self.claim_batch, self.max_buffered - self.held)
                    try:
                        got = await self._claim_once(query, room)
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                        # The claim may have committed before the connection broke: sweep next time.
                        self._orphans_suspected = True
                        log.warning("claim failed", extra={"error": str(exc)})
                        await asyncio.sleep(0.5)
                        break
                    if got < room:
                        break

    async def _release_orphans(self) -> None:
        """Runs between claims (never during one): what this epoch claimed is either in memory or
        waiting in the writer; anything else was stranded by a lost reply and goes back."""
        known = set(self.dispatcher.holder)
        known.update(o.task.id for o in self.writer.pending)
        await self.pool.execute(q("release_orphans"), self.lo, self.hi, self.epoch, list(known))

    async def _claim_once(self, query: str, limit: int) -> int:
        if query == "claim_fifo_tasks":
            rows = await self.pool.fetch(q(query), self.slot, self.epoch, self.lo, self.hi, limit)
        else:
            rows = await self.pool.fetch(q(query), self.slot, self.epoch, self.lo, self.hi, self.horizon_s, limit)
        if not rows:
            return 0
        missing = list({r["endpoint_id"] for r in rows if r["endpoint_id"] and r["endpoint_id"] not in self.endpoints})
        if missing:
            for row in await self.pool.fetch(q("endpoint_configs"), missing):
                self.endpoints[row["id"]] = self._config(row)
        now = now_ms()
        dispatcher = self.dispatcher
        for row in rows:
            endpoint_id = row["endpoint_id"]
            key = str(endpoint_id) if endpoint_id else target_key(None, row["destination"])
            task = Task.from_claim(row, key)
            target = dispatcher.targets.get(key)
            if target is None:
                target = dispatcher.target(key, endpoint_id)
                dispatcher.configure(target, self.endpoints.get(endpoint_id) if endpoint_id else None, now)
            if target.gate is not None and target.cfg is not None:
                task.fifo_key = fifo_key(target.cfg.fifo_partition_key, task.payload)
            task.client_secret = self.box.open(task.client_secret)
            dispatcher.add(target, task, now)
        self._wake.set()
        return len(rows)

    # -- dispatching -------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        dispatcher = self.dispatcher
        while not self.stopping:
            if self._lease_lost:
                raise LeaseLost(self.slot)
            now = now_ms()
            dispatcher.advance(now)
            for target, task in dispatcher.take(now):
                try:
                    self._deliver(target, task, time.perf_counter_ns())
                except Exception:
                    log.exception("delivery could not start", extra={"task": str(task.id)})
            nxt = dispatcher.next_due_ms()
            timeout = 1.0 if nxt is None else min(1.0, max(0.0, (nxt - now) / 1000))
            self._wake.clear()
            if timeout > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                except TimeoutError:
                    pass

    def _transform(self, task: Task, cfg: EndpointConfig) -> tuple[bytes, dict[str, str], str] | SendResult:
        """Run the endpoint's transformation: what to send instead, or why nothing is sent."""
        assert cfg.transformation is not None
        base_headers = {**cfg.custom_headers, **task.headers}
        webhook: dict[str, object] = {"payload": orjson.Fragment(task.payload), "headers": base_headers,
                                      "url": cfg.url, "eventType": task.event_type, "eventId": str(task.event_id)}
        result = self.transforms.apply(f"{cfg.id}:{cfg.version}", cfg.transformation, webhook)
        now = time.perf_counter_ns()
        if result.error is not None:
            return SendResult(None, "", result.error, "transform", "failure", False, None, now, now)
        if result.cancelled:
            return SendResult(None, "", "cancelled by transformation", "cancelled", "failure", True, None, now, now)
        return (result.payload if result.payload is not None else task.payload,
                result.headers if result.headers is not None else base_headers,
                result.url or cfg.url)

    def _request(self, task: Task, cfg: EndpointConfig | None, body: bytes, url: str | None,
                 base_headers: dict[str, str] | None) -> tuple[str, dict[str, str], int, AddressPolicy]:
        if cfg is not None:
            secret, timeout, policy = cfg.signing_secret, cfg.timeout_ms, cfg.policy
            url = url or cfg.url
            headers = dict(base_headers) if base_headers is not None else {**cfg.custom_headers, **task.headers}
        else:
            assert task.destination is not None
            url, secret, policy = task.destination, task.client_secret, self.direct_policy
            timeout = int(self.settings.engine["default_timeout_ms"])
            headers = dict(task.headers)
        now_s = int(time.time())
        delivery_headers(headers, secret, body, task.event_id, task.attempts + 1, now_s)
        if cfg is not None and cfg.standard_webhooks:
            headers.update(standard_webhook_headers(
                f"msg_{task.event_id.hex}", now_s, body, secret, ed25519_key(cfg.sw_ed25519_private)))
        return url, headers, timeout, policy

    def _deliver(self, target: Target, task: Task, taken_ns: int) -> None:
        """Start one attempt, synchronously up to the socket write; its outcome is recorded by
        `_finish_attempt`, called from the connection's callback as soon as the response is in."""
        cfg = target.cfg
        attempted_at = datetime.now(UTC)
        body, url, base = task.payload, None, None
        shaped = self._transform(task, cfg) if cfg is not None and cfg.transformation else None
        if isinstance(shaped, SendResult):
            self._finish_attempt(target, task, attempted_at, taken_ns, shaped)
            return
        if shaped is not None:
            body, base, url = shaped
        url, headers, timeout, policy = self._request(task, cfg, body, url, base)
        ssl_ctx = self.senders.client_tls(cfg) if cfg is not None and cfg.mtls_cert else None
        self.senders.for_policy(policy).start(
            url, body, headers, timeout, policy, ssl_ctx,
            lambda result: self._finish_attempt(target, task, attempted_at, taken_ns, result))

    def _finish_attempt(self, target: Target, task: Task, attempted_at: datetime, taken_ns: int,
                        result: SendResult) -> None:
        try:
            outcome = self._outcome(task, target.cfg, target.gate is not None, result, attempted_at,
                                    result.sent_ns - taken_ns)
        except Exception:
            log.exception("outcome could not be built", extra={"task": str(task.id)})
            self.dispatcher.finish(target, task, "retry", False, now_ms(), now_ms() + 1000, False)
            self._wake.set()
            return
        self.writer.add(outcome)
        how: Finish = "delivered" if outcome.new_status == "delivered" else (
            "retry" if outcome.new_status == "failed" else "final")
        retry_at = int(outcome.next_attempt_at.timestamp() * 1000) if how == "retry" else None
        counts = result.category not in ("blocked", "transform", "cancelled")
        changed = self.dispatcher.finish(target, task, how, counts, now_ms(), retry_at, outcome.keep_claim)
        if changed and target.breaker is not None and target.endpoint_id is not None:
            self._spawn(self._persist_breaker(target.endpoint_id, target.breaker))
        if self.held < self.max_buffered // 2:
            self._claim_now.set()
        self._wake.set()

    def _flushed(self, _batch: list[Outcome], _matched: set[uuid.UUID]) -> None:
        if self.held < self.max_buffered // 2:
            self._claim_now.set()    # the writer's backlog made room: claim without waiting for a scan

    @property
    def held(self) -> int:
        """Tasks this shard holds in memory: claimed and unfinished, plus outcomes not yet written.
        Counting the writer's backlog is the backpressure that keeps memory flat when Postgres
        records outcomes slower than the sinks answer."""
        return self.dispatcher.buffered + len(self.writer.pending)

    def _stats_snapshot(self) -> tuple[ShardStats, list[EndpointLimiterStats]]:
        d = self.dispatcher
        return (ShardStats(self.index, self.lo, self.hi, self.owner, self.epoch, d.buffered, d.in_flight,
                           self.delivered),
                limiter_stats(d.targets.values(), now_ms() / 1000))

    async def _persist_breaker(self, endpoint_id: uuid.UUID, breaker: CircuitBreaker) -> None:
        opened = breaker.opened_at_ms
        try:
            await self.pool.execute(q("set_circuit_state"), endpoint_id, breaker.state.value,
                                    datetime.fromtimestamp(opened / 1000, UTC) if opened else None)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("breaker state not persisted", extra={"endpoint": str(endpoint_id), "error": str(exc)})

    def _outcome(self, task: Task, cfg: EndpointConfig | None, fifo: bool, r: SendResult, attempted_at: datetime,
                 prep_ns: int) -> Outcome:
        task.attempts += 1
        now = datetime.now(UTC)
        keep = False
        next_at = now
        delivered_at = None
        if r.outcome == "success":
            status = "delivered"
            delivered_at = now
            self.delivered += 1
        elif r.permanent or task.attempts >= task.max_attempts:
            status = "dead"
        else:
            status = "failed"
            eng = self.settings.engine
            base = cfg.retry_backoff_ms if cfg else int(eng["default_retry_backoff_ms"])
            mult = cfg.retry_backoff_mult if cfg else float(eng["default_retry_backoff_mult"])
            cap = cfg.retry_backoff_max if cfg else int(eng["default_retry_backoff_max"])
            delay = backoff_delay_ms(task.attempts, base, mult, cap, random.random())
            if r.status_code in RETRY_AFTER_STATUSES:
                wait = parse_retry_after(r.retry_after, time.time())
                if wait is not None:
                    delay = min(max(delay, int(wait * 1000)), cap)
            next_at = now + timedelta(milliseconds=delay)
            # FIFO heads stay in memory whatever the delay: the keys behind them must wait. A copy
            # withdrawn mid-send (its event now goes elsewhere) gives its claim up, unless this
            # shard already holds the new copy, so whoever owns the new destination can claim it.
            keep = (fifo or delay <= self.horizon_s * 1000) and (
                not task.superseded or task.id in self.dispatcher.holder)
        overhead_ns = prep_ns + (time.perf_counter_ns() - r.done_ns)
        return Outcome(
            task=task, attempt_id=time_ordered_ids(1)[0], attempt_number=task.attempts, status_code=r.status_code,
            response_body=r.response_body, error=r.error, error_category=r.category, outcome=r.outcome,
            duration_ms=max(0, (r.done_ns - r.sent_ns) // 1_000_000), overhead_us=overhead_ns // 1000,
            attempted_at=attempted_at, new_status=status, next_attempt_at=next_at, keep_claim=keep,
            delivered_at=delivered_at)

    # -- housekeeping --------------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        """Hourly partition upkeep, and retention every `retention.interval_s` (jittered so that
        the shards do not all try at once; the first to get the lock prunes for the cluster)."""
        try:
            policy: RetentionPolicy | None = RetentionPolicy.from_settings(self.settings)
        except SettingsError as exc:
            log.error("retention disabled: bad setting", extra={"error": str(exc)})
            policy = None
        every = policy.interval_s if policy else 0
        next_upkeep, next_prune = 0.0, time.monotonic() + random.uniform(5, 60)
        while not self.stopping:
            if time.monotonic() >= next_upkeep:
                try:
                    await self.pool.execute(q("ensure_attempt_partitions"), 9)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    log.warning("partition upkeep failed", extra={"error": str(exc)})
                next_upkeep = time.monotonic() + 3600
            if policy and every and time.monotonic() >= next_prune:
                await prune_on_schedule(self.settings.database_url, policy)
                next_prune = time.monotonic() + every * random.uniform(1.0, 1.1)
            wake = min(next_upkeep, next_prune) if every else next_upkeep
            await asyncio.sleep(max(1.0, wake - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mittr-shard", description="Run one Mittr engine shard.")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--owner", default=f"{socket.gethostname()}:{os.getpid()}")
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    setup_logging(settings.log["level"], role=f"shard-{args.index}")
    import uvloop

    shard = Shard(settings, args.index, args.count, f"{args.owner}:{args.index}")
    return uvloop.run(shard.run())


if __name__ == "__main__":
    raise SystemExit(main())
