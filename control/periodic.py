"""A background job that runs every few seconds in each API worker, logged and never fatal.

The alert evaluator and the billing rollover both run this way: each tick takes a cluster-wide
advisory lock itself (one runner across processes and hosts), so every worker may run the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("mittr.periodic")


class Periodic:
    def __init__(self, name: str, tick: Callable[[], Awaitable[Any]], interval_s: float) -> None:
        self.name, self.tick, self.interval_s = name, tick, interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop once (interval 0 = never)."""
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic job failed", extra={"job": self.name})
            await asyncio.sleep(self.interval_s)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
