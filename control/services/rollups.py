"""Per-minute delivery rollups: what analytics and stats read instead of scanning raw attempts.

Whoever records attempts (the engine's outcome writer, a poll ack) folds them here first, in
memory, into one row per (tenant, minute, endpoint, project), then adds those rows to the table in
one statement inside the same transaction, so the rollups can never disagree with the attempts.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from control.store.queries import q

NIL = uuid.UUID(int=0)   # stands for "no endpoint" (direct delivery) and "no project" in rollup keys
# Upper bounds (inclusive) of the latency buckets, durationMs; one more bucket holds everything above.
# Only ever append to this list: stored histograms keep their meaning.
LATENCY_BOUNDS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
CATEGORIES: tuple[str, ...] = ("timeout", "4xx", "5xx", "dns", "tls", "refused", "other")
_CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORIES)}

RollupKey = tuple[uuid.UUID, datetime, uuid.UUID, uuid.UUID]   # client, minute, endpoint, project


@dataclass(frozen=True, slots=True)
class AttemptFact:
    """The part of one recorded attempt the rollups need."""

    client_id: uuid.UUID
    project_id: uuid.UUID | None
    endpoint_id: uuid.UUID | None
    attempted_at: datetime
    outcome: str                 # success | failure | timeout
    error_category: str | None
    duration_ms: int
    new_status: str              # the delivery's state after this attempt (delivered / dead / ...)


@dataclass(slots=True)
class Counts:
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    delivered: int = 0
    dead: int = 0
    errors: list[int] = field(default_factory=lambda: [0] * len(CATEGORIES))
    duration_sum_ms: int = 0
    duration_max_ms: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Sum one stored rollup row into these counts (analytics folds buckets this way)."""
        self.attempts += row["attempts"]
        self.successes += row["successes"]
        self.failures += row["failures"]
        self.timeouts += row["timeouts"]
        self.delivered += row["delivered"]
        self.dead += row["dead"]
        self.duration_sum_ms += row["duration_sum_ms"]
        self.duration_max_ms = max(self.duration_max_ms, row["duration_max_ms"])
        for i, name in enumerate(CATEGORIES):
            self.errors[i] += row[f"err_{name}"]
        add_hist(self.hist, row["latency_hist"])

    @property
    def failed(self) -> int:
        return self.failures + self.timeouts

    def errors_by_name(self) -> dict[str, int]:
        return dict(zip(CATEGORIES, self.errors, strict=True))


def latency_bucket(duration_ms: int) -> int:
    """Index of the bucket holding duration_ms: the first whose bound is >= it."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, duration_ms)


def category_of(fact: AttemptFact) -> int | None:
    """Failure category index of an attempt; None for a success."""
    if fact.outcome == "success":
        return None
    if fact.outcome == "timeout":
        return _CATEGORY_INDEX["timeout"]
    return _CATEGORY_INDEX.get(fact.error_category or "other", _CATEGORY_INDEX["other"])


def minute_of(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def aggregate(facts: Iterable[AttemptFact]) -> dict[RollupKey, Counts]:
    """Fold attempts into per-minute rows, keys sorted so that concurrent writers lock rows in one order."""
    rows: dict[RollupKey, Counts] = {}
    for f in facts:
        key = (f.client_id, minute_of(f.attempted_at), f.endpoint_id or NIL, f.project_id or NIL)
        c = rows.get(key)
        if c is None:
            c = rows[key] = Counts()
        c.attempts += 1
        if f.outcome == "success":
            c.successes += 1
        elif f.outcome == "timeout":
            c.timeouts += 1
        else:
            c.failures += 1
        if f.new_status == "delivered":
            c.delivered += 1
        elif f.new_status == "dead":
            c.dead += 1
        cat = category_of(f)
        if cat is not None:
            c.errors[cat] += 1
        duration = max(0, f.duration_ms)
        c.duration_sum_ms += duration
        c.duration_max_ms = max(c.duration_max_ms, duration)
        c.hist[latency_bucket(duration)] += 1
    return dict(sorted(rows.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], str(kv[0][2]), str(kv[0][3]))))


async def apply(conn: asyncpg.Connection, rows: dict[RollupKey, Counts]) -> None:
    """Add the rows to the rollup table: one INSERT ... ON CONFLICT that sums counts and histograms."""
    if not rows:
        return
    keys = list(rows)
    counts = list(rows.values())
    await conn.execute(
        q("upsert_delivery_rollups"),
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
        [c.attempts for c in counts], [c.successes for c in counts], [c.failures for c in counts],
        [c.timeouts for c in counts], [c.delivered for c in counts], [c.dead for c in counts],
        *[[c.errors[i] for c in counts] for i in range(len(CATEGORIES))],
        [c.duration_sum_ms for c in counts], [c.duration_max_ms for c in counts],
        [n for c in counts for n in c.hist], BUCKETS)


def percentile(hist: Sequence[int], max_ms: int, p: float) -> int | None:
    """The p-th percentile (0-100] of durationMs from a histogram: the upper bound of the bucket
    holding the ceil(p% * n)-th smallest attempt, never more than the largest duration seen."""
    total = sum(hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(total * p / 100))
    seen = 0
    for i, n in enumerate(hist):
        seen += n
        if seen >= rank:
            return min(LATENCY_BOUNDS_MS[i], max_ms) if i < len(LATENCY_BOUNDS_MS) else max_ms
    return max_ms


def add_hist(into: list[int], more: Sequence[int]) -> list[int]:
    """Elementwise sum (histograms stored before a bound was appended are shorter)."""
    if len(more) > len(into):
        into.extend([0] * (len(more) - len(into)))
    for i, n in enumerate(more):
        into[i] += n
    return into
