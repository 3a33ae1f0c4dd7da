"""Connections to a server that went silent (a partition, a dead host): nothing Mittr does at
shutdown or under a lock may wait on them for TCP's hours. The silence is made by a TCP proxy that
stops forwarding without resetting anything (tests/support/tcp_proxy.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from control.store.db import close_pool, create_pool
from tests.support.tcp_proxy import postgres_proxy


async def test_closing_a_pool_whose_server_went_silent_is_bounded(db_url: str) -> None:
    proxy, through = await postgres_proxy(db_url)
    try:
        pool = await create_pool(through, 2, 2)
        assert await pool.fetchval("SELECT 1") == 1
        proxy.cut()
        started = time.monotonic()
        await asyncio.wait_for(close_pool(pool, 0.5), 10)
        assert time.monotonic() - started < 5
        with pytest.raises(Exception):  # noqa: B017 - any error: the pool is closed, not reconnecting
            await pool.fetchval("SELECT 1")
    finally:
        await proxy.stop()


async def test_a_plain_close_would_have_waited(db_url: str) -> None:
    """Why close_pool exists: asyncpg's graceful close waits for the server's answer to terminate."""
    proxy, through = await postgres_proxy(db_url)
    try:
        pool = await create_pool(through, 1, 1)
        assert await pool.fetchval("SELECT 1") == 1
        proxy.cut()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pool.close()), 2)
        pool.terminate()
    finally:
        await proxy.stop()
