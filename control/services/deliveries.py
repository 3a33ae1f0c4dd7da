"""Delivery attempts as first-class resources: a time-bounded, filtered list and one by id.

Attempts are range-partitioned by day on attempted_at, so every list query carries a time range
(default: the last 24 hours) and Postgres reads only the partitions inside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from control.errors import BadRequest, NotFound
from control.jsonfmt import decode_cursor, encode_cursor
from control.services.events import attempt_json
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import int_param, limit_param, uuid_or_404

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
          "30d": timedelta(days=30)}
DEFAULT_RANGE = "24h"
OUTCOMES = ("success", "failure", "timeout")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 100_000


def rfc3339(raw: str, name: str) -> datetime:
    """An RFC 3339 timestamp with a time zone (`2026-04-01T00:00:00Z`), as UTC."""
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None or "T" not in raw.upper():
            raise ValueError(raw)
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{name}: expected an RFC 3339 timestamp such as 2026-04-01T00:00:00Z") from exc


def _offset(raw: str | None) -> int:
    return int_param(raw, 0, 0, MAX_OFFSET, "offset")


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    start: datetime
    end: datetime
    outcome: str | None
    endpoint_id: uuid.UUID | None
    event_type: str | None
    limit: int
    offset: int
    after: datetime | None
    after_id: uuid.UUID | None


def parse_query(params: Mapping[str, str | None], now: datetime) -> DeliveryQuery:
    """`start`/`end` win over `range`; a missing end is now, a missing start is end - range."""
    span_name = params.get("range") or DEFAULT_RANGE
    if span_name not in RANGES:
        raise BadRequest(f"range: must be one of {', '.join(RANGES)}")
    raw_end, raw_start = params.get("end"), params.get("start")
    end = rfc3339(raw_end, "end") if raw_end else now
    try:
        start = rfc3339(raw_start, "start") if raw_start else end - RANGES[span_name]
    except OverflowError as exc:
        raise BadRequest("end: too far in the past") from exc
    if start > end:
        raise BadRequest("start: must not be after end")
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise BadRequest(f"outcome: must be one of {', '.join(OUTCOMES)}")
    endpoint_id = None
    if params.get("endpoint_id"):
        try:
            endpoint_id = uuid.UUID(str(params["endpoint_id"]))
        except ValueError as exc:
            raise BadRequest("endpoint_id: not a valid id") from exc
    event_type = params.get("event_type") or None
    if event_type is not None and len(event_type) > 256:
        raise BadRequest("event_type: longer than 256 characters")
    after, after_id = decode_cursor(params.get("cursor"))
    return DeliveryQuery(start, end, outcome, endpoint_id, event_type,
                         limit_param(params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT), _offset(params.get("offset")),
                         after, after_id)


class DeliveryService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool

    async def list(self, who: Principal, params: Mapping[str, str | None]) -> dict[str, Any]:
        f = parse_query(params, datetime.now(UTC))
        rows = await self.pool.fetch(
            q("list_deliveries"), who.client_id, who.project_id, f.start, f.end, f.outcome, f.endpoint_id,
            f.event_type, f.after, f.after_id, f.limit + 1, f.offset)
        has_more = len(rows) > f.limit
        cursor = None
        if has_more:
            last = rows[f.limit - 1]
            cursor = encode_cursor(last["attempted_at"], last["id"])
        return {"data": [attempt_json(r) for r in rows[: f.limit]],
                "pagination": {"hasMore": has_more, "cursor": cursor}}

    async def get(self, who: Principal, delivery_id: str) -> dict[str, Any]:
        did = uuid_or_404(delivery_id, "delivery")
        row = await self.pool.fetchrow(q("get_delivery"), did, who.client_id, who.project_id)
        if row is None:
            raise NotFound("delivery not found")
        return attempt_json(row)
