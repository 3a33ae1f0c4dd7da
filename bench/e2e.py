"""End-to-end benchmark: `python -m bench.e2e` (or `mittr bench`).

Starts Postgres (embedded in a temporary directory, or a fresh database on `DATABASE_URL`'s server),
a sink in its own process, the API (`mittr api`) and, after ingest, the engine (`mittr engine`), so
that ingest and delivery are each measured without the other competing for the CPU:

1. ingest `--events` events by single POSTs and/or by batches of 100 (accepted events/s);
2. start `--shards` shards and drain that backlog (delivered events/s; shard RSS start/middle/end);
3. with the engine running, send `--latency-events` single events one at a time per client slot and
   measure accept -> sink receipt latency;
4. stop everything but the sink and measure the raw ceiling: per shard, a bare asyncio-protocol
   client writing prebuilt signed requests with the engine's concurrency straight to the sink; then
   the aiohttp reference, the same with a bare aiohttp client;
5. check the ledger: accepted == events == delivered (+ failed + dead + still queued/delivering, all
   0) and attempts recorded == requests the sink received, or exit 1.

The drain also reports CPU microseconds per delivered event (API + shards + Postgres of this run),
WAL bytes, tuples inserted/updated (HOT or not) and index bytes per delivered event, and the
heaviest statements (pg_stat_statements, loaded on the embedded server); each ingest phase reports
its own heaviest statements too (how single ingest's re-planning on every call was found).

Writes results.json, results.md and chart.png to `--out` (default bench-results/<timestamp>/).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench import clients, report

PER_ENDPOINT = 64
OPEN_TASKS = "SELECT EXISTS (SELECT 1 FROM tasks WHERE status IN ('queued', 'delivering', 'failed'))"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.e2e", description="Mittr end-to-end benchmark.")
    p.add_argument("--events", type=int, default=20000, help="events ingested per mode (default 20000)")
    p.add_argument("--payload-bytes", type=int, default=1024, help="payload size (default 1024)")
    p.add_argument("--shards", type=int, default=2, help="engine shards (default 2)")
    p.add_argument("--engines", type=int, default=1,
                   help="`mittr engine` processes started together, each with --shards shards; they share the "
                        "partitions by membership (default 1)")
    p.add_argument("--endpoints", type=int, default=16, help="distinct destinations (sink ports, default 16)")
    p.add_argument("--sink-latency-ms", type=float, default=0.0, help="sink answer delay (default 0)")
    p.add_argument("--failure-rate", type=float, default=0.0, help="share of 500 answers (default 0)")
    p.add_argument("--mode", choices=("single", "batch", "both"), default="both", help="ingest mode(s)")
    p.add_argument("--workers", type=int, default=2, help="API worker processes (default 2)")
    p.add_argument("--clients", type=int, default=2, help="ingest client processes (default 2)")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight per ingest client")
    p.add_argument("--latency-events", type=int, default=2000, help="events of the latency phase")
    p.add_argument("--ceiling-events", type=int, default=0, help="requests of the ceiling (default: backlog)")
    p.add_argument("--typed", action="store_true",
                   help="single ingest sends typed events (eventType bench.t<i>, one endpoint subscribed per sink "
                        "port) instead of direct ones")
    p.add_argument("--floor-events", type=int, default=-1,
                   help="single POSTs to the same-stack floor (bare BlackSheep + asyncpg insert) after single "
                        "ingest (default: --events; 0: skip)")
    p.add_argument("--max-in-flight", type=int, default=512, help="engine.max_in_flight per shard")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed for the drain")
    p.add_argument("--out", default="", help="output folder (default bench-results/<timestamp>)")
    p.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE",
                   help="a server setting for the embedded PostgreSQL of this run, on top of Mittr's "
                        "(repeatable; e.g. --pg-set max_wal_size=8GB), to compare settings A/B")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _role(cmdline: str, comm: str) -> str | None:
    if comm.startswith("postgres") or "/postgres" in cmdline.split(" ", 1)[0]:
        return "postgres"
    for needle, role in (("engine.shard", "shards"), ("bench.floor", "floor"), ("granian", "api"),
                         ("bench.sink", "sink")):
        if needle in cmdline:
            return role
    return None


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return out


def descendants(roots: set[int]) -> set[int]:
    """The roots and every process below them: only this run's processes are counted, never another
    session's Postgres, API or shards on the same machine."""
    parents = _parents()
    found = set(r for r in roots if r in parents)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


