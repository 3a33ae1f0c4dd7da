"""Engines share the partitions by themselves (issue 17): real `mittr engine` processes on one
database, two `mittr api` hosts in front taking turns (stateless API hosts), a steady load, real
HTTP to a sink on 127.0.0.1.

One engine, then a second and a third join: the ranges rebalance and every member delivers. One is
killed with SIGKILL (supervisor and shard together, as when a host dies): its ranges move within the
lease expiry plus a few seconds. A clean stop hands its ranges over at once. The ledger at the end:
every accepted event delivered; duplicates counted (printed) and bounded.

A network partition is made with a TCP proxy between one engine and PostgreSQL rather than with
network namespaces (same effect for the engine: its connections go silent): cut off, the engine
stops sending once its lease may have expired, its ranges move, nothing it held is sent twice, and
once healed it rejoins and takes a share again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import _create_db, _drop_db
from tests.support.pg import with_database
from tests.support.server import Api, MittrServer, free_port
from tests.support.sink import Sink
from tests.support.tcp_proxy import postgres_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TTL_S = 3            # lease TTL = member expiry: short, so that the kill below is noticed quickly
RENEW_S = 1
MAX_IN_FLIGHT = 64
WRITER_BATCH = 200
ENV = {"MITTR_ENGINE__LEASE_TTL_S": str(TTL_S), "MITTR_ENGINE__LEASE_RENEW_S": str(RENEW_S),
       "MITTR_ENGINE__MAX_IN_FLIGHT": str(MAX_IN_FLIGHT), "MITTR_ENGINE__WRITER_BATCH": str(WRITER_BATCH)}
ENDPOINTS = 24       # spread over the partitions: each third of them gets some with near certainty
FIFO_ENDPOINTS = 4   # strict order per endpoint; every fourth event goes to one of them


@dataclass
class Proc:
    """A `mittr` role in its own process group (so that SIGKILL takes its children too)."""

    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> Proc:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=self.env,
            start_new_session=True)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.output.append(raw.decode(errors="replace").rstrip())

    def kill9(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                pass
        self.kill9()
        await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return self.proc.returncode


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "control.cli", *args]


async def run_cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*cli(*args), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Cluster:
    url: str
    env: dict[str, str]
    apis: list[Api]
    sink: Sink
    db: asyncpg.Connection
    procs: list[Proc] = field(default_factory=list)

    @property
    def api(self) -> Api:
        return self.apis[0]

    async def engine(self, database_url: str | None = None) -> Proc:
        env = {**self.env, "DATABASE_URL": database_url} if database_url else self.env
        proc = await Proc(cli("engine", "--shards", "1"), env).start()
        self.procs.append(proc)
        return proc

    async def members(self) -> list[str]:
        return [r["id"] for r in await self.db.fetch(
            "SELECT id FROM engine_members WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY id",
            TTL_S)]

    async def holders(self) -> dict[str, tuple[int, int]]:
        """Member -> the range its shard holds under a live lease."""
        rows = await self.db.fetch("SELECT lo, hi, owner FROM shard_leases WHERE expires_at > now()")
        return {r["owner"].rpartition(":")[0]: (r["lo"], r["hi"]) for r in rows}

    async def balanced(self, n: int) -> dict[str, tuple[int, int]] | None:
        """The live leases, once n members hold n ranges that split the partitions evenly."""
        members, held = await self.members(), await self.holders()
        if len(members) != n or set(held) != set(members):
            return None
        sizes = sorted(hi - lo for lo, hi in held.values())
        if sum(sizes) != 4096 or sizes[-1] - sizes[0] > 1:
            return None
        return held

    async def all_deliver(self, members: list[str], since: float) -> bool:
        """Every member's shard reported deliveries of its current range after `since`."""
        rows = await self.db.fetch("SELECT owner, delivered_total FROM shard_stats "
                                   "WHERE updated_at > to_timestamp($1) AND delivered_total > 0", since)
        return {r["owner"].rpartition(":")[0] for r in rows} >= set(members)


@pytest.fixture
async def cluster(pg_admin_url: str, template_db: str) -> AsyncIterator[Cluster]:
    name = await _create_db(pg_admin_url, template_db)
    url = with_database(pg_admin_url, name)
    env = MittrServer(url, env_overrides=ENV).environment()
    key = json.loads(await run_cli(env, "keys", "create", "--name", "membership", "--json"))["key"]
    ports = [free_port(), free_port()]
    api_procs = [await Proc(cli("api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"), env).start()
                 for port in ports]
    sink = await Sink().start()
    session = aiohttp.ClientSession()
    db = await asyncpg.connect(url)
    c = Cluster(url, env, [Api(f"http://127.0.0.1:{port}", key, session) for port in ports], sink, db, api_procs)
    try:
        async def healthy() -> bool:
            try:
                return all([(await api.call("GET", "/health"))[0] == 200 for api in c.apis])
            except aiohttp.ClientError:
                return False
        await until(healthy, 60, "the API hosts")
        yield c
    finally:
        for p in c.procs:
            await p.stop(10)
        await db.close()
        await session.close()
        await sink.stop()
        await _drop_db(pg_admin_url, name)


