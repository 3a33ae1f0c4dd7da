"""A shard that cannot record outcomes gives its range up instead of claiming on: the supervisor
starts it afresh, and once writes work again every accepted event is delivered and recorded."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e

SERVER_SHARDS = 1
SERVER_ENV = {"MITTR_ENGINE__LEASE_TTL_S": "3", "MITTR_ENGINE__LEASE_RENEW_S": "1",
              "MITTR_LOG__LEVEL": "error"}


async def test_a_shard_whose_writes_keep_failing_gives_its_lease_up(api: Api, server: MittrServer,
                                                                    sink: Sink) -> None:
    conn = await asyncpg.connect(server.database_url)
    try:
        await conn.execute("""
            CREATE FUNCTION refuse_attempts() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'attempts refused by the test' USING ERRCODE = '57P03'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON delivery_attempts
                FOR EACH ROW EXECUTE FUNCTION refuse_attempts();""")
        epoch = await conn.fetchval("SELECT max(epoch) FROM shard_leases")
        status, created = await api.call("POST", "/api/v1/events",
                                         {"destination": sink.url + "/w", "payload": {"n": 1}},
                                         {"X-Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, created
        await sink.wait_for("/w", 1)
        for _ in range(600):                  # the lease TTL (3 s) of failures, then a fresh shard
            if any("outcomes could not be recorded" in line for line in server.output):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(server.output[-20:])
        for _ in range(300):
            if await conn.fetchval("SELECT max(epoch) FROM shard_leases") != epoch:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the range was not taken over with a new epoch")
        await conn.execute("DROP TRIGGER refuse ON delivery_attempts")
        event = await api.wait_event(created["id"], {"delivered"}, timeout=30)
        assert [a["statusCode"] for a in event["deliveryAttempts"]][-1] == 200
    finally:
        await conn.close()
