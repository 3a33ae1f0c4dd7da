"""Circuit breaker: opening, single half-open probe, restoring persisted state."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.policy.breaker import BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def test_state_values_are_text() -> None:
    assert [s.value for s in BreakerState] == ["closed", "open", "half_open"]
    assert BreakerState("half_open") is HALF_OPEN
    assert OPEN == "open" and isinstance(OPEN, str)


def test_full_cycle() -> None:
    b = CircuitBreaker(threshold=3, reset_ms=1_000)
    assert b.allow(0)
    assert not b.record_failure(0)
    assert not b.record_failure(10)
    assert b.failures == 2 and b.state is CLOSED
    assert b.record_failure(20)  # third consecutive failure opens
    assert b.state is OPEN and b.opened_at_ms == 20
    assert b.retry_at_ms() == 1_020
    assert not b.allow(1_019)
    assert b.state_at(1_019) is OPEN
    assert b.state_at(1_020) is HALF_OPEN
    assert b.state is OPEN  # state_at has no side effect
    assert b.allow(1_020)  # the one probe
    assert b.state is HALF_OPEN
    assert not b.allow(1_021)
    assert not b.allow(5_000)
    assert b.record_failure(1_500)  # failed probe re-opens from now
    assert b.state is OPEN and b.opened_at_ms == 1_500
    assert not b.allow(2_499)
    assert b.allow(2_500)
    assert b.record_success(2_600)
    assert b.state is CLOSED and b.failures == 0 and b.opened_at_ms is None
    assert b.retry_at_ms() is None


def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker(threshold=2, reset_ms=100)
    b.record_failure(0)
    assert not b.record_success(1)
    assert b.failures == 0
    assert not b.record_failure(2)
    assert b.state is CLOSED


def test_disabled_never_opens() -> None:
    b = CircuitBreaker(threshold=0, reset_ms=100)
    for t in range(100):
        assert not b.record_failure(t)
        assert b.allow(t)
    assert b.state is CLOSED and b.state_at(10**9) is CLOSED
    restored = CircuitBreaker(threshold=0, reset_ms=100, state=OPEN, opened_at_ms=5)
    assert restored.allow(6) and restored.state is CLOSED


def test_late_failure_while_open_does_not_extend() -> None:
    b = CircuitBreaker(threshold=1, reset_ms=100)
    assert b.record_failure(0)
    assert not b.record_failure(50)
    assert b.opened_at_ms == 0 and b.retry_at_ms() == 100


def test_restore_persisted_state() -> None:
    b = CircuitBreaker(threshold=5, reset_ms=1_000, state=OPEN, opened_at_ms=10_000, failures=7)
    assert b.failures == 7 and b.retry_at_ms() == 11_000
    assert not b.allow(10_500)
    assert b.allow(11_000)
    half = CircuitBreaker(threshold=5, reset_ms=1_000, state=HALF_OPEN, opened_at_ms=0)
    assert half.allow(1) and not half.allow(2)  # one fresh probe after a restart
    no_time = CircuitBreaker(threshold=5, reset_ms=1_000, state=OPEN)
    assert no_time.allow(0) and not no_time.allow(0)


def test_rejects_negative_config() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=-1, reset_ms=10)
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=1, reset_ms=-10)


class BreakerMachine(RuleBasedStateMachine):
    """Drive a breaker with random calls and compare to a direct model of the rules."""

    @initialize(threshold=st.integers(0, 4), reset_ms=st.integers(0, 50))
    def setup(self, threshold: int, reset_ms: int) -> None:
        self.breaker = CircuitBreaker(threshold, reset_ms)
        self.threshold, self.reset_ms = threshold, reset_ms
        self.now = 0
        self.state = CLOSED
        self.failures = 0
        self.opened_at: int | None = None
        self.probe_out = False

    @rule(dt=st.integers(0, 40))
    def tick(self, dt: int) -> None:
        self.now += dt

    @rule()
    def allow(self) -> None:
        allowed = self.breaker.allow(self.now)
        if self.state is CLOSED:
            expected = True
        elif self.state is OPEN and self.now < (self.opened_at or 0) + self.reset_ms:
            expected = False
        else:
            self.state = HALF_OPEN
            expected = not self.probe_out
            self.probe_out = True
        assert allowed == expected

    @rule()
    def success(self) -> None:
        changed = self.breaker.record_success(self.now)
        assert changed == (self.state is not CLOSED)
        self.state, self.failures, self.opened_at, self.probe_out = CLOSED, 0, None, False

    @rule()
    def failure(self) -> None:
        changed = self.breaker.record_failure(self.now)
        self.failures += 1
        opens = self.threshold > 0 and (
            self.state is HALF_OPEN or (self.state is CLOSED and self.failures >= self.threshold)
        )
        assert changed == opens
        if opens:
            self.state, self.opened_at, self.probe_out = OPEN, self.now, False

    @precondition(lambda self: hasattr(self, "breaker"))
    @invariant()
    def agrees(self) -> None:
        b = self.breaker
        assert b.state is self.state
        assert b.failures == self.failures
        assert b.opened_at_ms == self.opened_at
        if self.state is OPEN:
            assert b.retry_at_ms() == (self.opened_at or 0) + self.reset_ms
            assert b.state_at(self.now) is (HALF_OPEN if self.now >= b.retry_at_ms() else OPEN)
        else:
            assert b.retry_at_ms() is None
            assert b.state_at(self.now) is self.state
        if self.threshold == 0:
            assert self.state is CLOSED


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
