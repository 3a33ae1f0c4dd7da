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
from engine.policy.breaker import BreakerState, CircuitBreaker
from engine.policy.fifo import FifoGate
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

    @property
    def blocked(self) -> bool:
        """Paused or deleted endpoints send nothing; their work goes back to Postgres."""
        return self.endpoint_id is not None and (self.cfg is None or not self.cfg.active or self.cfg.deleted)


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

    # -- configuration ------------------------------------------------------------------------------
    def configure(self, target: Target, cfg: EndpointConfig | None, now_ms: int) -> None:
        """Apply (new) endpoint settings; keeps live breaker and bucket state across edits."""
        target.cfg = cfg
        if cfg is None:
            return
        now_s = now_ms / 1000
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
            return
        old.attempts, old.max_attempts, old.priority = new.attempts, new.max_attempts, new.priority
        old.payload, old.headers, old.destination = new.payload, new.headers, new.destination
        old.due_ms = new.due_ms
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
            if not target.ready or target.in_flight >= self.max_per_target:
                continue
            bucket = target.bucket
            if bucket is not None:
                wait = bucket.wait_time(now_ms / 1000)
                if wait > 0:
                    target.throttled += 1
                    self._wake_later(target, now_ms + max(1, math.ceil(wait * 1000)))
                    continue
            breaker = target.breaker
            if breaker is not None and not breaker.allow(now_ms):
                retry = breaker.retry_at_ms()
                if retry is not None:
                    self._wake_later(target, retry)
                continue   # open (or probing): nothing is sent and nothing counts against events
            if bucket is not None:
                bucket.try_take(now_ms / 1000)
            _, _, task = heapq.heappop(target.ready)
            task.in_flight = True
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
               retry_at_ms: int | None = None, keep: bool = False) -> bool:
        """Account for a finished attempt. Returns True when the breaker changed state (persist it)."""
        task.in_flight = False
        target.in_flight -= 1
        self.in_flight -= 1
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
            task.timer = self.wheel.schedule(retry_at_ms, task)
        else:
            self._forget(target, task)
        self._rotate(target)
        return changed

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
