"""The partition assignment is a pure function of the live members: every shard of every member
computes the same ranges, so it must cover every partition once, be balanced, ignore the order in
which members were read, and move as little as contiguous ranges allow when a member comes or goes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from control.policy.assignment import Member, assign, moved, owner_of, slots

member_ids = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=12)
members = st.lists(st.builds(Member, member_ids, st.integers(1, 6)), min_size=1, max_size=10,
                   unique_by=lambda m: m.id)
partitions = st.integers(0, 5000)


@given(members, partitions)
def test_every_partition_has_exactly_one_owner_and_sizes_differ_by_at_most_one(ms: list[Member], p: int) -> None:
    a = assign(ms, p)
    assert set(a) == set(slots(ms)) and len(a) == sum(m.shards for m in ms)
    covered = sorted(x for lo, hi in a.values() for x in range(lo, hi))
    assert covered == list(range(p))
    sizes = [hi - lo for lo, hi in a.values()]
    assert max(sizes) - min(sizes) <= 1


@given(members, partitions, st.randoms(use_true_random=False))
def test_the_answer_ignores_order_and_repeats(ms: list[Member], p: int, rnd: object) -> None:
    shuffled = list(ms)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert assign(shuffled + shuffled[:2], p) == assign(ms, p)


@given(members, st.integers(0, 4095))
def test_owner_of_agrees_with_the_ranges(ms: list[Member], partition: int) -> None:
    a = assign(ms, 4096)
    member, index = owner_of(a, partition) or ("", -1)
    lo, hi = a[(member, index)]
    assert lo <= partition < hi


@given(st.lists(member_ids, min_size=1, max_size=8, unique=True), member_ids, st.integers(1, 4),
       st.sampled_from([256, 1000, 4096]))
def test_a_join_or_leave_moves_at_most_about_half(ids: list[str], joiner: str, k: int, p: int) -> None:
    """Members of one size (the usual deployment): a join or a leave moves at most half of the
    partitions plus the joiner's own share (and rounding), whatever its place in the order
    (rendezvous hashing would move only the share; contiguous ranges are the trade-off)."""
    if joiner in ids:
        return
    before = [Member(i, k) for i in ids]
    after = [*before, Member(joiner, k)]
    shards = k * len(after)
    join = moved(assign(before, p), assign(after, p), p)
    assert join <= p // 2 + p * k // shards + 2 * shards
    assert join >= p * k // shards - shards, "at least the joiner's share changes hands"
    leave = moved(assign(after, p), assign(before, p), p)
    assert leave == join


@given(members, partitions)
def test_no_change_moves_nothing(ms: list[Member], p: int) -> None:
    assert moved(assign(ms, p), assign(list(reversed(ms)), p), p) == 0


def test_more_shards_than_partitions_leaves_some_empty() -> None:
    a = assign([Member("a", 3), Member("b", 2)], 3)
    assert sorted(hi - lo for lo, hi in a.values()) == [0, 0, 1, 1, 1]
    assert assign([], 10) == {}
