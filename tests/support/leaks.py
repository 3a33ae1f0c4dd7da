"""Finds the test module that leaves a Postgres connection open.

A connection left open (a pool never closed, a connect cancelled half-way) is reported by Python
only when it is garbage-collected, often at interpreter exit, where pytest turns the
ResourceWarning into a failed run that names no test. Every asyncpg connection is remembered
(weakly) from its creation; when a test module ends, any connection it opened that is still open
fails that module's last test by name and is terminated so it cannot leak further.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import asyncpg.connection

_opened: weakref.WeakSet[asyncpg.connection.Connection] = weakref.WeakSet()


def track_connections() -> None:
    """Wrap Connection.__init__ once so every new connection is remembered."""
    cls = asyncpg.connection.Connection
    if getattr(cls.__init__, "_mittr_tracked", False):
        return
    original: Callable[..., None] = cls.__init__

    def init(self: asyncpg.connection.Connection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _opened.add(self)

    init._mittr_tracked = True  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[method-assign]


def open_connections() -> set[asyncpg.connection.Connection]:
    return {c for c in list(_opened) if not c.is_closed()}


def close_leaked(before: set[asyncpg.connection.Connection]) -> int:
    """Terminate connections opened since `before` that are still open; return how many."""
    leaked = open_connections() - before
    for conn in leaked:
        conn.terminate()
    return len(leaked)
