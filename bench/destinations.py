"""Destination benchmark: `python -m bench.destinations`.

Starts Postgres, the API and a sink as bench.e2e does (its Stack), plus a moto S3 server, and uses
the machine's RabbitMQ (127.0.0.1:5672), NATS JetStream (127.0.0.1:4222) and Redis (127.0.0.1:6379)
under names unique to the run (a queue, a stream and subject, a stream key; all removed at the end).
One endpoint per kind: HTTP (the sink), filesystem storage, S3 storage, RabbitMQ, NATS and Redis.
For each kind in turn, with the engine stopped, `--events` events of that kind's type are ingested
(single POSTs: a batch holds direct deliveries only); then the engine drains them and is stopped
again, so no two kinds share the CPU.
A kind's rate is its delivered tasks over the time from its first recorded attempt to its last
delivery (tasks.delivered_at), read from Postgres once every task is delivered and its attempt
recorded. Each rate is printed with its ratio to HTTP delivery in the same run. `--rounds` repeats
the sequence (rates then sum deliveries and spans per kind), which evens out a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.clients import payload
from bench.e2e import Stack, build_parser, free_port, say

KINDS = ("http", "filesystem", "s3", "rabbitmq", "nats", "redis")
BROKERS = {"rabbitmq": 5672, "nats": 4222, "redis": 6379}
S3_KEY, S3_SECRET, BUCKET = "AKIDBENCH", "bench-secret-value", "mittr-bench"


@dataclass
class Tally:
    delivered: int = 0
    attempts: int = 0
    seconds: float = 0.0
    spans: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def endpoint_body(kind: str, run: str, stack: Stack, s3_url: str, events: int) -> dict[str, Any]:
    body: dict[str, Any] = {"eventTypes": [f"bench.{kind}"]}
    storage = {"batchWindowMs": 0}
    if kind == "http":
        body["url"] = f"http://127.0.0.1:{stack.sink_ports[0]}/hook"
    elif kind == "filesystem":
        body.update(deliveryMode="storage", storageConfig={"type": "filesystem", "directory": run, **storage})
    elif kind == "s3":
        body.update(deliveryMode="storage", storageConfig={
            "type": "s3", "bucket": BUCKET, "prefix": run, "endpointUrl": s3_url, "accessKeyId": S3_KEY,
            "secretAccessKey": S3_SECRET, **storage})
    elif kind == "rabbitmq":
        body.update(deliveryMode="broker", brokerConfig={
            "type": "rabbitmq", "url": "amqp://guest:guest@127.0.0.1:5672/", "routingKey": run})
    elif kind == "nats":
        body.update(deliveryMode="broker", brokerConfig={
            "type": "nats", "url": "nats://127.0.0.1:4222", "subject": f"{run}.events"})
    elif kind == "redis":
        body.update(deliveryMode="broker", brokerConfig={
            "type": "redis", "url": "redis://127.0.0.1:6379/0", "stream": run, "maxLen": events + 1000})
    return body


class Brokers:
    """The run's own queue, stream and stream key on the machine's brokers, removed at the end."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.undo: list[Any] = []

    async def setup(self, kinds: tuple[str, ...]) -> None:
        run = self.run
        if "rabbitmq" in kinds:
            import aio_pika

            conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
            channel = await conn.channel()
            queue = await channel.declare_queue(run, durable=False, auto_delete=False)

            async def drop_queue() -> None:
                await queue.delete(if_unused=False, if_empty=False)
                await conn.close()
            self.undo.append(drop_queue)
        if "nats" in kinds:
            import nats

            nc = await nats.connect("nats://127.0.0.1:4222")
            js = nc.jetstream()
            await js.add_stream(name=run, subjects=[f"{run}.>"])

            async def drop_stream() -> None:
                await js.delete_stream(run)
                await nc.close()
            self.undo.append(drop_stream)
        if "redis" in kinds:
            import redis.asyncio as redis

            client = redis.from_url("redis://127.0.0.1:6379/0")

            async def drop_key() -> None:
                await client.delete(run)
                await client.aclose()
            self.undo.append(drop_key)

    async def cleanup(self) -> None:
        for undo in reversed(self.undo):
            try:
                await undo()
            except Exception as exc:        # report, and still clean up the others
                say(f"cleanup failed: {type(exc).__name__}: {exc}")


def start_s3(stack: Stack) -> str:
    port = free_port()
    stack.spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    deadline = time.monotonic() + 30
    while not listening(port):
        if time.monotonic() > deadline:
            raise RuntimeError("the moto S3 server did not start; see moto.log")
        time.sleep(0.1)
    import boto3

    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=S3_KEY,
                 aws_secret_access_key=S3_SECRET).create_bucket(Bucket=BUCKET)
    return url


async def ingest(base: str, key: str, event_type: str, run: str, count: int, size: int) -> None:
    """Fan-out events are single POSTs (a batch holds direct deliveries only); 32 in flight."""
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    seqs = iter(range(count))
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=32)) as session:
        async def worker() -> None:
            for seq in seqs:
                body = orjson.dumps({"eventType": event_type, "payload": payload(seq, size)})
                async with session.post("/api/v1/events", data=body, headers={
                        **headers, "X-Idempotency-Key": f"{run}-{event_type}-{seq}"}) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"ingest refused: {resp.status} {(await resp.text())[:300]}")
        await asyncio.gather(*(worker() for _ in range(32)))


