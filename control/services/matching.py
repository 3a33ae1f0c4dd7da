"""Where tenant-controlled matching runs: off the event loop whenever it may be costly.

Filters holding a regex, and schema checks that outgrow a small inline budget, run on a small
thread pool of their own. RE2 releases the GIL while it scans and pure-Python work yields it
every switch interval, so the API worker keeps answering other requests meanwhile; the pool is
separate from the loop's default executor so a flood of such work never delays DNS lookups.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from control.policy.filters import CompiledFilter, FilterError, compile_filter

log = logging.getLogger("mittr.matching")

WORKERS = 2
T = TypeVar("T")


@functools.cache
def _pool() -> ThreadPoolExecutor:
    # created on first use, inside the API worker process (never before a fork)
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mittr-match")


async def off_loop(fn: Callable[[], T]) -> T:
    """Run `fn` on the matching pool and wait for it without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_pool(), fn)


@functools.lru_cache(maxsize=256)
def _warn_unusable(reason: str) -> None:
    log.warning("a stored filter is no longer accepted and matches no event: %s", reason)


def _stored(spec: object) -> CompiledFilter | bool:
    """A stored filter: True when there is none, False when it is no longer valid.

    Filters saved before a rule was tightened (a lookahead regex, too many conditions) are not
    run at all: delivering everything would ignore what the filter was there to exclude."""
    if not spec:
        return True
    try:
        return compile_filter(spec)
    except FilterError as exc:
        _warn_unusable(str(exc))
        return False


async def filters_hold(specs: Sequence[object], document: Callable[[], object]) -> list[bool]:
    """Whether each stored filter lets the event through; `document` builds what they see.

    Cheap filters run inline; if any holds a regex they all run on the matching pool."""
    compiled = [_stored(spec) for spec in specs]
    if all(isinstance(f, bool) for f in compiled):
        return [bool(f) for f in compiled]
    doc = document()

    def evaluate() -> list[bool]:
        return [f if isinstance(f, bool) else f.matches(doc) for f in compiled]

    if any(isinstance(f, CompiledFilter) and f.uses_regex for f in compiled):
        return await off_loop(evaluate)
    return evaluate()
