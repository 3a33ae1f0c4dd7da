"""A shard's lease on its partition range: the fence on everything the shard writes.

The lease is a row in Postgres with an epoch; the shard renews it every few seconds, and every
claim and outcome it writes is fenced by that epoch, so a shard that lost its lease (paused too
long, partitioned from the database) can change nothing once another owner took the range.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg

from control.store.queries import q

log = logging.getLogger("mittr.engine.lease")
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
ACQUIRE_POLL_S = 0.25    # a range being handed over is taken this soon after its giver releases it
SAFETY = 0.1             # stop sending this share of the TTL before the lease could have expired


class Lease:
    def __init__(self, pool: asyncpg.Pool, lo: int, hi: int, owner: str, ttl_s: float, renew_s: float) -> None:
        self.pool = pool
        self.lo, self.hi, self.owner = lo, hi, owner
        self.slot = f"{lo}-{hi}"
        self.ttl_s, self.renew_s = ttl_s, renew_s
        self.epoch = 0
        self.lost = False
        self.valid_until = 0.0   # monotonic: the lease is surely ours until then (see `valid`)

    def owns(self, partition: int) -> bool:
        return self.lo <= partition < self.hi

    def valid(self) -> bool:
        """False once the lease may have expired in Postgres without our knowing: the last renewal
        that succeeded was sent more than the TTL (less a margin) ago, e.g. while cut off from the
        database. Measured from when the request was sent, so never later than Postgres's own
        expiry; a shard stops sending then, before a new owner can have taken the range."""
        return time.monotonic() < self.valid_until

    def _renewed(self, sent_at: float) -> None:
        self.valid_until = sent_at + self.ttl_s * (1 - SAFETY)

    async def acquire(self, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Wait until the range is ours (free, expired, or held by our own earlier incarnation);
        work an earlier owner held goes back to the queue under the new epoch. False when asked to
        stop first."""
        while not stopping():
            sent_at = time.monotonic()
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    # Try, never wait: a member cut off while holding this lock keeps it until
                    # PostgreSQL ends its idle transaction; the others just poll again.
                    locked = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext('mittr_leases'))")
                    if locked and not await conn.fetch(q("overlapping_live_leases"), self.slot, self.lo, self.hi):
                        await conn.execute(q("drop_overlapping_leases"), self.slot, self.lo, self.hi)
                        epoch = await conn.fetchval(q("acquire_lease"), self.slot, self.lo, self.hi,
                                                    self.owner, self.ttl_s)
                        if epoch is not None:
                            self.epoch = int(epoch)
                            self._renewed(sent_at)
                            reset = await conn.execute(q("reset_stale_claims"), self.lo, self.hi, self.epoch)
                            log.info("lease acquired", extra={"range": self.slot, "epoch": self.epoch,
                                                              "reclaimed": reset})
                            return True
            except DB_ERRORS as exc:
                log.warning("lease acquisition failed", extra={"error": str(exc)})
            await asyncio.sleep(ACQUIRE_POLL_S)
        return False

    async def keep(self, on_lost: Callable[[], None], stopping: Callable[[], bool]) -> None:
        """Renew until stopped; a renewal that finds the lease taken reports it once and ends."""
        while not stopping():
            await asyncio.sleep(self.renew_s)
            sent_at = time.monotonic()
            try:
                renewed = await asyncio.wait_for(
                    self.pool.fetchval(q("renew_lease"), self.slot, self.epoch, self.ttl_s),
                    timeout=max(1.0, self.ttl_s / 2))   # a silent network must not hold the loop
            except DB_ERRORS as exc:
                log.warning("lease renewal failed", extra={"error": str(exc) or type(exc).__name__})
                continue
            if renewed is None:
                self.lost = True
                on_lost()
                return
            self._renewed(sent_at)

    async def release(self) -> None:
        """Hand the range over at once (a clean stop, or giving up after writes kept failing)."""
        try:
            await self.pool.execute(q("release_lease"), self.slot, self.epoch)
        except DB_ERRORS:
            pass
