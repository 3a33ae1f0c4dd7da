"""Issue 17's scale-out test with real network namespaces: three engine "hosts" and one API host,
each in its own namespace. Every engine host has two links, as a server with a private database
network and a public one would: a database link (a veth pair to this namespace, where a TCP bridge
on the gateway address forwards to PostgreSQL, since the test server listens on a Unix socket) and a
web link carrying its default route, through which it reaches the receiver. Under a steady load:
one engine, then a second and a third join (every host delivers, from its own address); one host is
killed with SIGKILL; another is partitioned from PostgreSQL by taking its database link down while
its web link stays up, so the receiver sees whether it really stops sending once its lease may
have expired; then it is brought back (it sends nothing until it holds a lease again). The ledger
and FIFO checks are those of tests/e2e/test_membership.py, which runs the same story on 127.0.0.1
with a TCP proxy for the partition; this module skips, with the reason, where `ip netns` is
unavailable (it needs root and iproute2)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest

from tests.conftest import _create_db, _drop_db
from tests.e2e.test_membership import (
    ENDPOINTS,
    ENV,
    TTL_S,
    Cluster,
    Load,
    Proc,
    check_fifo,
    check_ledger,
    cli,
    hold_delayed,
    make_endpoints,
    run_cli,
    until,
)
from tests.support.pg import with_database
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink
from tests.support.tcp_proxy import TcpProxy, postgres_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

NET = f"10.{200 + os.getpid() % 50}"  # host i's database link: gateway NET.i.1 (here), address NET.i.2
WEB = f"10.{150 + os.getpid() % 50}"  # host i's web link: gateway WEB.i.1 (here), address WEB.i.2
TAG = f"m{os.getpid() % 100000}"      # names unique per test process (interface names: 15 characters)
API_PORT = 8080


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "`ip netns` needs root"
    probe = f"{TAG}-probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def link(ns: str, ours: str, theirs: str, net: str) -> None:
    """A veth pair: `ours` here with net.1, `theirs` in the namespace with net.2 (a /24)."""
    ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
    ip("link", "set", theirs, "netns", ns)
    ip("addr", "add", f"{net}.1/24", "dev", ours)
    ip("link", "set", ours, "up")
    ip("addr", "add", f"{net}.2/24", "dev", theirs, ns=ns)
    ip("link", "set", theirs, "up", ns=ns)


@dataclass
class Host:
    index: int
    ns: str
    db_link: str         # our end of the database link; taking it down partitions the host from PostgreSQL
    web_link: str | None  # our end of the web link (engine hosts), the way to the receiver

    @property
    def gateway(self) -> str:
        """Where the host reaches PostgreSQL (the bridge listens here)."""
        return f"{NET}.{self.index}.1"

    @property
    def address(self) -> str:
        """The host's address on the database link (the API host listens on it)."""
        return f"{NET}.{self.index}.2"

    @property
    def web_address(self) -> str:
        """Where the host's deliveries come from."""
        return f"{WEB}.{self.index}.2"

    @classmethod
    def named(cls, index: int, web: bool) -> Host:
        return cls(index, f"{TAG}-h{index}", f"{TAG}d{index}", f"{TAG}w{index}" if web else None)

    def create(self) -> None:
        self.remove()          # what a killed earlier run of the same names may have left behind
        ip("netns", "add", self.ns)
        ip("link", "set", "lo", "up", ns=self.ns)
        link(self.ns, self.db_link, f"{TAG}D{self.index}", f"{NET}.{self.index}")
        if self.web_link is not None:
            link(self.ns, self.web_link, f"{TAG}W{self.index}", f"{WEB}.{self.index}")
            ip("route", "add", "default", "via", f"{WEB}.{self.index}.1", ns=self.ns)

    def run(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]

    def cut(self) -> None:
        ip("link", "set", self.db_link, "down")

    def heal(self) -> None:
        ip("link", "set", self.db_link, "up")

    def remove(self) -> None:
        ip("netns", "del", self.ns, check=False)        # takes the veth pairs with it
        for ours in (self.db_link, self.web_link):
            if ours is not None:
                ip("link", "del", ours, check=False)


@dataclass
class NetCluster:
    c: Cluster
    hosts: list[Host]
    urls: list[str]      # host i's DATABASE_URL (through the bridge on its gateway)

    async def engine(self, i: int) -> Proc:
        proc = await Proc(self.hosts[i].run(*cli("engine", "--shards", "1")),
                          {**self.c.env, "DATABASE_URL": self.urls[i]}).start()
        self.c.procs.append(proc)
        return proc

    async def member_of(self, proc: Proc) -> str:
        assert proc.proc is not None
        got = await until(lambda: self.c.db.fetchval("SELECT id FROM engine_members WHERE pid = $1", proc.proc.pid),
                          30, "the engine's member row")
        return str(got)


