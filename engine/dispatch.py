"""A shard's in-memory scheduler, free of I/O: which task goes out next, and when.

Per target (an endpoint, or a direct destination's origin) it keeps ready queues by priority, a
token bucket, a circuit breaker, an in-flight count and, for FIFO endpoints, a FIFO gate. Targets
take turns round-robin so one hot or throttled endpoint cannot starve the rest. Delays, retries
and target wake-ups (bucket refill, breaker half-open, FIFO head retry) sit in one timer wheel.
The shard feeds it claimed tasks and outcomes and sends what `take` hands out.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from control.policy.token_bucket import TokenBucket
from engine.model import EndpointConfig, Task
from engine.policy.admission import hold_cap, in_flight_limit, updated_latency
from engine.policy.breaker import BreakerState, CircuitBreaker
from engine.policy.fifo import FifoGate
from engine.policy.spread import SPREAD_HOLD_MS, SharedRate, is_hot
from engine.policy.timer_wheel import TimerWheel

Finish = Literal["delivered", "retry", "final"]


@dataclass(frozen=True, slots=True)
class Wake:
    """Timer item: the target may be able to send again (bucket refilled, breaker half-open)."""

    target: str


@dataclass(frozen=True, slots=True)
class FifoRelease:
    """Timer item: a FIFO key's head is due again (its retry time or its delay has come)."""

    target: str
    key: str


def bucket_for(rate: int, now_s: float) -> TokenBucket | None:
    """Burst of a tenth of a second's worth: smooth pacing, yet no lost tokens between wheel ticks."""
    if rate <= 0:
        return None
    return TokenBucket(rate, max(1.0, math.ceil(rate / 10)), now_s)


@dataclass
class Target:
    key: str
    endpoint_id: uuid.UUID | None
    cfg: EndpointConfig | None = None
    ready: list[tuple[int, int, Task]] = field(default_factory=list)     # heap by (priority, seq)
    held: dict[uuid.UUID, Task] = field(default_factory=dict)            # everything in memory
    in_flight: int = 0
    in_rotation: bool = False
    wake_at: int = 0                                                     # a Wake is scheduled for then
    bucket: TokenBucket | None = None
    breaker: CircuitBreaker | None = None
    gate: FifoGate[Task] | None = None
    throttled: int = 0                                                   # times the bucket said wait
    flying: dict[uuid.UUID, int] = field(default_factory=dict)          # in flight: task id -> sent at (ms)
    latency_ms: float | None = None                                      # moving average of answers
    home: int = -1                                                       # partition_for(key); -1: not known
    spread_until: int = 0                                                # spread (engine/policy/spread.py) until
    shared: SharedRate | None = None                                     # leased rate while spread
    throttle_seen: int = 0                                               # `throttled` at the last hot look

    @property
    def blocked(self) -> bool:
        """Paused or deleted endpoints send nothing; their work goes back to Postgres."""
        return self.endpoint_id is not None and (self.cfg is None or not self.cfg.active or self.cfg.deleted)

    def expected_latency_ms(self, now_ms: int) -> float | None:
        """The moving average of answers, or longer when a request has waited longer than that:
        a receiver that hangs shows it before its first timeout comes back."""
        waited = now_ms - min(self.flying.values()) if self.flying else 0
        if self.latency_ms is None:
            return float(waited) if waited >= 100 else None
        return max(self.latency_ms, float(waited))


@dataclass
class ClaimPlan:
    skip_endpoints: list[uuid.UUID] = field(default_factory=list)    # left out of the general claim
    skip_partitions: set[int] = field(default_factory=set)           # direct destinations at their cap
    bounded: list[tuple[uuid.UUID, int]] = field(default_factory=list)   # claimed alone: (endpoint, room)
    shed: list[uuid.UUID] = field(default_factory=list)              # to give back to Postgres


def _adopt_content(task: Task, newer: Task) -> None:
    """Take a newer claim's content (its event was replayed or edited). Its attempt counter and
    schedule are the retry policy's to settle when an attempt was in flight meanwhile."""
    task.max_attempts, task.priority = newer.max_attempts, newer.priority
    task.payload, task.headers, task.destination = newer.payload, newer.headers, newer.destination


