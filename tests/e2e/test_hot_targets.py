"""Hot targets (issue 17, item 6): one endpoint with more backlog than its shard can send is spread
over both shards of a real `mittr serve`, its rate limit holds across them, and a FIFO endpoint
keeps one owner and its order. Real shard processes, real Postgres, a real receiver."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import asyncpg
import pytest

from control.policy.partitioning import partition_for
from tests.e2e.test_shard_hardening import clone_event, endpoint, send
from tests.support.server import Api, MittrServer
from tests.support.sink import PARTITIONS, Sink

pytestmark = pytest.mark.e2e

SERVER_SHARDS = 2
# A small buffer makes a target's share (a quarter: 100 tasks) small, so a few thousand events are a
# backlog one shard cannot hold; 4 requests in flight per endpoint make one shard's pace the limit.
SERVER_ENV = {"MITTR_ENGINE__MAX_BUFFERED": "400", "MITTR_ENGINE__MAX_IN_FLIGHT_PER_ENDPOINT": "4",
              "MITTR_ENGINE__HOT_TARGET_SHARDS": "2"}
HALF = PARTITIONS // 2       # one member with two shards: shard 0 holds [0, 2048), shard 1 the rest


async def by_shard(server: MittrServer, endpoint_id: str, total: int = 0) -> tuple[int, int]:
    """Delivered tasks of the endpoint in each shard's range (once `total` are recorded, if given).
    An outcome is recorded only under the claim epoch of the range's lease, so a task delivered in a
    range was sent by that range's shard."""
    conn = await asyncpg.connect(server.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            row = await conn.fetchrow("""
                SELECT count(*) FILTER (WHERE partition < $2) AS a, count(*) FILTER (WHERE partition >= $2) AS b
                FROM tasks WHERE endpoint_id = $1 AND status = 'delivered'""", uuid.UUID(endpoint_id), HALF)
            a, b = int(row["a"]), int(row["b"])
            if a + b >= total or time.monotonic() > deadline:
                return a, b
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def backlog(api: Api, server: MittrServer, sink: Sink, path: str, event_type: str, n: int) -> str:
    """An event to `path` and n - 1 copies of it: one deep backlog, then the wake-up."""
    first = await send(api, event_type, {"n": 0})
    await sink.wait_for(path, 1)
    await clone_event(server, first["id"], n - 1)
    return str(first["id"])


async def test_a_hot_endpoint_is_delivered_by_both_shards_once_each(api: Api, server: MittrServer,
                                                                   sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/hot", ["hot.plain"])
    await backlog(api, server, sink, "/hot", "hot.plain", 3000)
    got = await sink.wait_for("/hot", 3000, timeout=60)
    home = partition_for(ep["id"], PARTITIONS) < HALF
    a, b = await by_shard(server, ep["id"], 3000)
    assert a + b == 3000
    assert min(a, b) > 0, f"one shard sent everything: {a}, {b} (home on shard {0 if home else 1})"
    ids = Counter(r.headers["X-Mittr-Event-ID"] for r in got)
    assert len(ids) == 3000 and max(ids.values()) == 1        # each event once, whoever sent it


async def test_a_hot_direct_destination_is_spread_and_never_stalls(api: Api, server: MittrServer, sink: Sink) -> None:
    """The locust case: batch ingest to one `destination`. Both shards deliver it, and a shard that
    claimed more of it than it may hold gives the rest back at once, not after the orphan sweep
    (60 s): it used to drop them from memory still claimed when it re-planned within a claim round."""
    url = sink.url + "/direct"
    status, first = await api.call("POST", "/api/v1/events", {"destination": url, "payload": {"n": 0}},
                                   {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, first
    await sink.wait_for("/direct", 1)
    started = time.monotonic()
    await clone_event(server, first["id"], 2999)
    got = await sink.wait_for("/direct", 3000, timeout=40)
    assert time.monotonic() - started < 30
    ids = Counter(r.headers["X-Mittr-Event-ID"] for r in got)
    assert len(ids) == 3000 and max(ids.values()) == 1
    conn = await asyncpg.connect(server.database_url)
    try:
        row = await conn.fetchrow("""
            SELECT count(*) FILTER (WHERE t.partition < $2) AS a, count(*) FILTER (WHERE t.partition >= $2) AS b
            FROM tasks t JOIN events e ON e.id = t.event_id WHERE e.destination = $1""", url, HALF)
    finally:
        await conn.close()
    assert min(row["a"], row["b"]) > 0, dict(row)


async def test_a_spread_endpoint_keeps_its_rate_limit_across_shards(api: Api, server: MittrServer,
                                                                    sink: Sink) -> None:
    # One shard sends at most 4 / 50 ms = 80/s to this receiver; the limit (100/s) is above that, so
    # the endpoint is hot and spreads; two shards could send 160/s, the shared bucket keeps 100/s.
    rate, n = 100, 1000
    sink.script("/limited", lambda _n: (200, {}, 0.05))
    ep = await endpoint(api, sink.url + "/limited", ["hot.limited"], rateLimitPerSec=rate)
    await backlog(api, server, sink, "/limited", "hot.limited", n)
    got = await sink.wait_for("/limited", n, timeout=60)
    a, b = await by_shard(server, ep["id"], n)
    assert min(a, b) > 0, (a, b)
    times = sorted(r.at for r in got[1:])       # the backlog's receipts (the first event came alone)
    span = times[-1] - times[0]
    # The shared bucket grants at most rate·(w + 1) over w seconds, plus a tenth of the rate leased
    # per shard and not yet spent.
    assert len(times) <= rate * (span + 1) + 2 * rate // 10, f"{len(times)} in {span:.2f} s"
    window = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert window <= 2 * rate + 2 * rate // 10, window


async def test_a_fifo_endpoint_keeps_one_owner_and_its_order(api: Api, server: MittrServer, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/fifo", ["hot.fifo"], fifo=True)
    await backlog(api, server, sink, "/fifo", "hot.fifo", 1500)
    got = await sink.wait_for("/fifo", 1500, timeout=60)
    a, b = await by_shard(server, ep["id"], 1500)
    assert 0 in (a, b) and a + b == 1500                     # one shard sent all of it
    conn = await asyncpg.connect(server.database_url)
    try:
        order = [str(r["event_id"]) for r in await conn.fetch(
            "SELECT event_id FROM tasks WHERE endpoint_id = $1 ORDER BY seq", uuid.UUID(ep["id"]))]
    finally:
        await conn.close()
    assert [r.headers["X-Mittr-Event-ID"] for r in got] == order


async def test_a_breaker_opened_by_one_shard_stops_the_other(api: Api, server: MittrServer, sink: Sink) -> None:
    """Both shards send a spread endpoint. When its receiver starts failing and one shard's breaker
    opens (persisted as a shard persists it, written here), the other stops too within about a
    second, long before its own failures (threshold 1,000) would open its breaker."""
    failing = {"on": False}
    sink.script("/shared-breaker", lambda _n: (500 if failing["on"] else 200, {}, 0.05))
    ep = await endpoint(api, sink.url + "/shared-breaker", ["hot.breaker"], circuitThreshold=1000,
                        circuitResetMs=60_000)
    await backlog(api, server, sink, "/shared-breaker", "hot.breaker", 3000)
    deadline = time.monotonic() + 30
    while min(await by_shard(server, ep["id"])) == 0:        # both shards are sending it
        assert time.monotonic() < deadline, await by_shard(server, ep["id"])
        await asyncio.sleep(0.05)
    failing["on"] = True
    conn = await asyncpg.connect(server.database_url)
    try:
        await conn.execute("UPDATE endpoints SET circuit_state = 'open', circuit_opened_at = now() WHERE id = $1",
                           uuid.UUID(ep["id"]))
    finally:
        await conn.close()
    await asyncio.sleep(2)             # read every second; what was in flight finishes
    stopped = len(sink.at("/shared-breaker"))
    await asyncio.sleep(2)
    assert len(sink.at("/shared-breaker")) == stopped < 3000, "a shard kept sending past the open breaker"
