"""A shard still waiting for its lease (another owner holds the range) stops at once and quietly
on SIGTERM: no traceback, exit 0, and the other owner's lease untouched."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from control.policy.partitioning import shard_ranges


async def test_sigterm_while_waiting_for_the_lease_exits_cleanly(pool: Any, db_url: str) -> None:
    lo, hi = shard_ranges(4096, 1)[0]
    await pool.execute("INSERT INTO shard_leases (slot, lo, hi, owner, epoch, expires_at)"
                       " VALUES ($1, $2, $3, 'someone-else', nextval('lease_epoch_seq'), now() + interval '1 hour')",
                       f"{lo}-{hi}", lo, hi)
    env = {**os.environ, "DATABASE_URL": db_url, "MITTR_LOG__LEVEL": "info"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.shard", "--index", "0", "--count", "1", "--owner", "test",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    await asyncio.sleep(2.0)              # connected, now waiting for the range
    assert proc.returncode is None
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
    assert await pool.fetchval("SELECT owner FROM shard_leases") == "someone-else"