def dump_stacks(hosts: list[Host]) -> None:
    """Where every process of every host is (py-spy, when installed), for a failure's diagnosis."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return
    for host in hosts:
        pids = ip("netns", "pids", host.ns, check=False).stdout.split()
        for pid in pids:
            got = subprocess.run([spy, "dump", "--pid", pid], capture_output=True, text=True, timeout=30, check=False)
            print(f"--- {host.ns} pid {pid}\n{got.stdout[-4000:]}{got.stderr[-500:]}")


@pytest.fixture
async def netcluster(pg_admin_url: str, template_db: str) -> AsyncIterator[NetCluster]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"{reason}; tests/e2e/test_membership.py runs the same on 127.0.0.1 (partition by TCP proxy)")
    name = await _create_db(pg_admin_url, template_db)
    url = with_database(pg_admin_url, name)
    env = MittrServer(url, env_overrides=ENV).environment()
    hosts: list[Host] = []
    proxies: list[TcpProxy] = []
    procs: list[Proc] = []
    session = aiohttp.ClientSession()
    db = await asyncpg.connect(url)
    sink: Sink | None = None
    try:
        urls = []
        for i in range(4):          # 0: the API host; 1-3: engine hosts
            hosts.append(Host.named(i, web=i > 0))     # listed first: removed at the end even if half made
            hosts[i].create()
            proxy, through = await postgres_proxy(url, bind=hosts[i].gateway)
            proxies.append(proxy)
            urls.append(through)
        sink = await Sink(host=f"{WEB}.1.1").start()    # here: every engine host reaches it over its web link
        key = json.loads(await run_cli(env, "keys", "create", "--name", "netns", "--json"))["key"]
        procs.append(await Proc(hosts[0].run(*cli("api", "--host", hosts[0].address, "--port", str(API_PORT),
                                                  "--workers", "1")), {**env, "DATABASE_URL": urls[0]}).start())
        c = Cluster(url, env, [Api(f"http://{hosts[0].address}:{API_PORT}", key, session)], sink, db, procs)

        async def healthy() -> bool:
            try:
                return (await c.api.call("GET", "/health"))[0] == 200
            except aiohttp.ClientError:
                return False
        await until(healthy, 60, "the API host")
        yield NetCluster(c, hosts, urls)
    finally:
        for p in procs:
            await p.stop(10)
        for proxy in proxies:
            await proxy.stop()
        for host in hosts:
            host.remove()
        await db.close()
        await session.close()
        if sink is not None:
            await sink.stop()
        await _drop_db(pg_admin_url, name)


async def test_engine_hosts_join_die_partition_and_heal_in_namespaces(netcluster: NetCluster) -> None:
    n = netcluster
    parts = await make_endpoints(n.c)
    load = Load(n.c.apis)
    loader = asyncio.create_task(load.run())
    try:
        await story(n, load, loader, parts)
    except AssertionError:
        for proc in n.c.procs:         # what each host said last, for the diagnosis
            print(" ".join(proc.argv[4:7]), *proc.output[-40:], sep="\n    ")
        dump_stacks(n.hosts)
        raise
    finally:
        load.stopped = True
        await asyncio.gather(loader, return_exceptions=True)


async def hold_delayed_work(c: Cluster, member: str, parts: dict[str, int]) -> set[str]:
    """20 events due TTL + 4 s from now to an endpoint in `member`'s range, held by its shard."""
    lo, hi = (await c.holders())[member]
    kind = next(f"m.{i}" for i in range(ENDPOINTS) if lo <= parts[f"m{i}"] < hi)
    return set(await hold_delayed(c, member, kind, TTL_S + 4, "held"))


def duplicate_origins(c: Cluster, names: dict[str | None, str], phases: list[tuple[str, float]]) -> dict[str, int]:
    """For every delivery made again: who made the first one, and in which phase of the story."""
    first: dict[str, tuple[str | None, float]] = {}
    found: Counter[str] = Counter()
    for r in sorted(c.sink.received, key=lambda r: r.at):
        event = r.headers["X-Mittr-Event-ID"]
        if event not in first:
            first[event] = (r.remote, r.at)
            continue
        remote, at = first[event]
        phase = next(name for name, until_at in phases if at < until_at)
        found[f"{names.get(remote, remote)}, {phase}"] += 1
    return dict(found)


