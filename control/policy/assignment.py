"""Which engine shard owns which partitions, as a pure function of the live members.

Every engine process (a `mittr engine` or the engine side of `mittr serve`) is a member with K
shards. All shards of all live members are ordered by (shard index, member id) and the partitions
are cut into one contiguous range per shard, sizes differing by at most one. Every shard computes
the same answer from the same member list, so no coordinator is needed: ownership itself changes
hands only through the epoch-fenced lease (engine/lease.py), never by this function alone.

Contiguous ranges keep one lease, one range predicate and one claim statement per shard. The price
is movement: a join or leave shifts the boundaries of the shards after it, so up to about half of
the partitions change owner (a drain-and-hand-over pause for them, not a loss), where rendezvous
hashing would move only the joiner's share. Interleaving the members (every member's shard 0 first,
then every shard 1, ...) keeps that at about half when members run equal shard counts; ordering by
member first would shift a joiner's K slots through everyone after it (up to ~90% moved at K = 4).
`moved` measures it; docs/operations.md says what a move costs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from control.policy.partitioning import shard_ranges

Slot = tuple[str, int]          # (member id, shard index within the member)
Assignment = dict[Slot, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    shards: int


def slots(members: Iterable[Member]) -> list[Slot]:
    """Every shard of every member, in the one order all members agree on. A member listed twice
    counts once, with its largest shard count; members without shards take nothing."""
    widest: dict[str, int] = {}
    for m in members:
        widest[m.id] = max(widest.get(m.id, 0), m.shards)
    return sorted(((member, i) for member, k in widest.items() for i in range(k)), key=lambda s: (s[1], s[0]))


def assign(members: Iterable[Member], partitions: int) -> Assignment:
    """[lo, hi) per shard; together the ranges cover 0..partitions-1 exactly once. With more
    shards than partitions the last shards get empty ranges (lo == hi): they hold nothing."""
    order = slots(members)
    if not order:
        return {}
    return dict(zip(order, shard_ranges(partitions, len(order)), strict=True))


def owner_of(assignment: Assignment, partition: int) -> Slot | None:
    for slot, (lo, hi) in assignment.items():
        if lo <= partition < hi:
            return slot
    return None


def moved(before: Assignment, after: Assignment, partitions: int) -> int:
    """Partitions whose owning shard differs between two assignments (a partition owned by nobody
    on one side counts as moved)."""
    def owners(a: Assignment) -> list[Slot | None]:
        out: list[Slot | None] = [None] * partitions
        for slot, (lo, hi) in a.items():
            for p in range(lo, hi):
                out[p] = slot
        return out
    return sum(1 for x, y in zip(owners(before), owners(after), strict=True) if x is None or x != y)
