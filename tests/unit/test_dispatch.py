"""The shard's in-memory scheduler, driven with synthetic time: no I/O, no sleeping."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy.ssrf import AddressPolicy
from engine.dispatch import Dispatcher, Target
from engine.model import EndpointConfig, Task

T0 = 1_700_000_000_000


def cfg(**over: Any) -> EndpointConfig:
    base: dict[str, Any] = dict(
        id=uuid.uuid4(), url="https://x.example.com", active=True, deleted=False, version=1, timeout_ms=1000,
        custom_headers={}, signing_secret="s" * 10, retry_backoff_ms=1000, retry_backoff_max=60000,
        retry_backoff_mult=2.0, rate_limit_per_sec=0, circuit_threshold=0, circuit_reset_ms=1000,
        circuit_state="closed", circuit_opened_at_ms=None, fifo=False, fifo_partition_key=None,
        delivery_mode="push", policy=AddressPolicy(), mtls_cert=None, mtls_key=None, standard_webhooks=False,
        sw_ed25519_private=None)
    base.update(over)
    return EndpointConfig(**base)


_seq = iter(range(1, 10**9))


def task(target: Target, priority: int = 5, due: int = T0, fifo_key: str = "") -> Task:
    return Task(id=uuid.uuid4(), event_id=uuid.uuid4(), client_id=uuid.uuid4(), project_id=None,
                endpoint_id=target.endpoint_id, partition=0, seq=next(_seq), attempts=0, max_attempts=5,
                priority=priority, due_ms=due, destination=None, event_type="e", payload=b"{}", headers={},
                client_secret="x", target=target.key, fifo_key=fifo_key)


def endpoint(d: Dispatcher, **over: Any) -> Target:
    c = cfg(**over)
    t = d.target(str(c.id), c.id)
    d.configure(t, c, T0)
    return t


def test_round_robin_interleaves_targets() -> None:
    d = Dispatcher(T0, max_in_flight=1000, max_per_target=1000)
    a, b = endpoint(d), endpoint(d)
    for _ in range(3):
        d.add(a, task(a), T0)
    for _ in range(3):
        d.add(b, task(b), T0)
    order = [t.key for t, _ in d.take(T0)]
    assert order == [a.key, b.key] * 3


def test_throttled_endpoint_does_not_slow_others() -> None:
    d = Dispatcher(T0, max_in_flight=1000, max_per_target=1000)
    slow = endpoint(d, rate_limit_per_sec=1)
    fast = endpoint(d)
    for _ in range(50):
        d.add(slow, task(slow), T0)
        d.add(fast, task(fast), T0)
    sent = d.take(T0)
    assert sum(1 for t, _ in sent if t is fast) == 50
    assert sum(1 for t, _ in sent if t is slow) == 1, "1/s with a burst of 1"
    assert slow.throttled > 0
    assert d.take(T0 + 500) == [], "nothing more until the bucket refills"
    d.advance(T0 + 1000)
    later = d.take(T0 + 1000)
    assert [t for t, _ in later] == [slow], "the wheel wakes the throttled endpoint after its refill"


def test_priority_one_goes_first() -> None:
    d = Dispatcher(T0, 1000, 1)
    ep = endpoint(d)
    low = [task(ep, priority=10) for _ in range(3)]
    high = [task(ep, priority=1) for _ in range(3)]
    for t in low + high:
        d.add(ep, t, T0)
    order = []
    for _ in range(6):
        [(target, t)] = d.take(T0)
        order.append(t)
        d.finish(target, t, "delivered", True, T0)
    assert order == high + low


def test_delayed_task_waits_for_its_time() -> None:
    d = Dispatcher(T0, 10, 10)
    ep = endpoint(d)
    later = task(ep, due=T0 + 3000)
    d.add(ep, later, T0)
    assert d.take(T0) == []
    d.advance(T0 + 2990)
    assert d.take(T0 + 2990) == []
    d.advance(T0 + 3000)
    assert [t for _, t in d.take(T0 + 3000)] == [later]


def test_breaker_opens_holds_then_probes_once() -> None:
    d = Dispatcher(T0, 100, 1)
    ep = endpoint(d, circuit_threshold=3, circuit_reset_ms=5000)
    tasks = [task(ep) for _ in range(10)]
    for t in tasks:
        d.add(ep, t, T0)
    changed = []
    for _ in range(3):
        [(target, t)] = d.take(T0)
        changed.append(d.finish(target, t, "retry", True, T0, retry_at_ms=T0 + 60_000, keep=True))
    assert changed == [False, False, True] and ep.breaker is not None and ep.breaker.state.value == "open"
    sent_while_open = [x for _ in range(10) for x in d.take(T0 + 100)]
    assert sent_while_open == [], "open: nothing is sent"
    d.advance(T0 + 5000)
    probes = [x for _ in range(10) for x in d.take(T0 + 5000)]
    assert len(probes) == 1, "half-open: exactly one probe"
    target, probe = probes[0]
    assert d.finish(target, probe, "delivered", True, T0 + 5001) is True
    assert ep.breaker.state.value == "closed"
    assert len([x for _ in range(10) for x in d.take(T0 + 5002)]) >= 1


def test_fifo_orders_per_key_and_failing_head_blocks_only_its_key() -> None:
    d = Dispatcher(T0, 100, 100)
    ep = endpoint(d, fifo=True, fifo_partition_key="$.data.k")
    a = [task(ep, fifo_key="A") for _ in range(3)]
    b = [task(ep, fifo_key="B") for _ in range(3)]
    for t in reversed(a + b):   # arrival order must not matter
        d.add(ep, t, T0)
    first = {t.id for _, t in d.take(T0)}
    assert first == {a[0].id, b[0].id}, "one in flight per key, heads first"
    d.finish(ep, a[0], "retry", True, T0, retry_at_ms=T0 + 10_000, keep=True)
    d.finish(ep, b[0], "delivered", True, T0)
    nxt = [t for _, t in d.take(T0 + 1)]
    assert nxt == [b[1]], "A is blocked by its failing head; B carries on"
    d.finish(ep, b[1], "delivered", True, T0 + 2)
    assert [t for _, t in d.take(T0 + 3)] == [b[2]]
    d.advance(T0 + 10_000)
    assert [t for _, t in d.take(T0 + 10_000)] == [a[0]], "the head itself is retried first"
    d.finish(ep, a[0], "delivered", True, T0 + 10_001)
    assert [t for _, t in d.take(T0 + 10_002)] == [a[1]]


def test_paused_endpoint_sends_nothing_and_gives_work_back() -> None:
    d = Dispatcher(T0, 100, 100)
    ep = endpoint(d)
    held = [task(ep) for _ in range(4)]
    for t in held:
        d.add(ep, t, T0)
    d.configure(ep, cfg(id=ep.endpoint_id, active=False), T0)
    assert d.take(T0) == []
    assert {t.id for t in d.drop_idle(ep)} == {t.id for t in held}
    assert d.buffered == 0


@settings(max_examples=60, deadline=None)
@given(rate=st.integers(1, 50), steps=st.lists(st.integers(0, 250), min_size=20, max_size=120))
def test_bucket_never_exceeds_rate_in_any_window(rate: int, steps: list[int]) -> None:
    d = Dispatcher(T0, 10_000, 10_000)
    ep = endpoint(d, rate_limit_per_sec=rate)
    for _ in range(2000):
        d.add(ep, task(ep), T0)
    now = T0
    sent_at: list[int] = []
    for step in steps:
        now += step
        d.advance(now)
        for target, t in d.take(now):
            sent_at.append(now)
            d.finish(target, t, "delivered", True, now)
    burst = max(1, -(-rate // 10))
    for i, start in enumerate(sent_at):
        in_window = sum(1 for x in sent_at[i:] if x < start + 1000)
        assert in_window <= rate + burst, (rate, in_window)


def test_reclaimed_task_is_refreshed_not_duplicated() -> None:
    d = Dispatcher(T0, 100, 100)
    ep = endpoint(d)
    t = task(ep)
    d.add(ep, t, T0)
    [(target, sent)] = d.take(T0)
    d.finish(target, sent, "retry", True, T0, retry_at_ms=T0 + 60_000, keep=True)
    assert d.buffered == 1
    # replayed with new content: the same task id comes back from a claim, due now
    again = Task(**{**{f: getattr(t, f) for f in t.__slots__}, "payload": b'{"v":2}', "attempts": 0,  # type: ignore[attr-defined]
                    "due_ms": T0 + 1, "timer": None, "in_flight": False})
    d.add(ep, again, T0 + 1)
    assert d.buffered == 1
    [(_, out)] = d.take(T0 + 1)
    assert out is t and out.payload == b'{"v":2}' and out.attempts == 0
    d.finish(ep, out, "delivered", True, T0 + 2)
    d.advance(T0 + 60_000)
    assert d.take(T0 + 60_000) == [], "the old retry timer was cancelled"
    assert d.buffered == 0


def direct(d: Dispatcher, origin: str) -> Target:
    t = d.target(origin, None)
    d.configure(t, None, T0)
    return t


def moved(t: Task, target: Target, **over: Any) -> Task:
    """The same task as a new claim returns it after its event's destination was edited."""
    fields = {f: getattr(t, f) for f in t.__slots__}  # type: ignore[attr-defined]
    return Task(**{**fields, "target": target.key, "timer": None, "in_flight": False, "superseded": False, **over})


