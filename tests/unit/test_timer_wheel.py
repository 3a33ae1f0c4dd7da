"""Timer wheel: every live timer fires exactly once, never early, whatever the clock does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy.timer_wheel import TimerHandle, TimerWheel


def test_fires_due_items_in_order_and_not_before() -> None:
    wheel: TimerWheel[str] = TimerWheel(now_ms=1_000, tick_ms=10)
    wheel.schedule(1_050, "b")
    wheel.schedule(1_015, "a")
    wheel.schedule(5_000, "c")
    assert len(wheel) == 3
    assert wheel.advance(1_014) == []
    assert wheel.advance(1_015) == ["a"]
    assert wheel.advance(1_049) == []
    assert wheel.advance(4_999) == ["b"]
    assert wheel.advance(5_000) == ["c"]
    assert len(wheel) == 0
    assert wheel.next_due_ms() is None


def test_exact_due_within_a_tick() -> None:
    # Due times inside one tick must not fire early just because their tick started.
    wheel: TimerWheel[int] = TimerWheel(now_ms=0, tick_ms=100)
    wheel.schedule(150, 1)
    wheel.schedule(120, 2)
    assert wheel.advance(110) == []
    assert wheel.advance(130) == [2]
    assert wheel.next_due_ms() == 150
    assert wheel.advance(160) == [1]


def test_past_and_present_due_fire_on_next_advance() -> None:
    wheel: TimerWheel[str] = TimerWheel(now_ms=500)
    wheel.schedule(100, "past")
    wheel.schedule(500, "now")
    assert wheel.next_due_ms() == 500
    assert wheel.advance(500) == ["past", "now"]
    # Even a clock that went backwards returns already-due items.
    wheel.schedule(400, "late")
    assert wheel.advance(450) == ["late"]


def test_cancel() -> None:
    wheel: TimerWheel[str] = TimerWheel(now_ms=0, tick_ms=1, slots=4, levels=2)
    near = wheel.schedule(3, "near")
    far = wheel.schedule(10_000, "overflow")
    ready = wheel.schedule(0, "ready")
    mid = wheel.schedule(9, "mid")
    assert wheel.cancel(near) and wheel.cancel(far) and wheel.cancel(ready)
    assert not wheel.cancel(near)
    assert len(wheel) == 1
    assert wheel.advance(20_000) == ["mid"]
    assert not wheel.cancel(mid)  # already fired
    assert len(wheel) == 0


def test_cancel_rejects_foreign_handle() -> None:
    a: TimerWheel[str] = TimerWheel(now_ms=0)
    b: TimerWheel[str] = TimerWheel(now_ms=0)
    handle_a = a.schedule(100, "a")
    b.schedule(100, "b")
    assert isinstance(handle_a, TimerHandle)
    assert not b.cancel(handle_a)
    assert len(b) == 1
    assert a.cancel(handle_a)


def test_overflow_beyond_top_horizon() -> None:
    # 4 slots x 2 levels x 1 ms = 16 ms horizon; everything further goes to overflow.
    wheel: TimerWheel[int] = TimerWheel(now_ms=0, tick_ms=1, slots=4, levels=2)
    dues = [17, 100, 1_000, 16, 15, 64, 65, 1_000]
    for due in dues:
        wheel.schedule(due, due)
    fired: list[int] = []
    now = 0
    while len(wheel):
        nxt = wheel.next_due_ms()
        assert nxt is not None and nxt >= now
        now = nxt
        fired.extend(wheel.advance(now))
    assert fired == sorted(dues)


def test_next_due_is_exact_or_lower_bound() -> None:
    wheel: TimerWheel[str] = TimerWheel(now_ms=0, tick_ms=10, slots=8, levels=2)
    assert wheel.next_due_ms() is None
    wheel.schedule(5_005, "x")
    bound = wheel.next_due_ms()
    assert bound is not None and 0 < bound <= 5_005
    # Following the bounds never busy-loops and lands on the exact time.
    now, wakeups = 0, 0
    while True:
        nxt = wheel.next_due_ms()
        assert nxt is not None and nxt > now
        now = nxt
        wakeups += 1
        if wheel.advance(now):
            break
    assert now == 5_005
    assert wakeups <= 4


class _CountingWheel(TimerWheel[int]):
    """Counts the cursor jumps advance makes, to check sparse jumps skip empty ticks."""

    jumps = 0

    def _next_event_tick(self, limit: int) -> int:
        self.jumps += 1
        return super()._next_event_tick(limit)


def test_large_sparse_jump_skips_empty_ticks() -> None:
    wheel = _CountingWheel(now_ms=0, tick_ms=1)
    day = 86_400_000
    dues = [5, day, 30 * day, 20 * 365 * day, 200 * 365 * day]
    for due in dues:
        wheel.schedule(due, due)
    assert wheel.advance(1_000 * 365 * day) == dues
    assert len(wheel) == 0
    assert wheel.jumps < 50  # per-tick stepping would take ~3e13 iterations


def test_dense_schedule_all_fire() -> None:
    wheel: TimerWheel[int] = TimerWheel(now_ms=0, tick_ms=1, slots=16, levels=2)
    for i in range(2_000):
        wheel.schedule(i * 7 % 1_500, i)
    fired = wheel.advance(2_000)
    assert sorted(fired) == list(range(2_000))
    assert len(wheel) == 0


def test_rejects_bad_parameters() -> None:
    for kwargs in ({"tick_ms": 0}, {"slots": 1}, {"levels": 0}):
        try:
            TimerWheel(now_ms=0, **kwargs)
        except ValueError:
            continue
        raise AssertionError(f"accepted {kwargs}")


_offsets = st.one_of(
    st.integers(-50, 50),
    st.integers(0, 5_000),
    st.integers(0, 10**9),
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), _offsets),
        st.tuples(st.just("cancel"), st.integers(0, 10**6)),
        st.tuples(st.just("advance"), st.one_of(st.integers(-20, 200), st.integers(0, 10**9))),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(-(10**6), 10**6),
    tick=st.integers(1, 20),
    slots=st.integers(2, 8),
    levels=st.integers(1, 3),
    ops=_ops,
)
def test_matches_reference_model(start: int, tick: int, slots: int, levels: int, ops: list[tuple[str, int]]) -> None:
    wheel: TimerWheel[int] = TimerWheel(now_ms=start, tick_ms=tick, slots=slots, levels=levels)
    now = start
    pending: dict[int, int] = {}  # id -> due
    handles: list[tuple[int, TimerHandle]] = []
    fired_ids: set[int] = set()
    for op, arg in ops:
        if op == "schedule":
            ident = len(handles)
            handles.append((ident, wheel.schedule(now + arg, ident)))
            pending[ident] = now + arg
        elif op == "cancel" and handles:
            ident, handle = handles[arg % len(handles)]
            assert wheel.cancel(handle) == (ident in pending)
            pending.pop(ident, None)
        elif op == "advance":
            if arg >= 0:
                now += arg
            fired = wheel.advance(now + min(arg, 0))  # a negative step plays a clock going back
            expected = sorted((due, i) for i, due in pending.items() if due <= now)
            assert fired == [i for _, i in expected]
            assert not fired_ids.intersection(fired)
            fired_ids.update(fired)
            for i in fired:
                del pending[i]
        assert len(wheel) == len(pending)
        nxt = wheel.next_due_ms()
        if not pending:
            assert nxt is None
        else:
            assert nxt is not None
            assert now <= nxt <= max(min(pending.values()), now)
    # Draining by following next_due_ms fires everything left, each at or after its due time.
    for _ in range(10_000):
        nxt = wheel.next_due_ms()
        if nxt is None:
            break
        assert nxt >= now
        now = nxt
        for i in wheel.advance(now):
            assert pending.pop(i) <= now
    assert not pending