class Load:
    """A steady stream of events over HTTP until stopped, each sent to the API hosts in turn (a
    retry goes to the next one, as behind a load balancer); every accepted id is kept."""

    def __init__(self, apis: list[Api], concurrency: int = 6) -> None:
        self.apis, self.concurrency = apis, concurrency
        self.accepted: list[str] = []
        self.per_host = Counter[int]()
        self.stopped = False
        self._counter = itertools.count()

    async def run(self) -> None:
        await asyncio.gather(*[self._worker() for _ in range(self.concurrency)])

    async def _worker(self) -> None:
        while not self.stopped:
            i = next(self._counter)
            kind = f"f.{i // 4 % FIFO_ENDPOINTS}" if i % 4 == 0 else f"m.{i % ENDPOINTS}"
            body = {"eventType": kind, "payload": {"i": i}}
            key = f"m-{i}"
            for attempt in itertools.count():  # the same idempotency key until accepted: 409 names the event
                host = (i + attempt) % len(self.apis)
                try:
                    status, out = await self.apis[host].call("POST", "/api/v1/events", body,
                                                             {"X-Idempotency-Key": key})
                except (TimeoutError, aiohttp.ClientError):
                    status, out = 0, None
                if status in (201, 409):
                    self.accepted.append(str(out["id"] if status == 201 else out["eventId"]))
                    self.per_host[host] += 1
                    break
                await asyncio.sleep(0.1)


async def hold_delayed(c: Cluster, member: str, event_type: str, delay: int, key_prefix: str) -> list[str]:
    """20 events of `event_type` due in `delay` seconds, once `member`'s shard holds them in memory
    (claimed under its epoch); their ids."""
    ids = []
    for k in range(20):
        status, ev = await c.api.call("POST", "/api/v1/events",
                                      {"eventType": event_type, "payload": {"held": k}, "delaySeconds": delay},
                                      {"X-Idempotency-Key": f"{key_prefix}-{k}"})
        assert status == 201, ev
        ids.append(str(ev["id"]))
    epoch = await c.db.fetchval("SELECT epoch FROM shard_leases WHERE owner = $1", f"{member}:0")

    async def claimed() -> bool:
        n = await c.db.fetchval("SELECT count(*) FROM tasks WHERE event_id = ANY($1::uuid[]) AND claim_epoch = $2",
                                ids, epoch)
        return bool(n == len(ids))
    await until(claimed, 15, f"member {member} holding the delayed work")
    return ids


async def make_endpoints(c: Cluster) -> dict[str, int]:
    """The load's endpoints (plain m0.., FIFO f0..); their partitions by name."""
    for i in range(ENDPOINTS):
        status, body = await c.api.call("POST", "/api/v1/endpoints", {
            "url": f"{c.sink.url}/m{i}", "eventTypes": [f"m.{i}"], "retryBackoffMs": 200, "maxRetries": 10})
        assert status == 201, body
    for i in range(FIFO_ENDPOINTS):
        status, body = await c.api.call("POST", "/api/v1/endpoints", {
            "url": f"{c.sink.url}/f{i}", "eventTypes": [f"f.{i}"], "fifo": True, "retryBackoffMs": 200,
            "maxRetries": 10})
        assert status == 201, body
    rows = await c.db.fetch("SELECT url, partition FROM endpoints")
    return {r["url"].rsplit("/", 1)[1]: r["partition"] for r in rows}


async def check_ledger(c: Cluster, ids: list[str], run_s: float, killed_at: float) -> int:
    """Every accepted event delivered and received; returns the duplicate deliveries (printed, with
    those before `killed_at`, i.e. during the graceful joins)."""
    async def undelivered() -> bool:
        left = await c.db.fetchval("SELECT count(*) FROM events WHERE id = ANY($1::uuid[]) AND status <> 'delivered'",
                                   [uuid.UUID(i) for i in ids])
        return bool(left == 0)
    await until(undelivered, 60, "every accepted event delivered", interval=0.25)
    seen = Counter(r.headers["X-Mittr-Event-ID"] for r in c.sink.received)
    assert set(seen) >= set(ids), "every accepted event reached the receiver"
    duplicates = sum(seen.values()) - len(seen)
    before_kill = Counter(r.headers["X-Mittr-Event-ID"] for r in c.sink.received if r.at < killed_at)
    join_dups = sum(before_kill.values()) - len(before_kill)
    stuck = await c.db.fetchval("SELECT count(*) FROM tasks WHERE status <> 'delivered'")
    print(f"ledger: {len(ids)} accepted, {len(seen)} delivered, {stuck} not delivered, in {run_s:.1f}s; "
          f"{duplicates} duplicate deliveries in all ({duplicates * 10000 / len(ids):.1f} per 10,000), "
          f"{join_dups} of them before the kill (joins: {join_dups * 10000 / max(1, len(before_kill)):.1f} "
          f"per 10,000 of {len(before_kill)})")
    assert stuck == 0 and len(set(ids)) == len(ids)
    return duplicates


