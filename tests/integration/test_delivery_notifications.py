"""The notifier's rounds against a real database (no engine runs, so nothing is delivered): bounded
batches oldest first, the rest next round, the watermark, opt-in starting now, loop protection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from control.services.connectors import ConnectorService
from control.services.notifications import DeliveryNotifier
from control.settings import load_settings
from control.store.queries import q
from tests.integration.conftest import Caller


async def dead_event(app_client: Caller, pool: Any, key: str) -> str:
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {
        "destination": "https://example.com/receiver", "payload": {"k": key}, "maxAttempts": 1},
        {"X-Idempotency-Key": key})
    assert status == 201, ev
    await pool.execute("UPDATE tasks SET status = 'dead', last_error = 'HTTP 500', updated_at = clock_timestamp() "
                       "WHERE event_id = $1", uuid.UUID(ev["id"]))
    return str(ev["id"])


def notifier(db_url: str, pool: Any, batch: int) -> DeliveryNotifier:
    settings = load_settings(env={"DATABASE_URL": db_url, "MITTR_ALERTING__NOTIFY_BATCH": str(batch),
                                  "MITTR_ALERTING__NOTIFY_SETTLE_S": "0"})
    return DeliveryNotifier(pool, ConnectorService(pool, 4096, settings), settings)


async def test_rounds_take_a_bounded_batch_oldest_first_once_each(app_client: Caller, pool: Any, db_url: str) -> None:
    before = await dead_event(app_client, pool, "before-anyone-listened")
    status, c, _ = await app_client.call("POST", "/api/v1/connectors", {
        "name": "hook", "type": "webhook", "config": {"webhookUrl": "https://example.com/hook"},
        "notify": ["event.dead", "endpoint.breaker_opened"]})
    assert status == 201, c
    ids = []
    for i in range(7):
        ids.append(await dead_event(app_client, pool, f"order-{i}"))
        if i == 2:   # Mittr's own deliveries never notify, wherever they sit in the order
            await dead_event(app_client, pool, f"mittr-notify-{uuid.uuid4()}")
            await dead_event(app_client, pool, f"mittr-alert-{uuid.uuid4()}")
    n = notifier(db_url, pool, 3)
    client = uuid.UUID(app_client.client_id)

    rounds = [await n.round(client) for _ in range(4)]
    assert [len(r) for r in rounds] == [3, 3, 1, 0]
    sent = [x for r in rounds for x in r]
    assert all(x["kind"] == "event.dead" and x["connector"] == "hook" and x["error"] is None for x in sent)
    tasks = {str(r["event_id"]): str(r["id"]) for r in await pool.fetch("SELECT id, event_id FROM tasks")}
    assert [x["id"] for x in sent] == [tasks[e] for e in ids] and tasks[before] not in [x["id"] for x in sent]
    keys = await pool.fetch("SELECT idempotency_key, payload FROM events WHERE idempotency_key LIKE 'mittr-notify-%'"
                            " AND destination = 'https://example.com/hook'")
    assert len(keys) == 7 and all(k["idempotency_key"].endswith(c["id"]) for k in keys)

    # A breaker opening (the shards write endpoints.circuit_state) is one notification.
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {"url": "https://example.com/ep",
                                                                        "eventTypes": ["a.*"]})
    assert status == 201, ep
    await pool.execute("UPDATE endpoints SET circuit_state = 'open', circuit_opened_at = now() WHERE id = $1",
                       uuid.UUID(ep["id"]))
    await pool.execute("UPDATE endpoints SET circuit_opened_at = now() WHERE id = $1", uuid.UUID(ep["id"]))
    [opened] = await n.round(client)
    assert opened["kind"] == "endpoint.breaker_opened" and opened["eventId"]
    await pool.execute("UPDATE endpoints SET circuit_state = 'closed', circuit_opened_at = NULL WHERE id = $1",
                       uuid.UUID(ep["id"]))
    assert await n.round(client) == []       # nobody opted into endpoint.breaker_closed
    status, c2, _ = await app_client.call("PUT", "/api/v1/connectors/hook",
                                          {"notify": ["event.dead", "endpoint.breaker_closed"]})
    assert status == 200 and c2["notify"] == ["endpoint.breaker_closed", "event.dead"], c2
    assert await n.round(client) == []       # opting in starts now: the earlier closing is not sent



async def test_the_scans_use_their_indexes(pool: Any) -> None:
    """The watermark is an index condition (client, (at, id) > mark), not a filter over the table."""
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        for name, index, extra in (("notify_dead_tasks", "tasks_dead_changed", ["mittr-notify-%"]),
                                   ("notify_breaker_transitions", "breaker_transitions_scan", "open")):
            rows = await conn.fetch(f"EXPLAIN {q(name)}", uuid.uuid4(), start, uuid.UUID(int=0), end, 100, extra)
            plan = "\n".join(r[0] for r in rows)
            assert f"using {index}" in plan and "ROW(" in plan.split(f"using {index}")[1].split("->")[0], plan
