"""Storage and broker destinations through a real `mittr serve`: a filesystem, a real S3-compatible
server (moto's, in this process), and real Redis, NATS JetStream and RabbitMQ servers. Each kind is
delivered with the signed X-Mittr-* headers and an attempt per event naming where it went; a
destination that is down fails attempts as `refused`, opens the breaker, and gets every event once
it is back (Redis and NATS are our own instances, started late; RabbitMQ is the machine's shared
one, so the endpoint first points at a port where nothing listens)."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.server import Api, free_port

pytestmark = pytest.mark.e2e

STORAGE_ROOT = tempfile.mkdtemp(prefix="mittr-storage-")
SERVER_SHARDS = 1
SERVER_ENV = {"MITTR_ENGINE__STORAGE_ROOT": STORAGE_ROOT}


async def make_endpoint(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    status, created = await api.call("POST", "/api/v1/endpoints", body)
    assert status == 201, created
    return created


async def send(api: Api, event_type: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        status, body = await api.call("POST", "/api/v1/events", {"eventType": event_type, "payload": {"i": i}},
                                      {"X-Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, body
        ids.append(body["id"])
    return ids


async def delivered(api: Api, ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    return [await api.wait_event(i, {"delivered"}, timeout=timeout) for i in ids]


async def wait_until(check: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def circuit_opened(api: Api, endpoint_id: str) -> bool:
    _, ep = await api.call("GET", f"/api/v1/endpoints/{endpoint_id}")
    return bool(ep["circuitState"] in ("open", "half_open"))


async def failures_seen(api: Api, endpoint_id: str, category: str) -> bool:
    _, health = await api.call("GET", f"/api/v1/analytics/failures?endpointId={endpoint_id}")
    return bool(health["categories"].get(category, 0) >= 1)


async def check_down_then_up(api: Api, endpoint: dict[str, Any], event_type: str,
                             bring_up: Any) -> list[dict[str, Any]]:
    """Events sent while the destination is down: refused attempts, breaker open, analytics show
    the failures; once it is up, every event is delivered."""
    ids = await send(api, event_type, 3)
    await wait_until(lambda: circuit_opened(api, endpoint["id"]))
    await wait_until(lambda: failures_seen(api, endpoint["id"], "refused"))
    await bring_up()
    events = await delivered(api, ids)
    failed = [a for ev in events for a in ev["deliveryAttempts"] if a["outcome"] != "success"]
    # The breaker opened after 2 failures: events behind them waited without an attempt.
    assert len(failed) >= 2 and all(a["errorCategory"] == "refused" for a in failed), failed
    _, health = await api.call("GET", f"/api/v1/analytics/endpoint-health?endpointId={endpoint['id']}")
    row = health["data"][0]
    assert row["successes"] >= 3 and row["attempts"] > row["successes"], row
    return events


def success(ev: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in ev["deliveryAttempts"] if a["outcome"] == "success")


# -- storage ---------------------------------------------------------------------------------------
async def test_filesystem_batches_records_under_the_layout(api: Api) -> None:
    ep = await make_endpoint(api, {"eventTypes": ["fs.*"], "deliveryMode": "storage", "storageConfig": {
        "type": "filesystem", "directory": "tenant-a", "prefix": "hooks", "gzip": True, "batchWindowMs": 300}})
    assert ep["url"].startswith("file:///tenant-a/hooks")
    ids = await send(api, "fs.created", 5)
    events = await delivered(api, ids)
    keys = {success(ev)["responseBody"] for ev in events}
    records = []
    for key in keys:
        assert key.startswith("hooks/") and key.endswith(".ndjson.gz"), key
        parts = key.split("/")
        assert len(parts) == 6 and len(parts[1]) == 4 and all(len(p) == 2 for p in parts[2:5]), key
        data = gzip.decompress((Path(STORAGE_ROOT) / "tenant-a" / key).read_bytes())
        records += [orjson.loads(line) for line in data.splitlines()]
    assert len(keys) < 5, "records are batched into objects"
    assert sorted(r["id"] for r in records) == sorted(ids)
    rec = records[0]
    assert rec["type"] == "fs.created" and "i" in rec["payload"] and rec["timestamp"]
    assert rec["headers"]["X-Mittr-Signature"].startswith("v1,") or rec["headers"]["X-Mittr-Signature"]
    assert rec["headers"]["X-Mittr-Event-ID"] == rec["id"]
    assert not list(Path(STORAGE_ROOT).rglob("*.tmp"))


async def test_storage_config_is_validated(api: Api) -> None:
    bad = [
        ({"type": "ftp"}, "storageConfig.type"),
        ({"type": "filesystem", "directory": "../etc"}, "storageConfig.directory"),
        ({"type": "filesystem", "directory": "/abs"}, "storageConfig.directory"),
        ({"type": "s3", "bucket": "b", "accessKeyId": "a", "secretAccessKey": "s"}, "storageConfig.bucket"),
        ({"type": "s3", "bucket": "bucket", "secretAccessKey": "s"}, "storageConfig.accessKeyId"),
        ({"type": "filesystem", "directory": "d", "batchMaxRecords": 0}, "storageConfig.batchMaxRecords"),
        (None, "storageConfig"),
    ]
    for cfg, field in bad:
        status, body = await api.call("POST", "/api/v1/endpoints", {
            "eventTypes": ["x"], "deliveryMode": "storage", "storageConfig": cfg})
        assert status == 400 and body["error"].startswith(field), (cfg, body)
    for cfg, field in [({"type": "kafka"}, "brokerConfig.type"),
                       ({"type": "redis", "url": "http://x", "stream": "s"}, "brokerConfig.url"),
                       ({"type": "nats", "url": "nats://127.0.0.1:1"}, "brokerConfig.subject")]:
        status, body = await api.call("POST", "/api/v1/endpoints", {
            "eventTypes": ["x"], "deliveryMode": "broker", "brokerConfig": cfg})
        assert status == 400 and body["error"].startswith(field), (cfg, body)
    status, body = await api.call("POST", "/api/v1/endpoints", {
        "url": "https://example.com/", "eventTypes": ["x"], "storageConfig": {"type": "filesystem", "directory": "d"}})
    assert status == 400 and body["error"].startswith("storageConfig"), body


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_s3_objects_and_sealed_credentials(api: Api, moto: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="AKID",
                      aws_secret_access_key="s3cr3t-value")
    s3.create_bucket(Bucket="mittr-hooks")
    ep = await make_endpoint(api, {"eventTypes": ["s3.*"], "deliveryMode": "storage", "storageConfig": {
        "type": "s3", "bucket": "mittr-hooks", "prefix": "events", "endpointUrl": moto,
        "accessKeyId": "AKID", "secretAccessKey": "s3cr3t-value", "batchWindowMs": 200}})
    assert "s3cr3t" not in orjson.dumps(ep).decode()
    _, shown = await api.call("GET", f"/api/v1/endpoints/{ep['id']}")
    assert "s3cr3t" not in orjson.dumps(shown).decode() and shown["storageConfig"]["bucket"] == "mittr-hooks"
    # A PATCH without the secret keeps the stored one.
    status, patched = await api.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"storageConfig": {
        "type": "s3", "bucket": "mittr-hooks", "prefix": "events", "endpointUrl": moto, "accessKeyId": "AKID",
        "batchWindowMs": 200}})
    assert status == 200, patched
    ids = await send(api, "s3.created", 4)
    events = await delivered(api, ids)
    keys = {success(ev)["responseBody"] for ev in events}
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="mittr-hooks")["Contents"]}
    assert keys <= listed and all(k.startswith("events/") and k.endswith(".ndjson") for k in keys)
    got = []
    for key in keys:
        body = s3.get_object(Bucket="mittr-hooks", Key=key)["Body"].read()
        got += [orjson.loads(line)["id"] for line in body.splitlines()]
    assert sorted(got) == sorted(ids)


# -- brokers ---------------------------------------------------------------------------------------
def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _start(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        if _listening(port):
            return proc
        await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not start")


@pytest.fixture
async def procs() -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.terminate()
        p.wait(10)


BROKER_EP = {"circuitThreshold": 2, "circuitResetMs": 500, "retryBackoffMs": 200, "retryBackoffMax": 1000,
             "maxRetries": 25}


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_redis_stream_down_then_up(api: Api, procs: list[subprocess.Popen[bytes]]) -> None:
    import redis.asyncio as redis

    port = free_port()
    ep = await make_endpoint(api, {"eventTypes": ["rd.*"], "deliveryMode": "broker", **BROKER_EP, "brokerConfig": {
        "type": "redis", "url": f"redis://:pw-secret@127.0.0.1:{port}/0", "stream": "hooks", "maxLen": 1000}})
    assert "pw-secret" not in orjson.dumps(ep).decode() and "***" in ep["brokerConfig"]["url"]
    workdir = tempfile.mkdtemp(prefix="mittr-redis-")

    async def up() -> None:
        procs.append(await _start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--requirepass", "pw-secret", "--dir", workdir], port))

    events = await check_down_then_up(api, ep, "rd.created", up)
    client = redis.from_url(f"redis://:pw-secret@127.0.0.1:{port}/0")
    entries = await client.xrange("hooks")
    await client.aclose()
    by_event = {e[1][b"event_id"].decode(): e for e in entries}
    for ev in events:
        entry = by_event[ev["id"]]
        assert success(ev)["responseBody"] == entry[0].decode()
        headers = orjson.loads(entry[1][b"headers"])
        assert headers["X-Mittr-Event-ID"] == ev["id"] and headers["X-Mittr-Signature"]
        assert orjson.loads(entry[1][b"payload"])["i"] in range(3)


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed")
async def test_nats_jetstream_down_then_up(api: Api, procs: list[subprocess.Popen[bytes]]) -> None:
    import nats

    port = free_port()
    ep = await make_endpoint(api, {"eventTypes": ["nt.*"], "deliveryMode": "broker", **BROKER_EP, "brokerConfig": {
        "type": "nats", "url": f"nats://127.0.0.1:{port}", "subject": "hooks.created"}})
    store = tempfile.mkdtemp(prefix="mittr-nats-")

    async def up() -> None:
        procs.append(await _start(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store], port))
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        await nc.jetstream().add_stream(name="HOOKS", subjects=["hooks.>"])
        await nc.close()

    events = await check_down_then_up(api, ep, "nt.created", up)
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    seen = {}
    for ev in events:
        stream, seq = success(ev)["responseBody"].split(":")
        msg = await js.get_msg(stream, int(seq))
        assert msg.headers is not None
        seen[msg.headers["X-Mittr-Event-ID"]] = msg
        assert msg.headers["X-Mittr-Signature"]
    await nc.close()
    assert set(seen) == {ev["id"] for ev in events}


def _rabbit_up() -> bool:
    return _listening(5672)


@pytest.mark.skipif(not _rabbit_up(), reason="no RabbitMQ on 127.0.0.1:5672")
async def test_rabbitmq_confirms_down_then_up(api: Api) -> None:
    import aio_pika

    queue_name = f"mittr-test-{uuid.uuid4().hex[:8]}"
    conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await conn.channel()
    queue = await channel.declare_queue(queue_name, auto_delete=False, durable=False)
    try:
        dead = free_port()
        ep = await make_endpoint(api, {"eventTypes": ["rb.*"], "deliveryMode": "broker", **BROKER_EP,
                                       "brokerConfig": {"type": "rabbitmq", "url": f"amqp://guest:guest@127.0.0.1:{dead}/",
                                                        "routingKey": queue_name}})

        async def up() -> None:
            status, body = await api.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"brokerConfig": {
                "type": "rabbitmq", "url": "amqp://guest:guest@127.0.0.1:5672/", "routingKey": queue_name}})
            assert status == 200, body

        events = await check_down_then_up(api, ep, "rb.created", up)
        got = {}
        for _ in range(len(events)):
            msg = await queue.get(timeout=10)
            assert msg is not None
            await msg.ack()
            got[msg.message_id] = msg
        assert set(got) == {ev["id"] for ev in events}
        msg = next(iter(got.values()))
        assert msg.headers["X-Mittr-Signature"] and orjson.loads(msg.body)["i"] in range(3)
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await conn.close()


