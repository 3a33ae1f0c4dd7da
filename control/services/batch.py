"""Batch ingest: up to 100 direct-delivery events stored all-or-nothing by one statement.

The point of the batch is throughput, so per event there is only validation and serialisation in
Python; the events and their tasks go to Postgres as arrays in one INSERT ... SELECT FROM unnest,
which also checks that all were stored and counts them against the quota (one round trip), then
one NOTIFY names the batch's distinct partitions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg
import orjson

from control.errors import ApiError, BadRequest, Conflict, ValidationError
from control.jsonfmt import iso
from control.policy.partitioning import partition_for, target_key
from control.policy.ssrf import AddressPolicy
from control.services.events import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    EVENT_FIELDS,
    NewEvent,
    parse_event,
    time_ordered_ids,
)
from control.services.principal import Principal
from control.services.sub_accounts import refuse_if_inactive
from control.services.usage import quota_checked
from control.settings import Settings
from control.signalling import WorkSignal
from control.store.queries import q
from control.validate import str_field

MAX_BATCH = 100
INCOMPLETE_SQLSTATE = "MT409"   # raised by mittr_batch_complete (migration 030): nothing was stored
ITEM_FIELDS = frozenset(EVENT_FIELDS | {"idempotencyKey"})


def _item(raw: Any, index: int, policy: AddressPolicy | None, checked: dict[str, str]) -> NewEvent:
    """One batch entry: a direct event with its own key, default priority and no delay."""
    prefix = f"events[{index}]."
    if not isinstance(raw, dict):
        raise BadRequest(f"events[{index}]: expected a JSON object")
    if raw.get("idempotencyKey") is None:
        raise BadRequest(f"{prefix}idempotencyKey: required")
    key = str_field(raw["idempotencyKey"], f"{prefix}idempotencyKey", max_len=255, allow_empty=False)
    if raw.get("eventType") is not None:
        raise BadRequest(f"{prefix}eventType: batch events are direct deliveries; "
                         "send fan-out events with POST /api/v1/events")
    if raw.get("destination") is None:
        raise BadRequest(f"{prefix}destination: required")
    ev = parse_event(raw, key, prefix, ITEM_FIELDS, policy, checked)
    if ev.delay_seconds:
        raise BadRequest(f"{prefix}delaySeconds: batch events cannot be scheduled")
    if ev.priority != DEFAULT_PRIORITY:
        raise BadRequest(f"{prefix}priority: batch events use the default priority {DEFAULT_PRIORITY}")
    return ev


def parse_batch(body: Any, policy: AddressPolicy | None = None) -> list[NewEvent]:
    """Validate the whole batch before touching the database; errors name the index and field."""
    try:
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        unknown = sorted(set(body) - {"events"})
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        items = body.get("events")
        if not isinstance(items, list):
            raise BadRequest("events: required, an array of events")
        if not items:
            raise BadRequest("events: must not be empty")
        if len(items) > MAX_BATCH:
            raise ApiError(f"events: at most {MAX_BATCH} events per batch, got {len(items)}",
                           code="BATCH_TOO_LARGE", status=400)
        checked: dict[str, str] = {}     # destinations that passed, checked once per batch
        events = [_item(raw, i, policy, checked) for i, raw in enumerate(items)]
    except BadRequest as exc:
        raise ValidationError(exc.message) from exc
    repeated = sorted(k for k, n in Counter(ev.idempotency_key for ev in events).items() if n > 1)
    if repeated:
        raise Conflict(f"idempotency keys repeated within the batch: {', '.join(repeated)}",
                       code="DUPLICATE_EVENT", extra={"duplicateKeys": repeated})
    return events


class BatchService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.partitions = partitions
        self.policy = AddressPolicy.from_engine(settings.engine if settings else None)
        self.signal = WorkSignal(pool)

    async def aclose(self) -> None:
        """Send the wake-ups still pending (the API worker is stopping)."""
        await self.signal.flush()

    def _partitions(self, events: list[NewEvent]) -> list[int]:
        """Each task's partition, exactly as a single create computes it (once per destination)."""
        by_destination: dict[str, int] = {}
        out = []
        for ev in events:
            assert ev.destination is not None
            part = by_destination.get(ev.destination)
            if part is None:
                part = by_destination[ev.destination] = partition_for(target_key(None, ev.destination),
                                                                      self.partitions)
            out.append(part)
        return out

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        events = parse_batch(body, self.policy)
        n = len(events)
        ids = time_ordered_ids(n)
        parts = self._partitions(events)
        keys = [ev.idempotency_key for ev in events]
        async with self.pool.acquire() as conn:
            try:
                with quota_checked():
                    created_at = await conn.fetchval(
                        q("insert_event_batch"), who.client_id, who.project_id, DEFAULT_PRIORITY, ids, keys,
                        [ev.destination for ev in events], [ev.payload for ev in events],
                        [orjson.dumps(ev.headers).decode() for ev in events],
                        [ev.max_attempts or DEFAULT_MAX_ATTEMPTS for ev in events],
                        time_ordered_ids(n), parts, who.sub_account_id, n)
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None) != INCOMPLETE_SQLSTATE:
                    raise
                # Nothing was stored. Why: the sub-account, or keys other requests hold.
                await refuse_if_inactive(conn, who)
                existing = await conn.fetch(q("existing_event_keys"), who.client_id, keys, ids)
                taken = sorted(r["idempotency_key"] for r in existing)
                raise Conflict(f"idempotency keys already used: {', '.join(taken)}; no event was stored",
                               code="DUPLICATE_EVENT", extra={"duplicateKeys": taken}) from None
        self.signal.wake(parts)
        created = iso(created_at)       # one statement: one transaction time for the whole batch
        return {"events": [{"id": str(i), "status": "queued", "createdAt": created} for i in ids], "count": n}