def test_task_claimed_again_for_another_origin_leaves_the_old_one() -> None:
    d = Dispatcher(T0, 100, 100)
    old, new = direct(d, "https://old.example:443"), direct(d, "https://new.example:443")
    t = task(old, due=T0 + 1_000)          # a retry waiting in the wheel
    d.add(old, t, T0)
    d.add(new, moved(t, new, destination="https://new.example/hook"), T0)
    assert d.buffered == 1 and t.id not in old.held
    d.advance(T0 + 1_000)
    sent = d.take(T0 + 1_000)
    assert [(target.key, task.destination) for target, task in sent] == [(new.key, "https://new.example/hook")]


def test_withdrawn_ready_task_is_never_taken() -> None:
    d = Dispatcher(T0, 100, 100)
    old = direct(d, "https://old.example:443")
    keep, gone = task(old), task(old)
    d.add(old, gone, T0)
    d.add(old, keep, T0)
    assert d.withdraw(old.key, gone.id) and not d.withdraw(old.key, gone.id)
    assert [t for _, t in d.take(T0)] == [keep]
    d.finish(old, keep, "delivered", True, T0)
    assert d.buffered == 0 and d.take(T0) == [] and d.holder == {}


def test_copy_withdrawn_in_flight_is_forgotten_not_retried() -> None:
    d = Dispatcher(T0, 100, 100)
    old, new = direct(d, "https://old.example:443"), direct(d, "https://new.example:443")
    t = task(old)
    d.add(old, t, T0)
    [(_, flying)] = d.take(T0)
    d.add(new, moved(t, new, due_ms=T0 + 5_000), T0)
    d.finish(old, flying, "retry", True, T0 + 10, retry_at_ms=T0 + 1_000, keep=True)
    assert d.buffered == 1 and d.in_flight == 0
    d.advance(T0 + 1_000)
    assert d.take(T0 + 1_000) == [], "the old copy's retry was not kept"
    d.advance(T0 + 5_000)
    assert [target.key for target, _ in d.take(T0 + 5_000)] == [new.key]