ROOTS: set[int] = set()   # this run's process roots (spawned processes, the embedded postmaster)


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by every process of this run of a role we know (shards, api, postgres, ...)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for pid in descendants(ROOTS):
        entry = Path(f"/proc/{pid}")
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1: stat.rfind(")")]
        role = _role(cmdline, comm)
        if role is not None:
            fields = stat.rsplit(")", 1)[1].split()
            out[pid] = (role, (int(fields[11]) + int(fields[12])) / tick)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)   # load generators, once their pool is reaped
    out[-1] = ("clients", done.ru_utime + done.ru_stime)
    return out


def cpu_seconds(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds used per role between two snapshots."""
    used: dict[str, float] = {}
    for pid, (role, cpu) in after.items():
        used[role] = used.get(role, 0.0) + cpu - before.get(pid, (role, 0.0))[1]
    return used


def cpu_share(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
              seconds: float) -> dict[str, float]:
    """Cores used per role between two snapshots (1.0 = one core busy the whole time)."""
    used = cpu_seconds(before, after)
    return {role: round(v / seconds, 2) for role, v in sorted(used.items())} if seconds > 0 else {}


class Stack:
    """The processes of one run; everything started here is stopped here."""

    def __init__(self, args: argparse.Namespace, workdir: Path, logdir: Path) -> None:
        self.args, self.workdir, self.logdir = args, workdir, logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg: Any = None
        self.admin_url = ""
        self.db_name = f"mittr_bench_{uuid.uuid4().hex[:8]}"
        self.db_url = ""
        self.sink_ports = [free_port() for _ in range(args.endpoints)]
        self.api_port = free_port()
        self.env = dict(os.environ)

    # -- processes -------------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], ready: str | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE if ready else log, stderr=log, env=self.env,
                                start_new_session=True)
        log.close()                  # the child has its own copy
        self.procs[name] = proc
        ROOTS.add(proc.pid)
        if ready:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            if ready not in line:
                raise RuntimeError(f"{name} did not start: {line}")
        return proc

    def stop(self, name: str, timeout: float = 30) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()      # the readiness pipe
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    async def drop_database(self) -> None:
        """On a server of yours (DATABASE_URL) the run's database goes when the run ends."""
        if self.pg is None and self.db_url:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            finally:
                await conn.close()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, 20)
        if self.pg is not None:
            self.pg.stop(mode="immediate")
            shutil.rmtree(self.workdir / "pg", ignore_errors=True)

    # -- setup -----------------------------------------------------------------------------------
    async def start_database(self) -> None:
        if os.environ.get("DATABASE_URL"):
            self.admin_url = os.environ["DATABASE_URL"]
        else:
            from control.store.pgserver import EmbeddedPostgres

            os.chmod(self.workdir, 0o755)
            self.pg = EmbeddedPostgres(self.workdir / "pg" / "pgdata")
            self.pg.initialize()
            with (self.pg.data_dir / "postgresql.auto.conf").open("a") as fh:
                # Statement statistics for the write-amplification figures (bench only).
                fh.write("shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n")
                for setting in self.args.pg_set:
                    name, _, value = setting.partition("=")
                    fh.write(f"{name.strip()} = '{value.strip()}'\n")
            self.pg.start()
            self.admin_url = str(self.pg.url)
            ROOTS.add(int((self.pg.data_dir / "postmaster.pid").read_text().split()[0]))
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await conn.close()
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.admin_url)
        self.db_url = urlunsplit((parts.scheme, parts.netloc, "/" + self.db_name, parts.query, parts.fragment))
        self.env.update({
            "DATABASE_URL": self.db_url,
            "MITTR_ENGINE__ALLOW_PRIVATE_NETWORKS": "true",
            "MITTR_ENGINE__MAX_IN_FLIGHT": str(self.args.max_in_flight),
            "MITTR_API__DEFAULT_RATE_LIMIT": "0",
            "MITTR_LOG__LEVEL": "warning",
            "MITTR_SECURITY__ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "XDG_RUNTIME_DIR": self.env.get("XDG_RUNTIME_DIR", tempfile.gettempdir()),
        })

    def create_key(self) -> str:
        out = subprocess.run([sys.executable, "-m", "control.cli", "keys", "create", "--new-client", "bench",
                              "--name", "bench", "--json"], env=self.env, check=True, capture_output=True)
        return str(orjson.loads(out.stdout)["key"])

    def start_sink(self) -> None:
        a = self.args
        self.spawn("sink", [sys.executable, "-m", "bench.sink", "--ports", ",".join(map(str, self.sink_ports)),
                            "--sink-latency-ms", str(a.sink_latency_ms), "--failure-rate", str(a.failure_rate)],
                   ready="sink ready")

    def start_api(self) -> None:
        self.spawn("api", [sys.executable, "-m", "control.cli", "api", "--host", "127.0.0.1",
                           "--port", str(self.api_port), "--workers", str(self.args.workers)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the API did not become healthy; see api.log")

    def start_engine(self) -> None:
        for i in range(self.args.engines):
            self.spawn("engine" if i == 0 else f"engine-{i + 1}",
                       [sys.executable, "-m", "control.cli", "engine", "--shards", str(self.args.shards)])

    def engines(self) -> list[str]:
        return [name for name in self.procs if name == "engine" or name.startswith("engine-")]

    def shard_pids(self) -> list[int]:
        return sorted(pid for name in self.engines() for pid in children_of(self.procs[name].pid))

    def sink_stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.sink_ports[0]}/__{'reset' if reset else 'stats'}"
        req = urllib.request.Request(url, method="POST" if reset else "GET", data=b"" if reset else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return dict(orjson.loads(resp.read())) if not reset else {}


def subscribe(stack: Stack, key: str) -> None:
    """One endpoint per sink port, subscribed to event type bench.t<i> (for --typed)."""
    for i, port in enumerate(stack.sink_ports):
        req = urllib.request.Request(
            f"http://127.0.0.1:{stack.api_port}/api/v1/endpoints", method="POST",
            data=orjson.dumps({"url": f"http://127.0.0.1:{port}/hook", "eventTypes": [f"bench.t{i}"]}),
            headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            if resp.status != 201:
                raise RuntimeError(f"could not create endpoint {i}: {resp.status}")


async def task_counts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status::text AS status, count(*) AS n FROM tasks GROUP BY 1")
    return {r["status"]: int(r["n"]) for r in rows}


async def run_clients(fn: Any, jobs: list[tuple[Any, ...]], progress: Any) -> list[clients.LoadResult]:
    """Run load generators in spawned processes, printing a progress line every second."""
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=get_context("spawn")) as pool:
        futures = [loop.run_in_executor(pool, fn, *job) for job in jobs]
        done = asyncio.gather(*futures)
        while not done.done():
            await asyncio.wait([done], timeout=1.0)
            if not done.done():
                say(await progress())
        return list(done.result())


def rate(results: list[clients.LoadResult]) -> tuple[int, int, float]:
    accepted = sum(r.accepted for r in results)
    errors = sum(r.errors for r in results)
    span = max(r.ended for r in results) - min(r.started for r in results)
    return accepted, errors, accepted / span if span > 0 else 0.0


def split(total: int, parts: int, step: int) -> list[tuple[int, int]]:
    chunk = math.ceil(total / parts / step) * step
    return [(i * chunk, min(total, (i + 1) * chunk)) for i in range(parts) if i * chunk < total]


async def ingest_phase(stack: Stack, pool: asyncpg.Pool, key: str, batch: bool, offset: int,
                       results: dict[str, Any]) -> int:
    a = stack.args
    name = "batch" if batch else "single"
    run = f"bench-{uuid.uuid4().hex[:8]}"
    base = f"http://127.0.0.1:{stack.api_port}"
    typed = 0 if batch or not a.typed else len(stack.sink_ports)
    jobs = [(base, key, run, offset + lo, offset + hi, stack.sink_ports, a.payload_bytes, batch,
             max(1, a.concurrency // 4) if batch else a.concurrency, typed)
            for lo, hi in split(a.events, a.clients, clients.BATCH if batch else 1)]
    say(f"ingest ({name}): {a.events} events, {len(jobs)} client processes")

    async def progress() -> str:
        # The statistics' insert counter, not count(*): a full scan every second of a table growing
        # to a million rows (2 GB at fillfactor 50) is Postgres CPU the ingest itself would pay for.
        n = await pool.fetchval("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'events'")
        return f"  ingest ({name}): about {n} events stored (all phases so far)"

    await statements(pool, reset=True)
    cpu0, t0 = cpu_snapshot(), time.time()
    out = await run_clients(clients.ingest, jobs, progress)
    accepted, errors, per_s = rate(out)
    cores = cpu_share(cpu0, cpu_snapshot(), time.time() - t0)
    results[f"statements_ingest_{name}"] = await statements(pool)
    say(f"ingest ({name}): {accepted} accepted, {errors} refused, {per_s:,.0f} events/s")
    if errors:
        say(f"  first refusal: {next(r.first_error for r in out if r.first_error)}")
    say(f"  cores used: {cores}")
    results[f"ingest_{name}"] = {"accepted": accepted, "errors": errors, "eventsPerSec": round(per_s, 1),
                                 "coresUsed": cores}
    return accepted


async def floor_phase(stack: Stack, key: str, results: dict[str, Any]) -> None:
    """Single POSTs with the same client, workers and server to a bare BlackSheep + asyncpg app that
    inserts one row (bench/floor.py): the floor of this stack, of which single ingest is a ratio."""
    a = stack.args
    count = a.events if a.floor_events < 0 else a.floor_events
    if count <= 0:
        return
    port = free_port()
    stack.spawn("floor", [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                          "--port", str(port), "--workers", str(a.workers), "--loop", "uvloop", "--log-level",
                          "warning", "--no-access-log", "bench.floor:app"])
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the floor app did not start; see floor.log") from None
            time.sleep(0.2)
    run = f"floor-{uuid.uuid4().hex[:8]}"
    jobs = [(f"http://127.0.0.1:{port}", key, run, lo, hi, stack.sink_ports, a.payload_bytes, False, a.concurrency)
            for lo, hi in split(count, a.clients, 1)]
    say(f"floor: {count} single POSTs to bare BlackSheep + asyncpg (one insert), {len(jobs)} client processes")

    async def progress() -> str:
        return "  floor: running"

    cpu0, t0 = cpu_snapshot(), time.time()
    out = await run_clients(clients.ingest, jobs, progress)
    accepted, errors, per_s = rate(out)
    cores = cpu_share(cpu0, cpu_snapshot(), time.time() - t0)
    stack.stop("floor")
    say(f"floor: {accepted} accepted, {errors} refused, {per_s:,.0f} requests/s; cores used: {cores}")
    results["floor"] = {"accepted": accepted, "errors": errors, "perSec": round(per_s, 1), "coresUsed": cores}
    single = results.get("ingest_single", {}).get("eventsPerSec")
    if single and per_s:
        results["singleOverFloor"] = round(single / per_s, 3)
        say(f"single ingest is {results['singleOverFloor']} of the floor")


WRITE_TABLES = ("tasks", "events", "delivery_attempts", "delivery_rollups")


async def write_stats(pool: asyncpg.Pool) -> dict[str, Any]:
    """What Postgres has written so far: the WAL position, and per hot table the tuples inserted and
    updated (HOT or not) and the bytes of its indexes (attempt partitions summed into their parent)."""
    lsn = await pool.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    tables: dict[str, dict[str, int]] = {}
    for _ in range(15):    # backends report table counters with a delay: read until they settle
        await asyncio.sleep(1.0)
        seen = await _table_counters(pool)
        if seen == tables:
            break
        tables = seen
    return {"walBytes": int(lsn), "tables": tables}


async def _table_counters(pool: asyncpg.Pool) -> dict[str, dict[str, int]]:
    rows = await pool.fetch(
        "SELECT CASE WHEN s.relname LIKE 'delivery_attempts%' THEN 'delivery_attempts' ELSE s.relname END AS t,"
        " sum(s.n_tup_ins) AS ins, sum(s.n_tup_upd) AS upd, sum(s.n_tup_hot_upd) AS hot,"
        " sum(pg_indexes_size(s.relid)) AS idx, sum(pg_relation_size(s.relid)) AS heap"
        " FROM pg_stat_user_tables s GROUP BY 1")
    return {r["t"]: {k: int(r[k] or 0) for k in ("ins", "upd", "hot", "idx", "heap")}
            for r in rows if r["t"] in WRITE_TABLES}


async def statements(pool: asyncpg.Pool, reset: bool = False) -> list[dict[str, Any]]:
    """pg_stat_statements' heaviest statements (empty when the extension is not loaded)."""
    try:
        await pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            await pool.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = await pool.fetch(
            "SELECT calls, rows, round(total_exec_time::numeric, 1) AS ms, wal_bytes, wal_fpi,"
            " shared_blks_dirtied AS dirtied, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT 12")
    except asyncpg.PostgresError:
        return []
    return [{k: (int(v) if k == "wal_bytes" else float(v) if k == "ms" else v) for k, v in dict(r).items()}
            for r in rows]


def amplification(before: dict[str, Any], after: dict[str, Any], delivered: int) -> dict[str, Any]:
    """Write amplification of the drain per delivered event."""
    per = max(delivered, 1)
    out: dict[str, Any] = {"walBytesPerDelivered": round((after["walBytes"] - before["walBytes"]) / per, 1)}
    for t, a in after["tables"].items():
        b = before["tables"].get(t, {"ins": 0, "upd": 0, "hot": 0, "idx": 0, "heap": 0})
        upd, hot = a["upd"] - b["upd"], a["hot"] - b["hot"]
        out[t] = {"insertsPerDelivered": round((a["ins"] - b["ins"]) / per, 2),
                  "updatesPerDelivered": round(upd / per, 2), "hotUpdatesPerDelivered": round(hot / per, 2),
                  "nonHotUpdatesPerDelivered": round((upd - hot) / per, 2),
                  "indexBytesPerDelivered": round((a["idx"] - b["idx"]) / per, 1),
                  "heapBytesPerDelivered": round((a["heap"] - b["heap"]) / per, 1)}
    return out


async def drain_phase(stack: Stack, pool: asyncpg.Pool, backlog: int, results: dict[str, Any]) -> None:
    a = stack.args
    stack.sink_stats(reset=True)
    say(f"engine: {a.engines} process(es) of {a.shards} shard(s) draining a backlog of {backlog} events")
    writes0 = await write_stats(pool)
    await statements(pool, reset=True)
    started = time.time()
    cpu0 = cpu_snapshot()
    stack.start_engine()
    rss: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    deadline = time.monotonic() + a.timeout
    finished_at = 0.0
    steady: tuple[dict[int, tuple[str, float]], int] | None = None
    ticks = 0
    counts: dict[str, int] = {}
    while True:
        # Done is noticed within 0.1 s (a cheap EXISTS on the open-tasks index); the full counts and
        # a progress line come once a second.
        tick = time.monotonic() + 1.0
        while time.monotonic() < tick:
            await asyncio.sleep(0.1)
            if steady is None and stack.sink_stats()["ok"]:
                # The shards have started (imports, connections, leases): CPU from here is delivery's.
                steady = (cpu_snapshot(), (await task_counts(pool)).get("delivered", 0))
            if not await pool.fetchval(OPEN_TASKS):
                finished_at = time.time()
                break
        ticks += 1
        if finished_at or ticks % 10 == 1:
            # A full count reads every task: at a million rows that is Postgres CPU the drain would
            # pay for (45 s of it over a 1M drain when counted every second), so every 10 s only.
            counts = await task_counts(pool)
        sink = stack.sink_stats()
        pids = stack.shard_pids()
        sample = {"t": round(time.time() - started, 2), "delivered": counts.get("delivered", 0),
                  "sinkOk": sink["ok"], "rssKiB": [rss_kib(p) for p in pids]}
        rss.append(sample)
        timeline.append(sample)
        pending = sum(counts.get(s, 0) for s in ("queued", "delivering", "failed"))
        say(f"  drain: delivered {sample['delivered']}/{backlog}, sink {sink['ok']} ok {sink['failed']} failed, "
            f"pending {pending}, shard RSS MiB {[round(k / 1024) for k in sample['rssKiB']]}")
        if finished_at or pending == 0 or time.monotonic() > deadline:
            break
    done = finished_at or time.time()
    cpu1 = cpu_snapshot()
    cores = cpu_share(cpu0, cpu1, time.time() - started)
    spent = cpu_seconds(cpu0, cpu1)
    say(f"  cores used: {cores}")
    writes1 = await write_stats(pool)
    top = await statements(pool)
    sink = stack.sink_stats()
    counts = await task_counts(pool)
    pending = sum(counts.get(s, 0) for s in ("queued", "delivering", "failed"))
    first = sink["first"] or started
    delivered = counts.get("delivered", 0)
    span = done - first
    mid = rss[len(rss) // 2]["rssKiB"] if rss else []
    results["drain"] = {
        "backlog": backlog, "delivered": delivered, "seconds": round(span, 2),
        "deliveredPerSec": round(delivered / span, 1) if span > 0 else 0.0,
        "sinkPeakPerSec": max(sink["perSecond"].values(), default=0),
        "sinkRequests": sink["received"], "engineStartSeconds": round(first - started, 2),
        "shardRssMiB": {"start": [round(k / 1024, 1) for k in rss[0]["rssKiB"]] if rss else [],
                        "middle": [round(k / 1024, 1) for k in mid],
                        "end": [round(k / 1024, 1) for k in rss[-1]["rssKiB"]] if rss else []},
        "timedOut": pending > 0, "coresUsed": cores,
        # CPU of the API, the shards and Postgres (this run's processes only; the sink and the
        # harness excluded) per delivered event, from the engine's start to the end of the drain.
        "cpuUsPerDelivered": {role: round(spent.get(role, 0.0) * 1e6 / max(delivered, 1), 1)
                              for role in ("shards", "postgres", "api")},
        "postgresCounted": stack.pg is not None,
    }
    if steady is not None:
        # The same from the first delivery on: the shards' start-up (imports, pools) left out.
        after_first = cpu_seconds(steady[0], cpu1)
        n = max(delivered - steady[1], 1)
        results["drain"]["cpuUsPerDeliveredSteady"] = {role: round(after_first.get(role, 0.0) * 1e6 / n, 1)
                                                       for role in ("shards", "postgres", "api")}
        results["drain"]["cpuUsPerDeliveredSteady"]["total"] = round(
            sum(results["drain"]["cpuUsPerDeliveredSteady"].values()), 1)
    results["drain"]["cpuUsPerDelivered"]["total"] = round(sum(results["drain"]["cpuUsPerDelivered"].values()), 1)
    results["writeAmplification"] = amplification(writes0, writes1, delivered)
    results["statements"] = top
    results["timeline"] = timeline
    results["sinkPerSecond"] = sink["perSecond"]
    row = await pool.fetchrow(
        "SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY processing_overhead_us) AS p50,"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY processing_overhead_us) AS p99,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS d50 FROM delivery_attempts")
    results["processingOverheadUs"] = {"attempts": int(row["n"]), "p50": row["p50"], "p99": row["p99"]}
    results["drain"]["attemptDurationMsP50"] = row["d50"]
    say(f"drain: {delivered} delivered in {span:.1f} s = {results['drain']['deliveredPerSec']:,.0f}/s; "
        f"processingOverheadUs p50 {row['p50']} p99 {row['p99']}")
    say(f"  CPU us per delivered: {results['drain']['cpuUsPerDelivered']}; from the first delivery on: "
        f"{results['drain'].get('cpuUsPerDeliveredSteady')}")
    wa = results["writeAmplification"]
    say(f"  per delivered: WAL {wa['walBytesPerDelivered']} B; " + "; ".join(
        f"{t} ins {v['insertsPerDelivered']} upd {v['updatesPerDelivered']} (HOT {v['hotUpdatesPerDelivered']})"
        f" idx {v['indexBytesPerDelivered']} B" for t, v in wa.items() if isinstance(v, dict)))


async def latency_phase(stack: Stack, pool: asyncpg.Pool, key: str, offset: int, results: dict[str, Any]) -> int:
    a = stack.args
    if a.latency_events <= 0:
        return 0
    stack.sink_stats(reset=True)
    before = await task_counts(pool)
    say(f"latency: {a.latency_events} single events with the engine running (8 in flight)")
    job = (f"http://127.0.0.1:{stack.api_port}", key, f"lat-{uuid.uuid4().hex[:8]}", offset,
           offset + a.latency_events, stack.sink_ports, a.payload_bytes, False, 8)

    async def progress() -> str:
        return f"  latency: sink {stack.sink_stats()['ok']} received"

    out = await run_clients(clients.ingest, [job], progress)
    accepted = sum(r.accepted for r in out)
    target = before.get("delivered", 0) + accepted
    deadline = time.monotonic() + 60
    while (await task_counts(pool)).get("delivered", 0) < target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    sink = stack.sink_stats()
    results["latencySinkRequests"] = sink["received"]
    lat = sink["latenciesMs"]
    results["latencyMs"] = {"events": len(lat), "p50": round(pct(lat, 0.5), 2), "p95": round(pct(lat, 0.95), 2),
                            "p99": round(pct(lat, 0.99), 2)}
    results["latencySamplesMs"] = lat
    say(f"latency: p50 {pct(lat, 0.5):.1f} ms, p95 {pct(lat, 0.95):.1f} ms, p99 {pct(lat, 0.99):.1f} ms")
    return accepted


async def ceiling_phase(stack: Stack, count: int, results: dict[str, Any]) -> None:
    """Two clients on the same sink, one after the other: the raw ceiling (a bare asyncio protocol
    writing prebuilt requests; the machine's limit for this sink) and the aiohttp reference."""
    a = stack.args
    per_shard_targets = math.ceil(a.endpoints / a.shards)
    conc = min(a.max_in_flight, per_shard_targets * PER_ENDPOINT)
    for key, fn, what in (("ceiling", clients.raw_ceiling, "raw asyncio-protocol"),
                          ("aiohttpReference", clients.ceiling, "bare aiohttp")):
        stack.sink_stats(reset=True)
        jobs = [(stack.sink_ports, hi - lo, a.payload_bytes, conc) for lo, hi in split(count, a.shards, 1)]
        say(f"{key}: {count} {what} POSTs, {len(jobs)} process(es) x {conc} in flight, no Postgres")

        async def progress(key: str = key) -> str:
            return f"  {key}: sink {stack.sink_stats()['ok']} received"

        cpu0, t0 = cpu_snapshot(), time.time()
        out = await run_clients(fn, jobs, progress)
        ok, errors, per_s = rate(out)
        cores = cpu_share(cpu0, cpu_snapshot(), time.time() - t0)
        say(f"  cores used: {cores}")
        results[key] = {"requests": ok, "errors": errors, "perSec": round(per_s, 1), "processes": len(jobs),
                        "concurrencyPerProcess": conc, "coresUsed": cores, "client": what}
        say(f"{key}: {per_s:,.0f} requests/s")


async def ledger(pool: asyncpg.Pool, accepted: int, results: dict[str, Any]) -> bool:
    counts = await task_counts(pool)
    events = int(await pool.fetchval("SELECT count(*) FROM events"))
    attempts = int(await pool.fetchval("SELECT count(*) FROM delivery_attempts"))
    parts = {s: counts.get(s, 0) for s in ("delivered", "failed", "dead", "queued", "delivering")}
    total = sum(parts.values())
    # Void unless every accepted event was delivered and every request the sink saw is recorded.
    ok = accepted == total == events == parts["delivered"]
    sent = results.get("drain", {}).get("sinkRequests", 0) + results.get("latencySinkRequests", 0)
    ok = ok and attempts == sent
    results["ledger"] = {"accepted": accepted, "events": events, **parts, "sum": total,
                         "attemptsRecorded": attempts, "sinkRequests": sent, "holds": ok}
    say(f"attempts recorded {attempts}, requests the sink received {sent}"
        f"{'' if attempts == sent else ' (differ: see the log)'}")
    say(f"ledger: accepted {accepted} == delivered {parts['delivered']} + failed {parts['failed']} + dead "
        f"{parts['dead']} + queued {parts['queued']} + delivering {parts['delivering']} = {total}; "
        f"delivered == accepted and attempts == sink requests: {'HOLDS' if ok else 'BROKEN - run void'}")
    return ok


async def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"bench-results/{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="mittr-bench-"))
    stack = Stack(args, workdir, out)
    results: dict[str, Any] = {"command": " ".join(["python -m bench.e2e", *args.argv]),
                               "config": {k: v for k, v in vars(args).items() if k != "argv"},
                               "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "startedAt": datetime.now(UTC).isoformat()}
    try:
        await stack.start_database()
        say(f"postgres ready; database {stack.db_name}; process logs in {out}/")
        stack.start_sink()
        key = stack.create_key()
        stack.start_api()
        say(f"API on port {stack.api_port} ({args.workers} workers); sink on {len(stack.sink_ports)} ports")
        pool = await asyncpg.create_pool(stack.db_url, min_size=1, max_size=2)
        if args.typed:
            subscribe(stack, key)
        accepted = 0
        modes = ("single", "batch") if args.mode == "both" else (args.mode,)
        for mode in modes:
            accepted += await ingest_phase(stack, pool, key, mode == "batch", accepted, results)
            if mode == "single":
                await floor_phase(stack, key, results)
        if "ingest_single" in results and "ingest_batch" in results and results["ingest_single"]["eventsPerSec"]:
            results["batchOverSingle"] = round(results["ingest_batch"]["eventsPerSec"]
                                               / results["ingest_single"]["eventsPerSec"], 2)
        await drain_phase(stack, pool, accepted, results)
        accepted += await latency_phase(stack, pool, key, accepted + 10_000_000, results)
        holds = await ledger(pool, accepted, results)
        await pool.close()
        for name in stack.engines():
            stack.stop(name)
        stack.stop("api")
        await ceiling_phase(stack, args.ceiling_events or min(max(accepted, 10000), 200_000), results)
        ceiling_rate = results["ceiling"]["perSec"]
        results["deliveredOverCeiling"] = round(results["drain"]["deliveredPerSec"] / ceiling_rate, 3) \
            if ceiling_rate else None
        ref = results["aiohttpReference"]["perSec"]
        results["deliveredOverAiohttp"] = round(results["drain"]["deliveredPerSec"] / ref, 3) if ref else None
        say(f"delivered/s is {results['deliveredOverCeiling']} of the raw ceiling, "
            f"{results['deliveredOverAiohttp']} of the aiohttp reference")
    finally:
        for name in list(stack.procs):
            stack.stop(name, 20)
        await stack.drop_database()
        stack.stop_all()
    report.write(out, results)
    say(f"results in {out}/ (results.json, results.md, chart.png)")
    print((out / "results.md").read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if holds else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    import uvloop

    return uvloop.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
