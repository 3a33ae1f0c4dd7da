"""This engine process as a member: heartbeat, the live member list, and the range it implies.

The supervising process (`mittr engine`, `mittr serve`) is the member. Its first shard ready to
take a range registers it (so the others do not hand ranges over to a member still starting up),
and from then on a thread of the supervisor heartbeats the row every `lease_renew_s`, so a shard
restarting does not make its member look dead. Every shard recomputes the assignment (control/policy/assignment.py)
from the live members every `lease_renew_s`, or at once when a member announces a join or a clean
leave on `mittr_members`.
When the range assigned to this shard differs from the one it holds, the shard hands its range over
(drain, release: engine/shard.py) and a fresh process takes the new one. The range itself only
changes hands through the epoch-fenced lease; the member list only says who should ask for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

import asyncpg

from control.policy.assignment import Member, assign
from control.store.queries import q
from engine.lease import DB_ERRORS

log = logging.getLogger("mittr.engine.membership")
MEMBERS_CHANNEL = "mittr_members"
EXIT_REASSIGNED = 4           # a shard that handed its range over exits with this; restarted at once
FORGET_AFTER_TTLS = 20        # expired member rows stay visible in `mittr status` this many TTLs


def new_member_id(host: str | None = None) -> str:
    """Unique per process start; the assignment orders members by it."""
    return f"{host or socket.gethostname()}-{uuid.uuid4().hex[:8]}"


async def register(conn: asyncpg.Connection | asyncpg.Pool, member_id: str, shards: int,
                   host: str | None = None, pid: int | None = None) -> None:
    """Join: the row, then a wake-up so the others rebalance now rather than on their next look."""
    await conn.execute(q("member_join"), member_id, host or socket.gethostname(), pid or os.getpid(), shards)
    await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, member_id)


async def leave(conn: asyncpg.Connection | asyncpg.Pool, member_id: str) -> None:
    """A clean stop, before the member's shards drain: the others recompute now and take each range
    as soon as its shard has released it."""
    await conn.execute(q("member_leave"), member_id)
    await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, member_id)


class Heartbeat(threading.Thread):
    """The member's heartbeat, in a thread of the supervising process (which is synchronous):
    its own event loop and connection, reconnecting after a failure, until `stop()`. It keeps alive
    a row its shards made; a row that vanished after that (forgotten during a long outage) it makes
    again."""

    def __init__(self, url: str, member_id: str, shards: int, interval_s: float) -> None:
        super().__init__(name="mittr-member-heartbeat", daemon=True)
        self.url, self.member_id, self.shards, self.interval_s = url, member_id, shards, interval_s
        self._halt = threading.Event()

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        conn: asyncpg.Connection | None = None
        seen = False
        limit = max(1.0, self.interval_s)
        while not self._halt.is_set():
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self.url, timeout=limit)
                if await asyncio.wait_for(conn.fetchval(q("member_beat"), self.member_id), timeout=limit):
                    seen = True
                elif seen:
                    await asyncio.wait_for(register(conn, self.member_id, self.shards), timeout=limit)
            except Exception as exc:   # never die: a silent heartbeat would stall the member's ranges
                log.warning("member heartbeat failed",
                            extra={"member": self.member_id, "error": str(exc) or type(exc).__name__})
                if conn is not None:
                    conn.terminate()
                    conn = None
            await asyncio.to_thread(self._halt.wait, self.interval_s)
        if conn is not None:
            await conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=self.interval_s + 5)


class Membership:
    """One shard's view: its member, its index within the member, the range assigned to it."""

    def __init__(self, pool: asyncpg.Pool, member_id: str, shards: int, index: int, partitions: int,
                 ttl_s: float, renew_s: float) -> None:
        self.pool, self.member_id, self.shards, self.index = pool, member_id, shards, index
        self.partitions, self.ttl_s, self.renew_s = partitions, ttl_s, renew_s
        self.members: list[Member] = []
        self.wanted = asyncio.Event()

    async def join(self) -> None:
        await register(self.pool, self.member_id, self.shards, pid=os.getppid())

    async def view(self) -> tuple[int, int]:
        """Read the live members, return this shard's range (lo == hi: nothing to hold)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(q("live_members"), self.ttl_s)
            if self.index == 0:
                await conn.execute(q("forget_members"), self.ttl_s * FORGET_AFTER_TTLS)
        self.members = [Member(r["id"], int(r["shards"])) for r in rows]
        # A member the others count as gone (heartbeat stale, or deregistered) holds nothing, even
        # though this shard runs: everyone must compute from the same list, or a range could be
        # wanted by two shards while another is wanted by none.
        return assign(self.members, self.partitions).get((self.member_id, self.index), (0, 0))

    def poke(self, _payload: str = "") -> None:
        """A member joined or left (NOTIFY): look again now."""
        self.wanted.set()

    async def watch(self, held: tuple[int, int], on_moved: Callable[[tuple[int, int]], None],
                    stopping: Callable[[], bool]) -> None:
        """Look every renew interval; report once when the assignment no longer gives us `held`."""
        while not stopping():
            try:
                await asyncio.wait_for(self.wanted.wait(), timeout=self.renew_s)
            except TimeoutError:
                pass
            self.wanted.clear()
            if stopping():
                return
            try:
                now = await self.view()
            except DB_ERRORS as exc:
                log.warning("reading the engine members failed", extra={"error": str(exc)})
                continue
            if now != held:
                log.info("range reassigned", extra={"member": self.member_id, "index": self.index,
                                                    "held": f"{held[0]}-{held[1]}", "assigned": f"{now[0]}-{now[1]}",
                                                    "members": len(self.members)})
                on_moved(now)
                return