class Dispatcher:
    def __init__(self, now_ms: int, max_in_flight: int, max_per_target: int) -> None:
        self.max_in_flight = max_in_flight
        self.max_per_target = max_per_target
        self.targets: dict[str, Target] = {}
        self.rotation: deque[str] = deque()
        self.wheel: TimerWheel[Task | Wake | FifoRelease] = TimerWheel(now_ms)
        self.holder: dict[uuid.UUID, Target] = {}     # task id -> the target holding its current copy
        self.buffered = 0
        self.in_flight = 0
        self.starved: list[str] = []                 # targets refused a slot only by the fair share
        self.token_requests: list[Target] = []        # spread targets whose leased tokens ran out

    # -- configuration ------------------------------------------------------------------------------
    def configure(self, target: Target, cfg: EndpointConfig | None, now_ms: int) -> None:
        """Apply (new) endpoint settings; keeps live breaker and bucket state across edits."""
        target.cfg = cfg
        if cfg is None:
            return
        now_s = now_ms / 1000
        if target.shared is not None:
            if cfg.rate_limit_per_sec <= 0:
                target.shared = None
            else:
                target.shared.lease.set_limit(cfg.rate_limit_per_sec, now_s)
        if cfg.rate_limit_per_sec <= 0:
            target.bucket = None
        elif target.bucket is None:
            target.bucket = bucket_for(cfg.rate_limit_per_sec, now_s)
        elif target.bucket.rate != cfg.rate_limit_per_sec:
            target.bucket.set_rate(cfg.rate_limit_per_sec, max(1.0, math.ceil(cfg.rate_limit_per_sec / 10)), now_s)
        if cfg.circuit_threshold <= 0:
            target.breaker = None
        elif target.breaker is None or target.breaker.threshold != cfg.circuit_threshold \
                or target.breaker.reset_ms != cfg.circuit_reset_ms:
            state = BreakerState(cfg.circuit_state) if target.breaker is None else target.breaker.state
            opened = cfg.circuit_opened_at_ms if target.breaker is None else target.breaker.opened_at_ms
            target.breaker = CircuitBreaker(cfg.circuit_threshold, cfg.circuit_reset_ms, state, opened)
        if cfg.fifo and target.gate is None:
            target.gate = FifoGate()
        self._rotate(target)

    def target(self, key: str, endpoint_id: uuid.UUID | None) -> Target:
        found = self.targets.get(key)
        if found is None:
            found = self.targets[key] = Target(key, endpoint_id)
        return found

    # -- intake ---------------------------------------------------------------------------------------
    def add(self, target: Target, task: Task, now_ms: int) -> None:
        holder = self.holder.get(task.id)
        if holder is target:
            self._refresh(target, target.held[task.id], task, now_ms)
            return
        if holder is not None:
            # Claimed again for another target: a direct event's destination was edited to another
            # origin. The copy bound for the old one must not be sent as well.
            self.withdraw(holder.key, task.id)
        target.held[task.id] = task
        self.holder[task.id] = target
        self.buffered += 1
        if target.gate is not None:
            target.gate.push(task.fifo_key, task.seq, task)
            self._rotate(target)
        elif task.due_ms <= now_ms:
            self._make_ready(target, task)
        else:
            task.timer = self.wheel.schedule(task.due_ms, task)

    def _refresh(self, target: Target, old: Task, new: Task, now_ms: int) -> None:
        """A task we already hold was claimed again (replayed or edited meanwhile): keep one copy,
        with the new content and schedule. An attempt in flight finishes with what it sent."""
        if old.in_flight:
            old.newer = new        # applied when the attempt finishes (see finish)
            return
        _adopt_content(old, new)
        old.attempts, old.due_ms = new.attempts, new.due_ms
        if target.gate is not None or old.timer is None:
            return          # already ready (or a FIFO head the gate and its release timer govern)
        self.wheel.cancel(old.timer)
        old.timer = None
        if old.due_ms <= now_ms:
            self._make_ready(target, old)
        else:
            old.timer = self.wheel.schedule(old.due_ms, old)

    def _make_ready(self, target: Target, task: Task) -> None:
        task.timer = None
        heapq.heappush(target.ready, (task.priority, task.seq, task))
        self._rotate(target)

    def _rotate(self, target: Target) -> None:
        if not target.in_rotation:
            target.in_rotation = True
            self.rotation.append(target.key)

    def advance(self, now_ms: int) -> None:
        for item in self.wheel.advance(now_ms):
            if isinstance(item, Task):
                target = self.targets.get(item.target)
                if target is not None and target.held.get(item.id) is item:
                    self._make_ready(target, item)
            elif isinstance(item, Wake):
                target = self.targets.get(item.target)
                if target is not None:
                    target.wake_at = 0
                    self._rotate(target)
            else:
                target = self.targets.get(item.target)
                if target is not None and target.gate is not None:
                    target.gate.release(item.key)
                    self._rotate(target)

    def next_due_ms(self) -> int | None:
        return self.wheel.next_due_ms()

    # -- dispatch --------------------------------------------------------------------------------------
    def _wake_later(self, target: Target, at_ms: int) -> None:
        if target.wake_at == 0 or at_ms < target.wake_at:
            target.wake_at = at_ms
            self.wheel.schedule(at_ms, Wake(target.key))

    def _fill_from_gate(self, target: Target, now_ms: int) -> None:
        assert target.gate is not None
        for task in target.gate.pop_ready():
            if task.due_ms > now_ms:   # a delayed head holds its key until it is due
                target.gate.done(task.fifo_key, success=False)
                self.wheel.schedule(task.due_ms, FifoRelease(target.key, task.fifo_key))
            else:
                heapq.heappush(target.ready, (0, task.seq, task))

    def take(self, now_ms: int) -> list[tuple[Target, Task]]:
        """Tasks to send now, round-robin across targets, within every limit; marks them in flight."""
        out: list[tuple[Target, Task]] = []
        rotation = self.rotation
        while rotation and self.in_flight < self.max_in_flight:
            target = self.targets[rotation.popleft()]
            target.in_rotation = False
            if target.blocked:
                continue
            if target.gate is not None:
                self._fill_from_gate(target, now_ms)
            self._prune_ready(target)
            if not target.ready:
                continue
            limit = in_flight_limit(own_limit=self.max_per_target, shard_in_flight=self.in_flight,
                                    shard_limit=self.max_in_flight, active_targets=len(rotation) + 1)
            if target.in_flight >= limit:
                if target.in_flight < self.max_per_target:
                    self.starved.append(target.key)    # retried when a slot frees up
                continue
            bucket, shared = target.bucket, target.shared
            wait = shared.wait(now_ms / 1000) if shared is not None else \
                bucket.wait_time(now_ms / 1000) if bucket is not None else 0.0
            if wait > 0:
                if shared is None or not (shared.wanted or shared.fetching):
                    target.throttled += 1    # the rate said wait (not: tokens are being fetched)
                elif shared.wanted:
                    shared.wanted, shared.fetching = False, True
                    self.token_requests.append(target)
                self._wake_later(target, now_ms + max(1, math.ceil(wait * 1000)))
                continue
            breaker = target.breaker
            if breaker is not None and not breaker.allow(now_ms):
                retry = breaker.retry_at_ms()
                if retry is not None:
                    self._wake_later(target, retry)
                continue   # open (or probing): nothing is sent and nothing counts against events
            if shared is not None:
                shared.take(now_ms / 1000)
            elif bucket is not None:
                bucket.try_take(now_ms / 1000)
            _, _, task = heapq.heappop(target.ready)
            task.in_flight = True
            target.flying[task.id] = now_ms
            target.in_flight += 1
            self.in_flight += 1
            out.append((target, task))
            if target.ready and not (breaker is not None and breaker.state is BreakerState.HALF_OPEN):
                self._rotate(target)
        return out

    @staticmethod
    def _prune_ready(target: Target) -> None:
        """Pop heap entries of withdrawn tasks off the top, so the head is a task still held."""
        ready, held = target.ready, target.held
        while ready and held.get(ready[0][2].id) is not ready[0][2]:
            heapq.heappop(ready)

    # -- outcomes --------------------------------------------------------------------------------------
    def finish(self, target: Target, task: Task, how: Finish, counts_for_breaker: bool, now_ms: int,
               retry_at_ms: int | None = None, keep: bool = False, latency_ms: float | None = None) -> bool:
        """Account for a finished attempt. Returns True when the breaker changed state (persist it).
        A newer copy claimed while the attempt was in flight replaces the task's content now, so the
        next try sends what the event says today."""
        task.in_flight = False
        target.flying.pop(task.id, None)
        target.in_flight -= 1
        self.in_flight -= 1
        if latency_ms is not None:
            target.latency_ms = updated_latency(target.latency_ms, latency_ms)
        newer, task.newer = task.newer, None
        if newer is not None and how == "retry":
            _adopt_content(task, newer)
        changed = False
        if target.breaker is not None and counts_for_breaker:
            if how == "delivered":
                changed = target.breaker.record_success(now_ms)
            else:
                changed = target.breaker.record_failure(now_ms)
        if target.gate is not None:
            if how == "retry":
                target.gate.done(task.fifo_key, success=False)
                assert retry_at_ms is not None
                task.due_ms = retry_at_ms
                self.wheel.schedule(retry_at_ms, FifoRelease(target.key, task.fifo_key))
            else:
                target.gate.done(task.fifo_key, success=True)
                self._forget(target, task)
        elif how == "retry" and keep and not task.superseded:
            assert retry_at_ms is not None
            task.due_ms = retry_at_ms
            if retry_at_ms <= now_ms:
                self._make_ready(target, task)
            else:
                task.timer = self.wheel.schedule(retry_at_ms, task)
        else:
            self._forget(target, task)
        self._rotate(target)
        while self.starved:
            waiting = self.targets.get(self.starved.pop())
            if waiting is not None:
                self._rotate(waiting)
        return changed

    def defer(self, target: Target, task: Task, due_ms: int) -> None:
        """Put a task that was taken but not sent (its tenant's transformation budget is spent)
        back, due again at `due_ms`; no attempt was made, so nothing else changes."""
        task.in_flight = False
        target.flying.pop(task.id, None)
        target.in_flight -= 1
        self.in_flight -= 1
        if target.gate is not None:
            target.gate.done(task.fifo_key, success=False)
            self.wheel.schedule(due_ms, FifoRelease(target.key, task.fifo_key))
        else:
            task.timer = self.wheel.schedule(due_ms, task)
        self._rotate(target)

    # -- hot targets (engine/policy/spread.py) -------------------------------------------------------------
    def share(self, target: Target, now_ms: int) -> None:
        """The target is spread over several shards now (this one spread it, or claimed some of it
        from a helper partition): while it is, its rate limit is spent from leased tokens."""
        target.spread_until = now_ms + SPREAD_HOLD_MS
        cfg = target.cfg
        if target.shared is None and cfg is not None and cfg.rate_limit_per_sec > 0 and target.endpoint_id:
            target.shared = SharedRate(cfg.rate_limit_per_sec)

    def hot(self, max_buffered: int, now_ms: int) -> list[tuple[Target, int]]:
        """Targets worth spreading, with their cap (see `is_hot`); ends the spread of cooled ones."""
        out: list[tuple[Target, int]] = []
        for target in self.targets.values():
            if target.shared is not None and now_ms >= target.spread_until and not target.shared.fetching:
                target.shared = None          # cooled down: back to this shard's own bucket
            throttled, target.throttle_seen = target.throttled != target.throttle_seen, target.throttled
            now_s = now_ms / 1000     # held back by its rate: throttled since the last look, or no token now
            if target.shared is not None:
                throttled = throttled or target.shared.lease.refuses(now_s)
            elif target.bucket is not None:
                throttled = throttled or target.bucket.wait_time(now_s) > 0
            cap = self.hold_cap(target, max_buffered, now_ms)
            breaker = target.breaker
            if is_hot(fifo=target.gate is not None, blocked=target.blocked,
                      breaker_closed=breaker is None or breaker.state is BreakerState.CLOSED,
                      held=len(target.held), cap=cap, throttled=throttled):
                out.append((target, cap))
        return out

    def spread(self, now_ms: int) -> list[Target]:
        """Targets spread over several shards now (their breaker state is shared through Postgres)."""
        return [t for t in self.targets.values() if t.spread_until > now_ms]

    def wake(self, target: Target) -> None:
        self._rotate(target)

    # -- fairness --------------------------------------------------------------------------------------
    def hold_cap(self, target: Target, max_buffered: int, now_ms: int) -> int:
        cfg = target.cfg
        breaker = target.breaker
        return hold_cap(max_buffered=max_buffered, max_in_flight=self.max_per_target,
                        rate_per_s=cfg.rate_limit_per_sec if cfg is not None else 0,
                        breaker_open=breaker is not None and breaker.state is not BreakerState.CLOSED,
                        latency_ms=target.expected_latency_ms(now_ms))

    def claim_plan(self, max_buffered: int, batch: int, now_ms: int) -> ClaimPlan:
        """What the next claim may bring in. A target that can take only a little (below a claim
        batch: rate-limited, breaker open, slow) is claimed on its own, for at most its room; one
        at its cap is skipped; a target holding far more than its cap (it claimed before its cap
        was known, or its breaker opened) gives its least urgent tasks back."""
        plan = ClaimPlan()
        for target in self.targets.values():
            cap = self.hold_cap(target, max_buffered, now_ms)
            held = len(target.held)
            if held > 2 * cap:
                plan.shed.extend(t.id for t in self.shed(target, cap))
                held = len(target.held)
            if target.endpoint_id is None:
                if held >= cap:
                    plan.skip_partitions.update(t.partition for t in target.held.values())
                continue
            if target.gate is None and cap < batch:
                plan.skip_endpoints.append(target.endpoint_id)
                if held < cap and not target.blocked:
                    plan.bounded.append((target.endpoint_id, cap - held))
            elif held >= cap:
                plan.skip_endpoints.append(target.endpoint_id)
        return plan

    def shed(self, target: Target, keep: int) -> list[Task]:
        """Drop idle tasks beyond `keep` from memory, the least urgent first, for the caller to give
        back to Postgres (a target claimed more than it can send soon, or its breaker opened). FIFO
        targets keep theirs: a gate must see each key's tasks in order."""
        excess = len(target.held) - keep
        if excess <= 0 or target.gate is not None:
            return []
        idle = sorted((t for t in target.held.values() if not t.in_flight),
                      key=lambda t: (t.priority, t.due_ms, t.seq))
        out = idle[max(0, len(idle) - excess):]
        for task in out:
            if task.timer is not None:
                self.wheel.cancel(task.timer)
                task.timer = None
            self._forget(target, task)      # a ready-heap entry left behind is pruned by take()
        return out

    def _forget(self, target: Target, task: Task) -> None:
        if target.held.get(task.id) is task:
            del target.held[task.id]
            self.buffered -= 1
            if self.holder.get(task.id) is target:
                del self.holder[task.id]

    def withdraw(self, target_key: str, task_id: uuid.UUID) -> bool:
        """Drop the copy of a task held for `target_key` (its event was edited to another
        destination); True when one was dropped. A copy in flight finishes what it sent and is then
        forgotten instead of kept for a retry. FIFO targets never lose a task this way: only direct
        destinations move, and they have no gate."""
        target = self.targets.get(target_key)
        task = target.held.get(task_id) if target is not None else None
        if target is None or task is None or target.gate is not None:
            return False
        if task.timer is not None:
            self.wheel.cancel(task.timer)
            task.timer = None
        task.superseded = task.in_flight
        self._forget(target, task)    # a ready-heap entry left behind is pruned by take()
        return True

    def forget(self, task_id: uuid.UUID) -> None:
        """Stop holding a task wherever it is held (its last outcome could not be recorded). One in
        flight is forgotten when its attempt ends; a FIFO head stays, to keep its key in order."""
        target = self.holder.get(task_id)
        if target is not None:
            self.withdraw(target.key, task_id)

    def drop_idle(self, target: Target) -> list[Task]:
        """Everything of a target not in flight, removed from memory (pause, delete, shutdown)."""
        idle = [t for t in target.held.values() if not t.in_flight]
        for t in idle:
            if t.timer is not None:
                self.wheel.cancel(t.timer)
                t.timer = None
            del target.held[t.id]
            if self.holder.get(t.id) is target:
                del self.holder[t.id]
        self.buffered -= len(idle)
        target.ready.clear()
        if target.gate is not None:
            target.gate = FifoGate()
            for t in target.held.values():   # in-flight heads stay tracked
                target.gate.push(t.fifo_key, t.seq, t)
            target.gate.pop_ready()
        return idle

    def all_idle(self) -> list[Task]:
        return [t for target in self.targets.values() for t in target.held.values() if not t.in_flight]
