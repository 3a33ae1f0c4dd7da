"""FIFO gate: per-key order, one in flight per key, failures block only their key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy.fifo import FifoGate


def test_orders_by_seq_not_arrival() -> None:
    gate: FifoGate[str] = FifoGate()
    gate.push("k", 3, "c")
    gate.push("k", 1, "a")
    gate.push("k", 2, "b")
    assert len(gate) == 3
    assert gate.pop_ready() == ["a"]
    assert gate.pop_ready() == []  # one in flight per key
    gate.done("k", success=True)
    assert gate.pop_ready() == ["b"]
    gate.done("k", success=True)
    assert gate.pop_ready() == ["c"]
    gate.done("k", success=True)
    assert len(gate) == 0
    assert gate.pop_ready() == []


def test_failure_blocks_only_its_key() -> None:
    gate: FifoGate[str] = FifoGate()
    gate.push("a", 1, "a1")
    gate.push("a", 2, "a2")
    gate.push("b", 1, "b1")
    gate.push("b", 2, "b2")
    assert sorted(gate.pop_ready()) == ["a1", "b1"]
    gate.done("a", success=False)
    gate.done("b", success=True)
    assert gate.pop_ready() == ["b2"]  # "a" waits for its retry timer
    gate.push("a", 0, "a0")  # even a lower seq does not jump a head that is being retried
    assert gate.pop_ready() == []
    gate.release("a")
    assert gate.pop_ready() == ["a1"]  # the same head again
    gate.done("a", success=True)
    assert gate.pop_ready() == ["a0"]
    gate.done("a", success=True)
    assert gate.pop_ready() == ["a2"]
    assert len(gate) == 2  # a2 and b2 in flight


def test_drop_head_moves_on() -> None:
    gate: FifoGate[int] = FifoGate()
    for seq in (1, 2):
        gate.push("k", seq, seq)
    assert gate.pop_ready() == [1]
    gate.done("k", success=False)
    gate.drop_head("k")  # dead-lettered
    assert gate.pop_ready() == [2]
    gate.drop_head("k")  # dropping an in-flight head is allowed too
    assert len(gate) == 0
    with pytest.raises(ValueError):
        gate.done("k", success=True)
    gate.drop_head("unknown")
    gate.release("unknown")


def test_drop_head_of_ready_key_drops_lowest_seq() -> None:
    gate: FifoGate[int] = FifoGate()
    gate.push("k", 5, 5)
    gate.push("k", 4, 4)
    gate.drop_head("k")
    assert gate.pop_ready() == [5]


def test_release_without_failure_is_a_noop() -> None:
    gate: FifoGate[int] = FifoGate()
    gate.push("k", 1, 1)
    gate.push("k", 2, 2)
    assert gate.pop_ready() == [1]
    gate.release("k")  # in flight, not failed: nothing to release
    assert gate.pop_ready() == []


def test_done_requires_in_flight() -> None:
    gate: FifoGate[int] = FifoGate()
    gate.push("k", 1, 1)
    with pytest.raises(ValueError):
        gate.done("k", success=True)


def test_none_items_are_supported() -> None:
    gate: FifoGate[None] = FifoGate()
    gate.push("k", 1, None)
    assert gate.pop_ready() == [None]
    gate.done("k", success=False)
    gate.release("k")
    assert gate.pop_ready() == [None]


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 3), st.integers(0, 20)),
        st.tuples(st.just("pop"), st.just(0), st.just(0)),
        st.tuples(st.just("done"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("release"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("drop"), st.integers(0, 3), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(ops=_ops)
def test_random_operations_keep_order_and_exclusivity(ops: list[tuple[str, int, int | bool]]) -> None:
    gate: FifoGate[int] = FifoGate()
    info: dict[int, tuple[str, int]] = {}  # item -> (key, seq)
    queued: dict[str, set[int]] = {}  # not yet taken, per key
    head: dict[str, int] = {}  # taken item per key (in flight or awaiting retry)
    in_flight: set[str] = set()
    blocked: set[str] = set()
    for op, k, arg in ops:
        key = f"k{k}"
        if op == "push":
            item = len(info)
            info[item] = (key, int(arg))
            queued.setdefault(key, set()).add(item)
            gate.push(key, int(arg), item)
        elif op == "pop":
            eligible = {
                key
                for key in set(queued) | set(head)
                if key not in in_flight and key not in blocked
                if queued.get(key) or key in head
            }
            popped = gate.pop_ready()
            assert sorted(info[i][0] for i in popped) == sorted(eligible)  # one per eligible key
            for item in popped:
                key = info[item][0]
                if key in head:
                    assert item == head[key]  # a released head comes back first
                else:
                    lowest = min(info[i][1] for i in queued[key])
                    assert info[item][1] == lowest  # strict seq order
                    queued[key].discard(item)
                    head[key] = item
                in_flight.add(key)
        elif op == "done":
            if key not in in_flight:
                with pytest.raises(ValueError):
                    gate.done(key, bool(arg))
                continue
            gate.done(key, bool(arg))
            in_flight.discard(key)
            if arg:
                del head[key]
            else:
                blocked.add(key)
        elif op == "release":
            gate.release(key)
            blocked.discard(key)
        elif op == "drop":
            gate.drop_head(key)
            if key in head:
                del head[key]
            elif queued.get(key):
                lowest = min(queued[key], key=lambda i: (info[i][1], i))
                queued[key].discard(lowest)
            in_flight.discard(key)
            blocked.discard(key)
        assert len(gate) == sum(map(len, queued.values())) + len(head)