async def story(n: NetCluster, load: Load, loader: asyncio.Task[None], parts: dict[str, int]) -> None:
    """Joins, a kill, a partition and its heal under the load; then the ledger."""
    c, hosts = n.c, n.hosts
    t_start = time.monotonic()

    engines = {}
    for i in (1, 2, 3):
        joined_at = time.time()
        engines[i] = await n.engine(i)
        held = await until(functools.partial(c.balanced, i), 40, f"{i} members splitting the partitions")
        await until(functools.partial(c.all_deliver, list(held), joined_at), 30, f"all {i} members delivering")
        print(f"join {i}: balanced {time.time() - joined_at:.2f}s after the start of host {hosts[i].web_address}")
    members = {i: await n.member_of(engines[i]) for i in (1, 2, 3)}
    senders = {r.remote for r in c.sink.received}
    assert {hosts[i].web_address for i in (1, 2, 3)} <= senders, f"every host delivers from its own address: {senders}"

    # kill -9 host 2 (supervisor and shard): its range moves once its lease expires.
    killed_at = time.time()
    engines[2].kill9()
    await until(functools.partial(c.balanced, 2), TTL_S + 15, "two members holding everything")
    print(f"kill -9 host 2: ranges re-leased {time.time() - killed_at:.2f}s after the kill")

    # Work host 3 holds in memory, due only after its lease will have run out once it is cut off.
    held_ids = await hold_delayed_work(c, members[3], parts)

    # Partition host 3 from PostgreSQL by taking its database link down; its web link stays up, so
    # the receiver would see anything it still sends.
    hosts[3].cut()
    cut_at = time.time()
    held = await until(functools.partial(c.balanced, 1), TTL_S + 15, "host 1 holding everything")
    assert members[1] in held
    print(f"partition host 3: host 1 holds everything {time.time() - cut_at:.2f}s after the cut")
    await asyncio.sleep(1.0)
    hosts[3].heal()
    healed_at = time.time()

    async def holds_again() -> bool:
        return members[3] in await c.holders()
    await until(holds_again, 60, "the healed host holding a range again", interval=0.05)
    leased_at = time.time()
    held = await until(functools.partial(c.balanced, 2), 60, "the healed host taking a share again")
    rejoined_at = time.time()
    print(f"partition healed: host 3 holds a range {leased_at - healed_at:.2f}s after the heal, "
          f"balanced with {held[members[3]]} after {rejoined_at - healed_at:.2f}s")
    # Cut off, it stopped sending before its lease could have expired (its last renewal was sent
    # before the cut; it stops 10% of the TTL before that renewal runs out), and sent nothing more
    # until it held a lease again: whatever it held in memory was dropped, not sent. 1 s: a request
    # started just before the stop, on a loaded machine; 0.3 s: the lease poll's interval and the
    # receiver's clock against the database's.
    from_cut_off = [r for r in c.sink.received if r.remote == hosts[3].web_address]
    late = [r for r in from_cut_off if cut_at + TTL_S + 1.0 <= r.at < leased_at - 0.3]
    assert not late, (f"{len(late)} deliveries from the cut-off host after its lease ran out and before it held "
                      f"one again, {min(r.at for r in late) - cut_at:.2f}s after the cut at the earliest")
    print(f"partition: host 3's last delivery while cut off came "
          f"{max([r.at for r in from_cut_off if r.at < healed_at], default=cut_at) - cut_at:.2f}s after the cut")
    await until(functools.partial(c.all_deliver, [members[3]], rejoined_at), 30, "the healed host delivering")

    await asyncio.sleep(1.0)
    load.stopped = True
    await loader
    duplicates = await check_ledger(c, load.accepted, time.monotonic() - t_start, killed_at)
    # A request the killed host had already handed to its kernel still arrives just after the kill.
    origins = duplicate_origins(c, {hosts[i].web_address: f"host {i}" for i in (1, 2, 3)}, [
        ("before the kill", killed_at + 1.0), ("kill to cut", cut_at), ("cut to heal", healed_at),
        ("after the heal", 1e12)])
    print("duplicates by first sender and when it sent:", origins)
    await check_fifo(c, parts)
    held = [r for r in c.sink.received if r.headers["X-Mittr-Event-ID"] in held_ids]
    assert Counter(r.headers["X-Mittr-Event-ID"] for r in held) == dict.fromkeys(held_ids, 1), \
        "each event the cut-off host held was sent once"
    assert not [r for r in held if r.remote == hosts[3].web_address and r.at < leased_at - 0.3], \
        "not by the cut-off host while it was fenced (its web link was up all along)"
    # Only the two faults make deliveries again: what the killed host (before its death) and the
    # cut-off host (before its cut, or in the moment after it) had sent without recording it.
    # Joins, hand-overs, the take-overs and the heal make none. How many is what those two held
    # unrecorded when it happened (in flight, in the writer's queue, a backlog just claimed): at
    # most a few per cent of this load.
    assert set(origins) <= {"host 2, before the kill", "host 3, kill to cut", "host 3, cut to heal"}, origins
    joins = Counter(r.headers["X-Mittr-Event-ID"] for r in c.sink.received if r.at < killed_at)
    assert sum(joins.values()) == len(joins), "the joins' hand-overs sent nothing twice"
    assert duplicates <= len(load.accepted) // 20, duplicates