async def create_endpoint(base: str, key: str, body: dict[str, Any]) -> str:
    async with aiohttp.ClientSession() as s, s.post(f"{base}/api/v1/endpoints", json=body,
                                                    headers={"X-API-Key": key}) as resp:
        created = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"endpoint for {body['eventTypes']} refused: {created}")
        return str(created["id"])


async def drain(stack: Stack, pool: asyncpg.Pool, endpoint_id: uuid.UUID, total: int, timeout: float) -> None:
    """Run the engine until every task of the endpoint is delivered (each with its attempt)."""
    stack.start_engine()
    try:
        deadline = time.monotonic() + timeout
        while True:
            done = await pool.fetchval("SELECT count(*) FROM tasks WHERE endpoint_id = $1 AND status = 'delivered'",
                                       endpoint_id)
            if done >= total:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done}/{total} delivered within {timeout:.0f} s; see engine.log")
            await asyncio.sleep(0.1)
    finally:
        stack.stop("engine")


async def measure(pool: asyncpg.Pool, endpoint_id: uuid.UUID, since: Any) -> tuple[int, int, float]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM delivery_attempts WHERE endpoint_id = $1 AND attempted_at >= $2) AS attempts,"
        " (SELECT min(attempted_at) FROM delivery_attempts WHERE endpoint_id = $1 AND attempted_at >= $2) AS first,"
        " (SELECT count(*) FROM tasks WHERE endpoint_id = $1 AND delivered_at >= $2) AS delivered,"
        " (SELECT max(delivered_at) FROM tasks WHERE endpoint_id = $1 AND delivered_at >= $2) AS last",
        endpoint_id, since)
    return int(row["delivered"]), int(row["attempts"]), (row["last"] - row["first"]).total_seconds()


async def run(args: argparse.Namespace) -> dict[str, Tally]:
    kinds = tuple(k for k in args.kinds.split(",") if k)
    missing = [k for k in kinds if k in BROKERS and not listening(BROKERS[k])]
    if "http" not in kinds or any(k not in KINDS for k in kinds) or missing:
        raise SystemExit(f"--kinds must include http and be among {', '.join(KINDS)}; not reachable: {missing}")
    run_name = f"mittrbench{uuid.uuid4().hex[:10]}"
    tallies = {k: Tally() for k in kinds}
    with tempfile.TemporaryDirectory(prefix="mittr-bench-dest-") as tmp:
        stack = Stack(args, Path(tmp), Path(tmp))
        brokers = Brokers(run_name)
        try:
            await stack.start_database()
            stack.env["MITTR_ENGINE__STORAGE_ROOT"] = str(Path(tmp) / "storage")
            stack.start_sink()
            s3_url = start_s3(stack) if "s3" in kinds else ""
            await brokers.setup(kinds)
            key = stack.create_key()
            stack.start_api()
            base = f"http://127.0.0.1:{stack.api_port}"
            ids = {k: uuid.UUID(await create_endpoint(base, key, endpoint_body(
                k, run_name, stack, s3_url, args.events * args.rounds))) for k in kinds}
            pool = await asyncpg.create_pool(stack.db_url, min_size=1, max_size=2)
            try:
                for rnd in range(args.rounds):
                    for kind in kinds:
                        since = await pool.fetchval("SELECT now()")
                        await ingest(base, key, f"bench.{kind}", f"{run_name}-{rnd}", args.events,
                                     args.payload_bytes)
                        await drain(stack, pool, ids[kind], args.events * (rnd + 1), args.timeout)
                        delivered, attempts, span = await measure(pool, ids[kind], since)
                        t = tallies[kind]
                        t.delivered, t.attempts, t.seconds = t.delivered + delivered, t.attempts + attempts, \
                            t.seconds + span
                        t.spans.append(span)
                        say(f"round {rnd + 1} {kind}: {delivered} delivered ({attempts} attempts) in {span:.2f} s"
                            f" = {delivered / span if span > 0 else 0:,.0f}/s")
            finally:
                await pool.close()
        finally:
            await brokers.cleanup()
            stack.stop_all()
            await stack.drop_database()
    return tallies


def report(tallies: dict[str, Tally]) -> str:
    http = tallies["http"].per_s
    lines = ["| kind | delivered | attempts | seconds | delivered/s | ratio to HTTP |", "|---|---|---|---|---|---|"]
    for kind, t in tallies.items():
        ratio = t.per_s / http if http else 0.0
        lines.append(f"| {kind} | {t.delivered} | {t.attempts} | {t.seconds:.2f} | {t.per_s:,.0f} | {ratio:.2f} |")
    return "\n".join(lines)


def build() -> argparse.ArgumentParser:
    p = build_parser()
    p.prog = "python -m bench.destinations"
    p.set_defaults(events=10000, shards=2, timeout=600)
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, http first (default {','.join(KINDS)})")
    p.add_argument("--rounds", type=int, default=1, help="times the sequence of kinds is repeated (default 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build().parse_args(argv)
    import uvloop

    tallies = uvloop.run(run(args))
    print(report(tallies))
    return 0 if all(t.delivered == args.events * args.rounds for t in tallies.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
