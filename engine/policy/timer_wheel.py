"""Hierarchical timing wheel: O(1) schedule/cancel for very many retry timers.

A heap costs O(log n) per timer and keeps every cancelled timer around; a wheel buckets
timers by due tick instead. Level ``L`` has ``slots`` buckets each spanning ``slots**L``
ticks; when the cursor enters a bucket's span its timers cascade to finer levels. Timers
beyond the top level's horizon wait in an overflow heap. Time is always passed in.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar, cast

T = TypeVar("T")

_READY = -1  # due at or before the current time: fires at the next advance
_OVERFLOW = -2  # beyond the top level's horizon
_DONE = -3  # fired or cancelled


class TimerHandle:
    """Opaque reference to one scheduled timer, used to cancel it in O(1)."""

    __slots__ = ("_due_ms", "_id", "_item", "_level", "_slot")

    def __init__(self, due_ms: int, ident: int, item: object) -> None:
        self._due_ms = due_ms
        self._id = ident
        self._item = item
        self._level = _DONE
        self._slot = 0

    @property
    def due_ms(self) -> int:
        """When the timer is due, in the wheel's millisecond clock."""
        return self._due_ms

    def __repr__(self) -> str:
        return f"TimerHandle(due_ms={self._due_ms}, pending={self._level != _DONE})"


