"""This engine process as a member: heartbeat, the live member list, and the range it implies.

Every shard of a member heartbeats the member's row (so the member lives while any of its shards
does) and recomputes the assignment (control/policy/assignment.py) from the live members every
`lease_renew_s`, or at once when a member announces a join or a clean leave on `mittr_members`.
When the range assigned to this shard differs from the one it holds, the shard hands its range over
(drain, release: engine/shard.py) and a fresh process takes the new one. The range itself only
changes hands through the epoch-fenced lease; the member list only says who should ask for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
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
    """Join (or stay): the row, then a wake-up so the others rebalance now rather than on their next beat."""
    await conn.execute(q("member_heartbeat"), member_id, host or socket.gethostname(), pid or os.getpid(), shards)
    await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, member_id)


async def leave(conn: asyncpg.Connection | asyncpg.Pool, member_id: str) -> None:
    """A clean stop, once the member's shards have released their leases."""
    await conn.execute(q("member_leave"), member_id)
    await conn.execute("SELECT pg_notify($1, $2)", MEMBERS_CHANNEL, member_id)


class Membership:
    """One shard's view: its member, its index within the member, the range assigned to it."""

    def __init__(self, pool: asyncpg.Pool, member_id: str, shards: int, index: int, partitions: int,
                 ttl_s: float, renew_s: float, host: str | None = None, pid: int | None = None) -> None:
        self.pool, self.member_id, self.shards, self.index = pool, member_id, shards, index
        self.partitions, self.ttl_s, self.renew_s = partitions, ttl_s, renew_s
        self.host, self.pid = host or socket.gethostname(), pid or os.getppid()
        self.members: list[Member] = []
        self.wanted = asyncio.Event()

    async def beat(self) -> tuple[int, int]:
        """Heartbeat, read the live members, return this shard's range (lo == hi: nothing to hold)."""
        async with self.pool.acquire() as conn:
            await conn.execute(q("member_heartbeat"), self.member_id, self.host, self.pid, self.shards)
            rows = await conn.fetch(q("live_members"), self.ttl_s)
            if self.index == 0:
                await conn.execute(q("forget_members"), self.ttl_s * FORGET_AFTER_TTLS)
        self.members = [Member(r["id"], int(r["shards"])) for r in rows]
        if not any(m.id == self.member_id for m in self.members):   # our own beat is in: a clock oddity
            self.members.append(Member(self.member_id, self.shards))
        return assign(self.members, self.partitions).get((self.member_id, self.index), (0, 0))

    def poke(self, _payload: str = "") -> None:
        """A member joined or left (NOTIFY): look again now."""
        self.wanted.set()

    async def watch(self, held: tuple[int, int], on_moved: Callable[[tuple[int, int]], None],
                    stopping: Callable[[], bool]) -> None:
        """Heartbeat every renew interval; report once when the assignment no longer gives us `held`."""
        while not stopping():
            try:
                await asyncio.wait_for(self.wanted.wait(), timeout=self.renew_s)
            except TimeoutError:
                pass
            self.wanted.clear()
            if stopping():
                return
            try:
                now = await self.beat()
            except DB_ERRORS as exc:
                log.warning("membership heartbeat failed", extra={"error": str(exc)})
                continue
            if now != held:
                log.info("range reassigned", extra={"member": self.member_id, "index": self.index,
                                                    "held": f"{held[0]}-{held[1]}", "assigned": f"{now[0]}-{now[1]}",
                                                    "members": len(self.members)})
                on_moved(now)
                return
