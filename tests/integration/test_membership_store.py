"""Engine membership on a real database: members register and expire, every shard derives the same
ranges from the live ones, a clean leave is immediate, and the status read names who holds what
with the backlog per range."""

from __future__ import annotations

import asyncio
from typing import Any

from control.services.engine_status import engine_status, render
from control.services.events import EventService
from control.services.keys import create_client
from control.services.principal import Principal
from control.store.queries import q
from engine.membership import Heartbeat, Membership, leave, register

TTL = 3.0


def view(pool: Any, member: str, shards: int, index: int) -> Membership:
    return Membership(pool, member, shards, index, 4096, TTL, 1.0)


async def test_live_members_share_the_partitions_and_an_expired_one_drops_out(pool: Any) -> None:
    await register(pool, "host-a-1", 2)
    await register(pool, "host-b-1", 1)
    ranges = {(m, i): await view(pool, m, k, i).view() for m, k in (("host-a-1", 2), ("host-b-1", 1))
              for i in range(k)}
    assert sorted(ranges.values()) == [(0, 1366), (1366, 2731), (2731, 4096)]
    assert ranges[("host-a-1", 0)] == (0, 1366) and ranges[("host-b-1", 0)] == (1366, 2731), \
        "interleaved: every member's shard 0 first, by member id"

    # b stops heartbeating: once its beat is older than the TTL, a's shards split everything.
    await pool.execute("UPDATE engine_members SET heartbeat_at = now() - interval '4 seconds' WHERE id = 'host-b-1'")
    assert await view(pool, "host-a-1", 2, 0).view() == (0, 2048)
    assert await view(pool, "host-a-1", 2, 1).view() == (2048, 4096)

    # A clean leave is gone at once; a member the others count as gone holds nothing.
    await leave(pool, "host-a-1")
    assert await pool.fetchval("SELECT count(*) FROM engine_members WHERE id = 'host-a-1'") == 0
    assert await view(pool, "host-a-1", 2, 0).view() == (0, 0)
    await register(pool, "host-c-1", 1)
    assert await view(pool, "host-c-1", 1, 0).view() == (0, 4096)


async def test_the_supervisor_heartbeat_keeps_a_registered_member_alive_and_restores_a_forgotten_one(
        pool: Any, db_url: str) -> None:
    await register(pool, "host-h-1", 1)
    await pool.execute("UPDATE engine_members SET heartbeat_at = now() - interval '1 hour'")
    beat = Heartbeat(db_url, "host-h-1", 1, 0.2)
    beat.start()
    try:
        for _ in range(50):
            if await pool.fetchval("SELECT heartbeat_at > now() - interval '2 seconds' FROM engine_members"):
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT heartbeat_at > now() - interval '2 seconds' FROM engine_members")
        await pool.execute("DELETE FROM engine_members")          # forgotten (a long outage)
        for _ in range(50):
            if await pool.fetchval("SELECT count(*) FROM engine_members"):
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT shards FROM engine_members WHERE id = 'host-h-1'") == 1
    finally:
        await asyncio.to_thread(beat.stop)


async def test_a_heartbeat_never_registers_a_member_its_shards_have_not(pool: Any, db_url: str) -> None:
    beat = Heartbeat(db_url, "host-early-1", 1, 0.1)
    beat.start()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(beat.stop)
    assert await pool.fetchval("SELECT count(*) FROM engine_members") == 0, \
        "an engine still starting is not given ranges before a shard can take them"


async def test_status_names_members_ranges_epochs_and_backlog(pool: Any) -> None:
    await register(pool, "host-a-1", 1)
    await register(pool, "host-b-1", 1)
    epoch_a = await pool.fetchval(q("acquire_lease"), "0-2048", 0, 2048, "host-a-1:0", 30.0)
    epoch_b = await pool.fetchval(q("acquire_lease"), "2048-4096", 2048, 4096, "host-b-1:0", 30.0)
    client = await create_client(pool, "t")
    svc = EventService(pool, 4096)
    for i in range(6):
        await svc.create(Principal(client["id"], None, frozenset(), None),
                         {"destination": f"https://h{i}.example.com/x", "payload": {}}, f"k{i}")
    parts = [r["partition"] for r in await pool.fetch("SELECT partition FROM tasks")]
    status = await engine_status(pool, TTL)
    assert [m.id for m in status.members] == ["host-a-1", "host-b-1"] and all(m.live for m in status.members)
    by_slot = {r.slot: r for r in status.ranges}
    assert by_slot["0-2048"].member == "host-a-1" and by_slot["0-2048"].epoch == epoch_a
    assert by_slot["2048-4096"].member == "host-b-1" and by_slot["2048-4096"].epoch == epoch_b
    assert by_slot["0-2048"].backlog == sum(p < 2048 for p in parts)
    assert by_slot["2048-4096"].backlog == sum(p >= 2048 for p in parts)
    assert status.unleased_backlog == 0

    await pool.execute(q("release_lease"), "2048-4096", epoch_b)
    await pool.execute("UPDATE engine_members SET heartbeat_at = now() - interval '10 seconds' WHERE id = 'host-b-1'")
    status = await engine_status(pool, TTL)
    assert status.unleased_backlog == sum(p >= 2048 for p in parts)
    text = render(status)
    assert "host-b-1" in text and "EXPIRED" in text and "released/expired" in text
    assert f"epoch {epoch_a}" in text and f"backlog {sum(p < 2048 for p in parts)}" in text
    assert status.json()["members"][1]["live"] is False