class TimerWheel(Generic[T]):
    """Fires every item whose due time has been reached, exactly once and never early."""

    def __init__(self, now_ms: int, tick_ms: int = 10, slots: int = 256, levels: int = 4) -> None:
        if tick_ms < 1:
            raise ValueError("tick_ms must be >= 1")
        if slots < 2:
            raise ValueError("slots must be >= 2")
        if levels < 1:
            raise ValueError("levels must be >= 1")
        self._tick_ms = tick_ms
        self._slots = slots
        self._levels = levels
        self._spans: list[int] = [slots**level for level in range(levels + 1)]
        self._wheel: list[list[dict[int, TimerHandle]]] = [[{} for _ in range(slots)] for _ in range(levels)]
        self._bits = [0] * levels  # bit s set <=> slot s of that level is non-empty
        self._ready: dict[int, TimerHandle] = {}
        self._overflow: dict[int, TimerHandle] = {}
        self._overflow_heap: list[tuple[int, int]] = []  # (due_ms, id); cancelled ids linger
        self._now_ms = now_ms
        self._tick = now_ms // tick_ms  # ticks before this one are fully processed
        self._count = 0
        self._ids = itertools.count()

    def __len__(self) -> int:
        return self._count

    @property
    def now_ms(self) -> int:
        """The time of the latest advance (or construction)."""
        return self._now_ms

    def schedule(self, due_ms: int, item: T) -> TimerHandle:
        """Add a timer; one already due fires at the next advance."""
        handle = TimerHandle(due_ms, next(self._ids), item)
        if due_ms <= self._now_ms:
            handle._level = _READY
            self._ready[handle._id] = handle
        else:
            self._place(handle)
        self._count += 1
        return handle

    def cancel(self, handle: TimerHandle) -> bool:
        """Remove a pending timer; False if it already fired, was cancelled or is foreign."""
        level = handle._level
        if level >= 0:
            bucket = self._wheel[level][handle._slot]
            if bucket.get(handle._id) is not handle:
                return False
            del bucket[handle._id]
            if not bucket:
                self._bits[level] &= ~(1 << handle._slot)
        elif level == _READY:
            if self._ready.get(handle._id) is not handle:
                return False
            del self._ready[handle._id]
        elif level == _OVERFLOW:
            if self._overflow.get(handle._id) is not handle:
                return False
            del self._overflow[handle._id]
            self._compact_overflow()
        else:
            return False
        handle._level = _DONE
        handle._item = None
        self._count -= 1
        return True

    def advance(self, now_ms: int) -> list[T]:
        """Move the clock to ``now_ms`` and return every item due by then, in due order.

        Empty stretches are skipped by jumping straight to the next tick where a bucket
        fires or cascades, so a long jump over a sparse wheel is cheap. A clock that goes
        backwards does not move the wheel (only already-due items are returned).
        """
        fired = list(self._ready.values())
        self._ready.clear()
        if now_ms > self._now_ms:
            target = now_ms // self._tick_ms
            while self._tick < target:
                self._take_bucket(0, self._tick % self._slots, fired)
                self._tick = self._next_event_tick(target)
                self._enter_tick()
            self._fire_current(now_ms, fired)
            self._now_ms = now_ms
        fired.sort(key=lambda h: (h._due_ms, h._id))
        items: list[T] = []
        for handle in fired:
            items.append(cast(T, handle._item))
            handle._level = _DONE
            handle._item = None
        self._count -= len(fired)
        return items

    def next_due_ms(self) -> int | None:
        """Earliest pending due time, or a lower bound of it that is later than now.

        Timers in the current tick are exact; for later buckets the start of the bucket's
        span is returned, so waking then either fires or refines (never a busy loop).
        """
        if self._count == 0:
            return None
        if self._ready:
            return self._now_ms
        best: int | None = None
        current = self._wheel[0][self._tick % self._slots]
        if current:
            best = min(h._due_ms for h in current.values())
        for level in range(self._levels):
            start = self._next_bucket_start(level)
            if start is not None:
                bound = start * self._tick_ms
                if best is None or bound < best:
                    best = bound
        top = self._overflow_top()
        if top is not None and (best is None or top < best):
            best = top
        return None if best is None else max(best, self._now_ms)

    # -- internals ---------------------------------------------------------------------

    def _place(self, handle: TimerHandle) -> None:
        """Put a not-yet-due timer in the finest level whose horizon reaches it."""
        due_tick = handle._due_ms // self._tick_ms
        cursor = self._tick
        for level in range(self._levels):
            upper = self._spans[level + 1]
            if due_tick // upper == cursor // upper:
                slot = (due_tick // self._spans[level]) % self._slots
                self._wheel[level][slot][handle._id] = handle
                self._bits[level] |= 1 << slot
                handle._level = level
                handle._slot = slot
                return
        handle._level = _OVERFLOW
        self._overflow[handle._id] = handle
        heapq.heappush(self._overflow_heap, (handle._due_ms, handle._id))

    def _take_bucket(self, level: int, slot: int, out: list[TimerHandle]) -> None:
        bucket = self._wheel[level][slot]
        if bucket:
            out.extend(bucket.values())
            bucket.clear()
            self._bits[level] &= ~(1 << slot)

    def _fire_current(self, now_ms: int, out: list[TimerHandle]) -> None:
        """Fire the timers of the (partly elapsed) current tick that are due by ``now_ms``."""
        slot = self._tick % self._slots
        bucket = self._wheel[0][slot]
        if not bucket:
            return
        due = [h for h in bucket.values() if h._due_ms <= now_ms]
        if len(due) == len(bucket):
            self._take_bucket(0, slot, out)
            return
        for handle in due:
            del bucket[handle._id]
        out.extend(due)

    def _enter_tick(self) -> None:
        """Cascade everything whose span starts at the new cursor tick to finer levels."""
        tick = self._tick
        top_span = self._spans[self._levels]
        block_end_ms = (tick // top_span + 1) * top_span * self._tick_ms
        heap = self._overflow_heap
        while heap:
            due_ms, ident = heap[0]
            handle = self._overflow.get(ident)
            if handle is None:
                heapq.heappop(heap)
                continue
            if due_ms >= block_end_ms:
                break
            heapq.heappop(heap)
            del self._overflow[ident]
            self._place(handle)
        for level in range(self._levels - 1, 0, -1):
            slot = (tick // self._spans[level]) % self._slots
            if self._bits[level] >> slot & 1:
                moved: list[TimerHandle] = []
                self._take_bucket(level, slot, moved)
                for handle in moved:
                    self._place(handle)

    def _next_bucket_start(self, level: int) -> int | None:
        """First tick after the cursor where a non-empty bucket of ``level`` begins."""
        bits = self._bits[level]
        if not bits:
            return None
        span = self._spans[level]
        position = (self._tick // span) % self._slots
        later = bits >> (position + 1)
        if not later:
            return None
        slot = position + (later & -later).bit_length()
        upper = self._spans[level + 1]
        return (self._tick // upper) * upper + slot * span

    def _next_event_tick(self, limit: int) -> int:
        """The nearest tick (at most ``limit``) where something fires or cascades."""
        best = limit
        for level in range(self._levels):
            start = self._next_bucket_start(level)
            if start is not None and start < best:
                best = start
        top = self._overflow_top()
        if top is not None:
            top_span = self._spans[self._levels]
            start = (top // self._tick_ms) // top_span * top_span
            if start < best:
                best = start
        return best

    def _overflow_top(self) -> int | None:
        heap = self._overflow_heap
        while heap and heap[0][1] not in self._overflow:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _compact_overflow(self) -> None:
        """Drop cancelled entries once they dominate the overflow heap."""
        if len(self._overflow_heap) > 2 * len(self._overflow) + 64:
            self._overflow_heap = [(h._due_ms, i) for i, h in self._overflow.items()]
            heapq.heapify(self._overflow_heap)