def test_fifo_targets_never_withdraw() -> None:
    d = Dispatcher(T0, 100, 100)
    ep = endpoint(d, fifo=True)
    t = task(ep, fifo_key="k")
    d.add(ep, t, T0)
    assert not d.withdraw(ep.key, t.id) and d.buffered == 1


def test_a_copy_claimed_again_while_in_flight_is_kept_for_after_the_attempt() -> None:
    d = Dispatcher(T0, 100, 10)
    ep = endpoint(d)
    old = task(ep)
    old.attempts = 2
    d.add(ep, old, T0)
    [(_, sent)] = d.take(T0)
    replayed = task(ep)
    replayed.id, replayed.attempts, replayed.payload, replayed.due_ms = old.id, 0, b'{"new":1}', T0
    d.add(ep, replayed, T0)
    assert sent.newer is replayed and sent.payload == b"{}", "the attempt on the wire finishes with what it sent"
    sent.attempts = 0                    # the retry policy settles the counter (a replay: reset wins)
    d.finish(ep, sent, "retry", True, T0, T0, keep=True)
    assert sent.newer is None and sent.payload == b'{"new":1}'
    [(_, again)] = d.take(T0)
    assert again is sent and again.attempts == 0 and d.buffered == 1


def test_targets_at_their_cap_are_named_for_the_claim() -> None:
    d = Dispatcher(T0, 512, 64)
    throttled = endpoint(d, rate_limit_per_sec=1)
    fresh = endpoint(d)
    for _ in range(3):
        d.add(throttled, task(throttled), T0)
    d.add(fresh, task(fresh), T0)
    plan = d.claim_plan(20_000, 500, T0)
    assert plan.skip_endpoints == [throttled.endpoint_id] and plan.bounded == [], "1/s may hold two seconds' worth"


