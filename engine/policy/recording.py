"""When the outcome writer's transaction fails: retry it whole, split it, drop one outcome, or give up.

Pure: the writer passes in the exception, the batch size and its clock, and acts on what comes back.

- A *transient* failure (connection lost or refused, database restarting or gone, a command timeout,
  a serialization failure, anything else the server says that is not about the rows) is retried
  whole, after a backoff. Such a failure can hide a COMMIT that did happen: the writer's retry is
  idempotent, so a batch applied twice changes nothing the second time.
- A *poison* failure (a data error such as an invalid byte sequence or a value out of range, a
  constraint violation, or a client-side encoding error) is about some row of the batch: retrying
  it whole would fail forever, so the batch is split in halves until the failing outcome stands
  alone, and that one is dropped (its task keeps its claim, so the shard's orphan sweep gives it
  back to the queue: retried, not lost).
- Failing without a break for `after_s` seconds and at least `min_failures` times is a wedge: the
  shard gives its lease up so that a fresh process takes the range over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import asyncpg
from asyncpg.exceptions import _base as pgbase

Kind = Literal["transient", "poison"]
Step = Literal["retry", "split", "drop"]
T = TypeVar("T")

# SQLSTATE classes that describe the rows written, not the connection or the server's state:
# 22 data exception (invalid text, value out of range, ...), 23 integrity constraint violation.
POISON_CLASSES = frozenset({"22", "23"})
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


def classify(exc: BaseException) -> Kind:
    """Whether retrying the same rows can succeed later (transient) or never will (poison)."""
    if isinstance(exc, pgbase.DataError):          # asyncpg could not encode an argument
        return "poison"
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return "poison" if state[:2] in POISON_CLASSES else "transient"
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return "transient"
    # Anything else was raised on our side while encoding the rows (a lone surrogate in a text
    # COPY, an int out of range) or by our own code on them: it follows the rows.
    return "poison"


def step(kind: Kind, size: int) -> Step:
    """What to do with a batch of `size` outcomes whose write failed with `kind`."""
    if kind == "transient":
        return "retry"
    return "split" if size > 1 else "drop"


def halves(items: list[T]) -> tuple[list[T], list[T]]:
    """A failing batch split in order (outcomes of one task keep their order across the halves)."""
    mid = (len(items) + 1) // 2
    return items[:mid], items[mid:]


def retry_delay_s(streak: int) -> float:
    """Backoff before retrying after the `streak`-th failure in a row."""
    return min(BACKOFF_BASE_S * float(2 ** min(streak, 16)), BACKOFF_CAP_S)


@dataclass(slots=True)
class WedgeWatch:
    """Counts failures in a row; says once per streak when the writer is wedged."""

    after_s: float
    min_failures: int
    streak: int = 0
    since: float | None = None        # clock of the streak's first failure
    reported: bool = False

    def failure(self, now: float) -> bool:
        """Record a failure; True the first time the streak is both long and old enough."""
        if self.since is None:
            self.since = now
        self.streak += 1
        if self.reported or self.streak < self.min_failures or now - self.since < self.after_s:
            return False
        self.reported = True
        return True

    def success(self) -> None:
        self.streak = 0
        self.since = None
        self.reported = False

    @property
    def wedged(self) -> bool:
        return self.reported
