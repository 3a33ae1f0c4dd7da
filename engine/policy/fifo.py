"""FIFO gate: per-key strict ordering with at most one delivery in flight per key.

Each key (e.g. an endpoint plus a FIFO group) has its own queue sorted by a caller-given
sequence number. Only a key's head may be in flight; while it is retried the key waits,
but other keys carry on, so a failing head blocks only its own key.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class _Queue(Generic[T]):
    """One key's state: the taken head (in flight or awaiting retry) and the rest by seq."""

    __slots__ = ("blocked", "head", "in_flight", "waiting")

    def __init__(self) -> None:
        self.head: tuple[T] | None = None  # taken out of `waiting`; 1-tuple so None is an item
        self.in_flight = False
        self.blocked = False  # head failed; waits for release()
        self.waiting: list[tuple[int, int, T]] = []  # heap of (seq, arrival, item)

    def size(self) -> int:
        return len(self.waiting) + (self.head is not None)


class FifoGate(Generic[T]):
    """Releases, per key, the lowest-sequence item once its predecessor is finished."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue[T]] = {}
        self._ready: dict[str, None] = {}  # keys whose head can be handed out, in arrival order
        self._arrivals = itertools.count()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, key: str, seq: int, item: T) -> None:
        """Queue ``item`` under ``key``; arrival order does not matter, ``seq`` does."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        heapq.heappush(queue.waiting, (seq, next(self._arrivals), item))
        self._count += 1
        if not queue.in_flight and not queue.blocked:
            self._ready[key] = None

    def pop_ready(self) -> list[T]:
        """Heads of all keys with nothing in flight or awaiting retry; marks them in flight."""
        out: list[T] = []
        for key in self._ready:
            queue = self._queues[key]
            if queue.head is None:
                queue.head = (heapq.heappop(queue.waiting)[2],)
            queue.in_flight = True
            out.append(queue.head[0])
        self._ready.clear()
        return out

    def done(self, key: str, success: bool) -> None:
        """Finish the key's in-flight head: success moves on; failure holds it for a retry."""
        queue = self._queues.get(key)
        if queue is None or not queue.in_flight:
            raise ValueError(f"FIFO key {key!r} has nothing in flight")
        queue.in_flight = False
        if success:
            self._remove_head(key, queue)
        else:
            queue.blocked = True

    def release(self, key: str) -> None:
        """The failed head's retry is due: hand it out again (no-op if not awaiting retry)."""
        queue = self._queues.get(key)
        if queue is not None and queue.blocked:
            queue.blocked = False
            self._ready[key] = None

    def drop_head(self, key: str) -> None:
        """Give up on the key's head (dead-lettered) so the next item can go."""
        queue = self._queues.get(key)
        if queue is None:
            return
        if queue.head is None and queue.waiting:
            queue.head = (heapq.heappop(queue.waiting)[2],)
        queue.in_flight = False
        queue.blocked = False
        self._ready.pop(key, None)
        self._remove_head(key, queue)

    def _remove_head(self, key: str, queue: _Queue[T]) -> None:
        if queue.head is not None:
            queue.head = None
            self._count -= 1
        if queue.waiting:
            self._ready[key] = None
        else:
            del self._queues[key]