def test_a_hanging_target_shows_before_its_first_answer() -> None:
    d = Dispatcher(T0, 512, 4)
    hanging = endpoint(d)
    for _ in range(100):
        d.add(hanging, task(hanging), T0)
    assert len(d.take(T0)) == 4
    assert d.claim_plan(20_000, 500, T0 + 50).skip_endpoints == [], "no answer yet, not long enough to tell"
    plan = d.claim_plan(20_000, 500, T0 + 30_000)
    assert plan.skip_endpoints == [hanging.endpoint_id], "30 s without an answer: bounded by its concurrency"
    assert plan.bounded == [] and len(hanging.held) == 4, "it keeps its 4 in flight, gives the rest back"
    assert len(plan.shed) == 96


def test_in_flight_slots_are_shared_when_they_run_short() -> None:
    d = Dispatcher(T0, max_in_flight=8, max_per_target=8)
    hogs = [endpoint(d) for _ in range(2)]
    for h in hogs:
        for _ in range(20):
            d.add(h, task(h), T0)
    first = d.take(T0)
    assert len(first) == 8
    late = endpoint(d)
    d.add(late, task(late), T0)
    _, done = first[0]
    d.finish(first[0][0], done, "delivered", True, T0 + 1)
    nxt = d.take(T0 + 1)
    assert [t for t, _ in nxt] == [late], "a freed slot goes to the target with nothing in flight"


def test_deferred_task_comes_back_without_an_attempt() -> None:
    d = Dispatcher(T0, 10, 10)
    ep = endpoint(d)
    t = task(ep)
    d.add(ep, t, T0)
    [(_, taken)] = d.take(T0)
    d.defer(ep, taken, T0 + 200)
    assert d.in_flight == 0 and ep.in_flight == 0 and not taken.in_flight and taken.attempts == 0
    assert d.take(T0 + 100) == []
    d.advance(T0 + 200)
    assert [x for _, x in d.take(T0 + 200)] == [t]


def test_claim_plan_bounds_slow_targets_and_sheds_what_they_over_claimed() -> None:
    d = Dispatcher(T0, 512, 64)
    throttled = endpoint(d, rate_limit_per_sec=1)
    fast = endpoint(d)
    over = [task(throttled, priority=p) for p in (9, 1, 5, 5, 9, 3)]
    for t in over:
        d.add(throttled, t, T0)
    d.add(fast, task(fast), T0)
    plan = d.claim_plan(20_000, 500, T0)
    kept = set(throttled.held)
    assert len(kept) == 2 and kept == {over[1].id, over[5].id}, "the most urgent stay"
    assert set(plan.shed) == {t.id for t in over} - kept and d.buffered == 3
    assert plan.skip_endpoints == [throttled.endpoint_id], "claimed only on its own, for its room"
    assert plan.bounded == [], "no room left"
    sent = d.take(T0)
    assert over[1].id in {t.id for _, t in sent}
    d.finish(throttled, over[1], "delivered", True, T0)
    assert d.claim_plan(20_000, 500, T0).bounded == [(throttled.endpoint_id, 1)]
    d.configure(throttled, cfg(id=throttled.endpoint_id, active=False), T0)
    assert d.claim_plan(20_000, 500, T0).bounded == [], "a paused endpoint claims nothing"


def test_forget_drops_an_idle_copy_and_an_in_flight_one_after_its_attempt() -> None:
    d = Dispatcher(T0, 10, 10)
    ep = endpoint(d)
    idle, flying = task(ep, due=T0 + 5000), task(ep)
    d.add(ep, idle, T0)
    d.add(ep, flying, T0)
    [(_, sent)] = d.take(T0)
    d.forget(idle.id)
    d.forget(flying.id)
    assert idle.id not in ep.held and idle.timer is None
    d.finish(ep, sent, "retry", True, T0, T0 + 10, keep=True)
    assert d.buffered == 0 and not ep.held, "not kept for a retry whose count ran ahead of Postgres"
