"""One tenant, receiver or lost message must not stall a shard or strand a delivery: fair claims
behind a deep throttled backlog, a delivery that cannot even be prepared, a missed endpoint
notification, an endpoint deleted under an ingest, a replay or edit while an attempt is on the
wire, and an honest `delivering` status. Real `mittr serve`, real Postgres, real receivers."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import asyncpg
import pytest

from control.crypto import box_for
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e

SERVER_SHARDS = 1     # every endpoint on the one shard: the starvation below is within a shard
SERVER_ENV = {"MITTR_ENGINE__MAX_IN_FLIGHT_PER_ENDPOINT": "1"}
BACKLOG = 22_000      # more than the shard's whole buffer (engine.max_buffered = 20,000)


async def endpoint(api: Api, url: str, types: list[str], **extra: Any) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/v1/endpoints", {"url": url, "eventTypes": types, **extra})
    assert status == 201, body
    return body


async def send(api: Api, event_type: str, payload: Any) -> dict[str, Any]:
    status, created = await api.call("POST", "/api/v1/events", {"eventType": event_type, "payload": payload},
                                     {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, created
    return created


async def clone_event(server: MittrServer, event_id: str, copies: int) -> None:
    """`copies` more events just like this one, each with its queued delivery, in one statement
    (ingesting 22,000 fan-out events over HTTP would only slow the test down), then the wake-up."""
    conn = await asyncpg.connect(server.database_url)
    try:
        part = await conn.fetchval("""
            WITH made AS (
                INSERT INTO events (id, client_id, project_id, idempotency_key, event_type, destination, payload,
                                    headers, max_attempts, priority, status, task_count)
                SELECT gen_random_uuid(), e.client_id, e.project_id, e.idempotency_key || '-' || g, e.event_type,
                       e.destination, e.payload, e.headers, e.max_attempts, e.priority, 'queued', 1
                FROM events e, generate_series(1, $2) g WHERE e.id = $1
                RETURNING id)
            INSERT INTO tasks (id, event_id, client_id, endpoint_id, partition, status, max_attempts, priority,
                               next_attempt_at)
            SELECT gen_random_uuid(), made.id, t.client_id, t.endpoint_id, t.partition, 'queued', t.max_attempts,
                   t.priority, now()
            FROM made, tasks t WHERE t.event_id = $1
            RETURNING partition""", uuid.UUID(event_id), copies)
        await conn.execute("SELECT pg_notify('mittr_work', $1)", str(part))
    finally:
        await conn.close()


async def sql(server: MittrServer, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(server.database_url)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


async def test_fresh_endpoints_get_their_first_attempt_behind_a_deep_throttled_backlog(
        api: Api, server: MittrServer, sink: Sink) -> None:
    await endpoint(api, sink.url + "/throttled", ["hol.backlog"], rateLimitPerSec=1)
    first = await send(api, "hol.backlog", {"n": 0})
    await clone_event(server, first["id"], BACKLOG - 1)
    await sink.wait_for("/throttled", 2, timeout=20)       # the shard is working through the backlog
    fresh = [await endpoint(api, sink.url + f"/fresh{i}", [f"hol.fresh{i}"]) for i in range(8)]
    sent_at = time.time()
    await asyncio.gather(*[send(api, f"hol.fresh{i}", {"i": i}) for i in range(len(fresh))])
    delays = []
    for i in range(len(fresh)):
        [got] = await sink.wait_for(f"/fresh{i}", 1, timeout=15)
        delays.append(got.at - sent_at)
    print(f"first-attempt delay behind a {BACKLOG}-event throttled backlog: max {max(delays):.3f} s, "
          f"all {[round(d, 3) for d in delays]}")
    assert max(delays) < 5.0, delays
    held = await sql(server, "SELECT count(*) AS n FROM tasks WHERE claim_epoch IS NOT NULL")
    assert held[0]["n"] < 100, "the throttled backlog stays in Postgres, not in the shard's memory"


async def test_a_delivery_that_cannot_be_prepared_ends_as_a_failed_attempt_and_frees_its_slot(
        api: Api, server: MittrServer, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/sw", ["prep.x"], standardWebhooks=True, maxRetries=1,
                        signingSecret="whsec_" + "A" * 32)
    # A secret that passed an older validation: not base64 at all. Sealed as the server seals secrets.
    box = box_for(os.environ["MITTR_SECURITY__ENCRYPTION_KEY"])
    await sql(server, "UPDATE endpoints SET signing_secret = $2, updated_at = now() WHERE id = $1",
              uuid.UUID(ep["id"]), box.seal("whsec_!!not*base64!!"))
    await asyncio.sleep(6)        # reconcile picks the change up (no NOTIFY was sent)
    broken = await send(api, "prep.x", {"n": 1})
    dead = await api.wait_event(broken["id"], {"dead"}, timeout=20)
    [attempt] = dead["deliveryAttempts"]
    assert attempt["errorCategory"] == "other" and "could not prepare the request" in attempt["error"], attempt
    assert sink.at("/sw") == []
    # The endpoint's single in-flight slot was given back: once the secret is fixed, it delivers.
    status, body = await api.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"signingSecret": "whsec_" + "B" * 32})
    assert status == 200, body
    fixed = await send(api, "prep.x", {"n": 2})
    await api.wait_event(fixed["id"], {"delivered"}, timeout=20)


async def test_a_resume_whose_notification_was_lost_is_reconciled(api: Api, server: MittrServer, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/resume", ["rec.x"])
    status, _ = await api.call("POST", f"/api/v1/endpoints/{ep['id']}/pause")
    assert status == 200
    await asyncio.sleep(0.5)          # the shard heard about the pause
    # Resumed behind the shard's back: the row changes, no NOTIFY is sent.
    await sql(server, "UPDATE endpoints SET status = 'active', updated_at = now() WHERE id = $1", uuid.UUID(ep["id"]))
    ev = await send(api, "rec.x", {"n": 1})
    await api.wait_event(ev["id"], {"delivered"}, timeout=20)


async def test_work_of_an_endpoint_deleted_under_an_ingest_ends_dead_with_the_reason(
        api: Api, server: MittrServer, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/gone", ["del.x"])
    status, _ = await api.call("POST", f"/api/v1/endpoints/{ep['id']}/pause")
    assert status == 200
    ev = await send(api, "del.x", {"n": 1})
    await asyncio.sleep(0.5)
    # The race: the endpoint is deleted (and active again) while this delivery exists, and the
    # DELETE's clean-up of its tasks did not see it.
    await sql(server, "UPDATE endpoints SET deleted_at = now(), status = 'active', updated_at = now() WHERE id = $1",
              uuid.UUID(ep["id"]))
    await sql(server, "SELECT pg_notify('mittr_work', partition::text) FROM endpoints WHERE id = $1",
              uuid.UUID(ep["id"]))
    dead = await api.wait_event(ev["id"], {"dead"}, timeout=20)
    assert dead["deliveryAttempts"] == [] and sink.at("/gone") == []
    [row] = await sql(server, "SELECT last_error, claim_epoch FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    assert row["last_error"] == "endpoint deleted" and row["claim_epoch"] is None


@pytest.mark.parametrize("action", ["replay", "edit"])
async def test_replay_or_edit_during_an_in_flight_retry_wins(api: Api, server: MittrServer, sink: Sink,
                                                            action: str) -> None:
    path = f"/inflight-{action}"
    sink.script(path, lambda n: 500 if n == 1 else (500, {}, 2.0) if n == 2 else 200)
    await endpoint(api, sink.url + path, [f"fly.{action}"], retryBackoffMs=1000, retryBackoffMult=1.0,
                   maxRetries=9)
    ev = await send(api, f"fly.{action}", {"v": 1})
    await sink.wait_for(path, 2, timeout=15)                 # the second attempt is on the wire, slow
    if action == "replay":
        status, body = await api.call("POST", f"/api/v1/events/{ev['id']}/replay")
    else:
        status, body = await api.call("PATCH", f"/api/v1/events/{ev['id']}", {"payload": {"v": 2}})
    assert status == 200, body
    third = (await sink.wait_for(path, 3, timeout=15))[2]
    done = await api.wait_event(ev["id"], {"delivered"}, timeout=20)
    if action == "replay":
        assert third.headers["X-Mittr-Attempt"] == "1", "the replay's reset counter wins"
        assert done["attempts"] == 1, done
    else:
        assert third.body == b'{"v":2}', "the retry sends the edited payload"
        assert third.headers["X-Mittr-Attempt"] == "3" and done["attempts"] == 3, done


async def test_delivering_means_an_attempt_is_on_the_wire(api: Api, server: MittrServer, sink: Sink) -> None:
    sink.script("/slow", lambda n: (200, {}, 8.0))
    await endpoint(api, sink.url + "/slow", ["honest.slow"])
    await endpoint(api, sink.url + "/paced", ["honest.paced"], rateLimitPerSec=1)
    slow = await send(api, "honest.slow", {"n": 1})
    paced = [await send(api, "honest.paced", {"n": i}) for i in range(4)]
    [received] = await sink.wait_for("/slow", 1)
    _, waiting = await api.call("GET", f"/api/v1/events/{paced[-1]['id']}")
    assert waiting["status"] == "queued", "held by the rate limit, not on the wire"
    # Marked within about two seconds of going out (a once-a-second sweep of attempts older than a
    # second); the receiver answers only after eight.
    on_wire = await api.wait_event(slow["id"], {"delivering"}, timeout=6)
    assert time.time() - received.at < 8.0, on_wire
    await api.wait_event(slow["id"], {"delivered"}, timeout=15)