async def check_fifo(c: Cluster, parts: dict[str, int]) -> None:
    """FIFO endpoints kept their order across every hand-over and take-over: the first receipt of
    each event comes in creation order (a re-sent head after a kill repeats, never overtakes)."""
    for i in range(FIFO_ENDPOINTS):
        expected = [str(r["event_id"]) for r in await c.db.fetch(
            "SELECT t.event_id FROM tasks t JOIN endpoints ep ON ep.id = t.endpoint_id WHERE ep.url = $1 "
            "ORDER BY t.seq", f"{c.sink.url}/f{i}")]
        got = c.sink.at(f"/f{i}")
        first_seen = list(dict.fromkeys(r.headers["X-Mittr-Event-ID"] for r in got))
        if first_seen != expected:
            at = next(k for k, (x, y) in enumerate(zip(first_seen, expected, strict=False)) if x != y)
            around = [(r.headers["X-Mittr-Event-ID"][-8:], round(r.at % 1000, 3), r.remote,
                       r.headers.get("X-Mittr-Attempt")) for r in got
                      if r.headers["X-Mittr-Event-ID"] in set(expected[max(0, at - 2):at + 3])]
            raise AssertionError(f"FIFO endpoint f{i} (partition {parts[f'f{i}']}) out of order at {at}: expected "
                                 f"{[e[-8:] for e in expected[max(0, at - 2):at + 3]]}; receipts {around}")
    print(f"FIFO: {FIFO_ENDPOINTS} endpoints in order, partitions {sorted(parts[f'f{i}'] for i in range(4))}")


async def test_engines_join_share_and_take_over_a_dead_member(cluster: Cluster) -> None:
    c = cluster
    parts = await make_endpoints(c)

    load = Load(c.apis)
    loader = asyncio.create_task(load.run())
    t_start = time.monotonic()
    await c.engine()
    [first] = await until(lambda: c.members(), 30, "the first member")
    assert (await until(lambda: c.balanced(1), 30, "one member holding everything"))[first] == (0, 4096)
    await until(lambda: c.all_deliver([first], time.time() - 1), 30, "the first member delivering")

    # A second and a third member join: the ranges rebalance, every member delivers.
    for n in (2, 3):
        joined_at = time.time()
        await c.engine()
        held = await until(functools.partial(c.balanced, n), 30, f"{n} members splitting the partitions")
        await until(functools.partial(c.all_deliver, list(held), joined_at), 30, f"all {n} members delivering")
        print(f"join {n}: balanced {time.time() - joined_at:.2f}s after the start of the new engine; ranges {held}")

    out = await run_cli(c.env, "status")
    members = await c.members()
    for m in members:
        assert m in out, out
    assert out.count(" live ") >= 3 and "epoch" in out and "backlog" in out, out
    status = json.loads(await run_cli(c.env, "status", "--json"))
    assert sorted(m["id"] for m in status["members"] if m["live"]) == members
    live = [r for r in status["ranges"] if r["live"]]
    assert sorted(r["member"] for r in live) == members and sum(r["hi"] - r["lo"] for r in live) == 4096
    assert all(r["epoch"] > 0 and r["backlog"] >= 0 and r["renewedAgeS"] < TTL_S for r in live), live
    status_code, text = await c.apis[1].call("GET", "/metrics")
    assert status_code == 200 and all('mittr_engine_member_up{host="' in text and m in text for m in members)
    assert "mittr_range_backlog{" in text and "mittr_lease_epoch{" in text

    # kill -9 one host (supervisor and shard): its range moves once the lease expires.
    victim = c.procs[3]     # the second engine (procs[0:2] are the API hosts)
    held = await c.holders()
    pids = await c.db.fetch("SELECT id, pid FROM engine_members")
    victim_member = next(r["id"] for r in pids if r["pid"] == victim.proc.pid)  # type: ignore[union-attr]
    lo, hi = held[victim_member]
    orphaned = {f"/{name}" for name, p in parts.items() if lo <= p < hi}
    assert orphaned, "the victim's range has endpoints with work"
    killed_at = time.time()
    victim.kill9()
    await until(lambda: c.balanced(2), TTL_S + 15, "two members holding everything")
    moved_at = time.time()

    async def first_after_kill() -> float | None:
        return min((r.at for r in c.sink.received if r.at > killed_at + 0.05 and r.path in orphaned), default=None)
    resumed = await until(first_after_kill, 15, "the dead member's range delivering again")
    recovery = resumed - killed_at
    print(f"kill -9: ranges re-leased {moved_at - killed_at:.2f}s after the kill, the dead member's endpoints "
          f"delivering again after {recovery:.2f}s (lease TTL {TTL_S}s)")
    assert recovery < TTL_S + 5, recovery

    # A clean stop hands over without waiting for the expiry.
    leaving = c.procs[4]
    stop_at = time.monotonic()
    assert await leaving.stop(30) == 0
    await until(lambda: c.balanced(1), 15, "the last member holding everything")
    handover = time.monotonic() - stop_at
    print(f"clean stop: the remaining member holds everything {handover:.2f}s after SIGTERM")

    await asyncio.sleep(1.0)
    load.stopped = True
    await loader
    ids = load.accepted
    duplicates = await check_ledger(c, ids, time.monotonic() - t_start, killed_at)
    assert min(load.per_host.values()) > len(ids) // 4, f"both API hosts took events: {load.per_host}"
    await check_fifo(c, parts)
    # At most what the killed shard had sent and not yet recorded: its in-flight limit and one writer batch.
    assert duplicates <= MAX_IN_FLIGHT + WRITER_BATCH, duplicates


