"""Who runs the engine and who holds what: engine members, the partition ranges they lease, each
lease's epoch and age, and the work waiting per range. One read for `mittr status` and /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from control.jsonfmt import iso
from control.store.queries import q


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: str
    host: str
    pid: int
    shards: int
    started_at: datetime
    heartbeat_age_s: float
    live: bool


@dataclass(frozen=True, slots=True)
class RangeRow:
    slot: str
    lo: int
    hi: int
    owner: str
    member: str | None      # the member whose shard holds it (None: a fixed `--total` shard or unknown)
    epoch: int
    live: bool
    renewed_age_s: float
    expires_in_s: float
    backlog: int            # deliveries in the range not finished (queued, failed, delivering)


@dataclass(frozen=True, slots=True)
class EngineStatus:
    members: list[MemberRow]
    ranges: list[RangeRow]
    unleased_backlog: int   # unfinished work in partitions no live lease covers

    def json(self) -> dict[str, Any]:
        return {
            "members": [{"id": m.id, "host": m.host, "pid": m.pid, "shards": m.shards,
                         "startedAt": iso(m.started_at), "heartbeatAgeS": round(m.heartbeat_age_s, 3),
                         "live": m.live} for m in self.members],
            "ranges": [{"range": r.slot, "lo": r.lo, "hi": r.hi, "owner": r.owner, "member": r.member,
                        "epoch": r.epoch, "live": r.live, "renewedAgeS": round(r.renewed_age_s, 3),
                        "expiresInS": round(r.expires_in_s, 3), "backlog": r.backlog} for r in self.ranges],
            "unleasedBacklog": self.unleased_backlog,
        }


def member_of_owner(owner: str, members: set[str]) -> str | None:
    """A member's shard leases as "<member id>:<shard index>"."""
    head, _, index = owner.rpartition(":")
    return head if index.isdigit() and head in members else None


async def engine_status(conn: asyncpg.Connection | asyncpg.Pool, ttl_s: float) -> EngineStatus:
    """`ttl_s`: engine.lease_ttl_s, the heartbeat age after which a member counts as gone."""
    members = [MemberRow(r["id"], r["host"], r["pid"], r["shards"], r["started_at"], r["heartbeat_age_s"], r["live"])
               for r in await conn.fetch(q("status_members"), ttl_s)]
    ids = {m.id for m in members}
    ranges = [RangeRow(r["slot"], r["lo"], r["hi"], r["owner"], member_of_owner(r["owner"], ids), r["epoch"],
                       r["live"], r["renewed_age_s"], r["expires_in_s"], r["backlog"])
              for r in await conn.fetch(q("status_leases"))]
    unleased = int(await conn.fetchval(q("status_unleased_backlog")))
    return EngineStatus(members, ranges, unleased)


def _age(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def render(status: EngineStatus) -> str:
    """The human table `mittr status` prints."""
    lines = [f"Engine members ({sum(m.live for m in status.members)} live):"]
    if not status.members:
        lines.append("  none registered (no `mittr engine` or `mittr serve` has run here since 028)")
    for m in status.members:
        held = [r for r in status.ranges if r.member == m.id and r.live]
        size = sum(r.hi - r.lo for r in held)
        lines.append(f"  {m.id:<28} host {m.host:<16} pid {m.pid:<7} shards {m.shards:<3} "
                     f"heartbeat {_age(m.heartbeat_age_s)} ago  {'live' if m.live else 'EXPIRED':<7} "
                     f"{len(held)} ranges, {size} partitions")
    lines.append("Partition ranges:")
    if not status.ranges:
        lines.append("  no leases")
    for r in status.ranges:
        state = f"live, expires in {r.expires_in_s:.1f}s" if r.live else "released/expired"
        lines.append(f"  {r.slot:<11} owner {r.owner:<32} epoch {r.epoch:<6} renewed {_age(r.renewed_age_s)} ago  "
                     f"{state:<26} backlog {r.backlog}")
    lines.append(f"Backlog in partitions no live lease covers: {status.unleased_backlog}")
    return "\n".join(lines)
