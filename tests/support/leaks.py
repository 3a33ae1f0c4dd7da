"""Finds the test module that leaves a Postgres connection or pool open.

A connection left open (a pool never closed, a connect cancelled half-way) is reported by Python
only when it is garbage-collected, often at interpreter exit, where pytest turns the
ResourceWarning into a failed run that names no test. A pool never closed is worse than its
connections: once its database is dropped, asyncpg keeps reconnecting to restore the pool's
minimum size until the interpreter exits, and the connect in flight at exit is the unclosed socket.
Every asyncpg connection and pool is remembered from its creation; when a test module ends, any it
opened that is still open fails that module by name and is terminated so it cannot leak further.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import asyncpg.connection
import asyncpg.pool

_connections: weakref.WeakSet[asyncpg.connection.Connection] = weakref.WeakSet()
_pools: list[asyncpg.pool.Pool] = []       # Pool has no __weakref__ slot: kept until seen closed


def _wrap_init(cls: type, remember: Callable[[Any], None]) -> None:
    if getattr(cls.__init__, "_mittr_tracked", False):  # type: ignore[misc]
        return
    original: Callable[..., None] = cls.__init__  # type: ignore[misc]

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        remember(self)

    init._mittr_tracked = True  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]


def track_connections() -> None:
    """Wrap Connection.__init__ and Pool.__init__ once so every new one is remembered."""
    _wrap_init(asyncpg.connection.Connection, _connections.add)
    _wrap_init(asyncpg.pool.Pool, _pools.append)


def open_connections() -> set[Any]:
    """Connections and pools open now (and forget the pools already closed)."""
    _pools[:] = [p for p in _pools if not p.is_closing()]
    return {c for c in list(_connections) if not c.is_closed()} | set(_pools)


def close_leaked(before: set[Any]) -> int:
    """Terminate connections and pools opened since `before` that are still open; return how many."""
    leaked = open_connections() - before
    for thing in leaked:
        thing.terminate()
    return len(leaked)