async def test_an_engine_cut_off_from_postgres_stops_sending_and_its_range_moves(cluster: Cluster) -> None:
    c = cluster
    proxy, through = await postgres_proxy(c.url)
    try:
        await c.engine()
        cut_off = await c.engine(database_url=through)
        held = await until(functools.partial(c.balanced, 2), 40, "two members splitting the partitions")
        member = await c.db.fetchval("SELECT id FROM engine_members WHERE pid = $1", cut_off.proc.pid)  # type: ignore[union-attr]
        lo, hi = held[member]
        path = ""
        for i in range(60):      # an endpoint in the range of the engine about to be cut off
            status, ep = await c.api.call("POST", "/api/v1/endpoints", {"url": f"{c.sink.url}/p{i}",
                                                                         "eventTypes": [f"p.{i}"]})
            assert status == 201, ep
            if lo <= await c.db.fetchval("SELECT partition FROM endpoints WHERE id = $1", uuid.UUID(ep["id"])) < hi:
                path, event_type = f"/p{i}", f"p.{i}"
                break
        assert path, "no endpoint landed in the range"
        # Work the cut-off engine holds in memory, due only after its lease has run out.
        delay = int(TTL_S) + 6
        ids = [uuid.UUID(i) for i in await hold_delayed(c, member, event_type, delay, "cut")]

        proxy.cut()
        cut_at = time.time()
        await until(lambda: c.balanced(1), TTL_S + 15, "the other engine holding everything")
        print(f"partition: the other engine holds everything {time.time() - cut_at:.2f}s after the cut")
        got = await c.sink.wait_for(path, len(ids), timeout=delay + 15)
        await asyncio.sleep(1.0)       # a second sender would have sent by now too
        received = Counter(r.headers["X-Mittr-Event-ID"] for r in c.sink.at(path))
        assert set(received) == {str(i) for i in ids} and all(n == 1 for n in received.values()), \
            f"each held event sent exactly once, not also by the cut-off engine: {received}"
        assert min(r.at for r in got) > cut_at, "nothing of it went out before the cut"
        recorded = await c.db.fetchval("SELECT count(*) FROM delivery_attempts WHERE event_id = ANY($1)", ids)
        assert recorded == len(ids), "one attempt recorded per event"

        proxy.heal()
        held = await until(functools.partial(c.balanced, 2), 60, "the healed engine taking a share again")
        assert member in held
        print(f"partition healed: the engine is back with {held[member]} after {time.time() - cut_at:.2f}s")
        status, ev = await c.api.call("POST", "/api/v1/events", {"eventType": event_type, "payload": {"n": "after"}},
                                      {"X-Idempotency-Key": "cut-after"})
        assert status == 201
        await c.api.wait_event(ev["id"], {"delivered"}, timeout=20)
        again = await c.db.fetchval("SELECT count(*) FROM delivery_attempts WHERE event_id = ANY($1)", ids)
        assert again == len(ids), "the healed engine recorded nothing for the work it was fenced from"
    finally:
        for p in c.procs[2:]:
            await p.stop(10)
        await proxy.stop()
