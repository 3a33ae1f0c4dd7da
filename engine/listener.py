"""The shard's LISTEN connection: NOTIFY wake-ups, endpoint changes and releases.

Notifications are hints. While the connection is down nothing is lost: each reconnect reports
itself (`on_connected`) so the shard claims and reconciles at once, and periodic scans cover the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

log = logging.getLogger("mittr.engine.listener")
PING_S = 5.0


async def listen(url: str, handlers: Mapping[str, Callable[[str], None]], on_connected: Callable[[], None],
                 stopping: Callable[[], bool]) -> None:
    while not stopping():
        conn = None
        try:
            conn = await asyncpg.connect(url)
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _c, ev=closed: ev.set())
            for channel, handler in handlers.items():
                await conn.add_listener(channel, _adapter(handler))
            on_connected()
            while not closed.is_set() and not stopping():
                try:
                    await asyncio.wait_for(closed.wait(), timeout=PING_S)
                except TimeoutError:
                    await asyncio.wait_for(conn.execute("SELECT 1"), timeout=PING_S)  # notice a dead server
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("listener reconnecting", extra={"error": str(exc)})
            await asyncio.sleep(0.5)
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()


def _adapter(handler: Callable[[str], None]) -> Callable[[Any, int, str, str], None]:
    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            handler(payload)
        except Exception:
            log.exception("notification handler failed")
    return on_notify
