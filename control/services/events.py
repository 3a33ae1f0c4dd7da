"""Events: validate, fan out to subscribed endpoints, store event + tasks in one transaction, signal."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from control.errors import BadRequest, Conflict
from control.jsonfmt import decode_cursor, encode_cursor, iso, page
from control.policy.partitioning import partition_for, target_key
from control.policy.ssrf import AddressPolicy
from control.policy.waiting import EndpointState, PendingTask, waiting
from control.services.event_types import VALIDATORS, check_payload, validate_event_payload
from control.services.matching import filters_hold
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.services.sub_accounts import refuse_if_inactive
from control.services.usage import quota_checked
from control.settings import Settings
from control.signalling import WORK_CHANNEL, WorkSignal
from control.store.queries import q
from control.validate import headers_field, int_field, need_object, reachable_url, str_field, url_field

try:
    from asyncpg.pgproto.pgproto import UUID as _uuid_from_bytes
except ImportError:  # pragma: no cover - another asyncpg layout: the standard type, slower
    def _uuid_from_bytes(b: bytes) -> uuid.UUID:
        return uuid.UUID(bytes=b)


_COUNTER_BITS = 30
_clock = [0, 0]     # the last millisecond used by this process, and its counter


def time_ordered_ids(n: int) -> list[uuid.UUID]:
    """`n` UUIDv7s (RFC 9562: 48-bit Unix milliseconds, version, variant, then 74 bits). Ingest and
    the writer insert millions of rows keyed by these; time-ordered keys land at the right edge of
    the primary-key B-trees instead of on random pages, which keeps bulk inserts fast as the tables
    grow. Within one process and one millisecond every id is greater than the one before (RFC 9562
    6.2, method 1): the first 30 of the 74 bits count up from a random start, the last 40 are
    random. So rows written one after another by one process (audit entries of consecutive
    changes, a batch's events) sort by id in the order they were made, even within a millisecond.
    Ids always carry the clock's millisecond: if the clock steps back, so do they.
    Built from bytes as asyncpg's own UUID type (the one it returns for uuid columns, a C subclass
    of uuid.UUID): uuid.UUID(int=...) was 6% of an API worker in batch ingest."""
    ms = time.time_ns() // 1_000_000
    last, counter = _clock
    if ms != last or counter + n >= 1 << _COUNTER_BITS:
        # A new millisecond (or the clock stepped back: ids follow the clock, never a made-up time),
        # or 2^29 ids in one millisecond: a fresh random start in the lower half, room to count.
        counter = int.from_bytes(os.urandom(4), "big") >> (32 - _COUNTER_BITS + 1)
    _clock[0], _clock[1] = ms, counter + n
    stamp = (ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")
    raw = os.urandom(5 * n)
    out = []
    for i in range(n):
        c = counter + i
        # version 7, the counter's top 12 bits, variant 10, its low 18 bits, 4 zero bits; then 40 random
        mid = 0x70_00_80_00_00 | ((c >> 18) << 24) | ((c & 0x3FFFF) << 4)
        out.append(_uuid_from_bytes(stamp + mid.to_bytes(5, "big") + raw[5 * i:5 * i + 5]))
    return out


MAX_ATTEMPTS_CAP = 25
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_PRIORITY = 5
MAX_DELAY_SECONDS = 30 * 86400
EVENT_STATUSES = ("queued", "delivering", "delivered", "failed", "dead")

# An event's status is written only by a roll-up of its tasks' states (or at ingest: queued with
# queued tasks, delivered with none), in the transaction that changes them; the one change made
# without a roll-up is a claim given back (delivering -> queued or failed). So an event in one of
# these states has a task in one of the states listed: the witness the roll-up saw, or, for
# `delivering`, what that task became when its claim was given back. Lists filtered by a status
# other than delivered find their events through those tasks (events.sql list_events_by_tasks).
TASKS_OF_STATUS: dict[str, tuple[str, ...]] = {
    "queued": ("queued",),
    "failed": ("failed",),
    "delivering": ("queued", "delivering", "failed"),
    "dead": ("dead",),
}
# Rows of the newest events a list filtered by a rare status reads first (events.sql list_events, $8).
STATUS_WINDOW = 1000
# Then its tasks in the events' order, this many at a time, at most this many times per request.
TASK_CHUNK = 1000
TASK_CHUNKS = 20
EVENT_FIELDS = frozenset({"destination", "eventType", "payload", "headers", "maxAttempts", "priority",
                          "delaySeconds"})


@dataclass(frozen=True, slots=True)
class NewEvent:
    idempotency_key: str
    destination: str | None
    event_type: str | None
    payload: bytes                 # the exact bytes every delivery sends
    payload_obj: Any
    headers: dict[str, str]
    max_attempts: int | None       # None: the endpoint's maxRetries (fan-out) or the default (direct)
    priority: int
    delay_seconds: int


def idempotency_key(raw: str | None) -> str:
    if raw is None or not raw.strip():
        raise BadRequest("X-Idempotency-Key: header is required")
    if len(raw) > 255:
        raise BadRequest("X-Idempotency-Key: longer than 255 characters")
    return raw


def parse_event(body: Any, key: str, prefix: str = "", allowed: frozenset[str] = EVENT_FIELDS,
                policy: AddressPolicy | None = None, checked: dict[str, str] | None = None) -> NewEvent:
    """Validate one event body; `prefix` names where it sits (`events[2].` in a batch). With a
    `policy`, a destination the shards would refuse is refused now. `checked` remembers the
    destinations that passed (a batch's events mostly share a few: checking a URL is a third of
    parsing an event)."""
    data = need_object(body, prefix.rstrip(".") or "body")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"{prefix}{unknown[0]}: unknown field")
    destination = data.get("destination")
    event_type = data.get("eventType")
    if (destination is None) == (event_type is None):
        raise BadRequest(f"{prefix}destination: give either destination or eventType, not both")
    if destination is not None:
        known = checked.get(destination) if checked is not None and isinstance(destination, str) else None
        if known is None:
            known = url_field(destination, f"{prefix}destination")
            if policy is not None:
                reachable_url(known, f"{prefix}destination", policy)
            if checked is not None:
                checked[destination] = known
        destination = known
    if event_type is not None:
        event_type = str_field(event_type, f"{prefix}eventType", max_len=256, allow_empty=False)
    if "payload" not in data:
        raise BadRequest(f"{prefix}payload: required")
    payload = data["payload"]
    if not isinstance(payload, dict):
        raise BadRequest(f"{prefix}payload: expected a JSON object")
    headers = headers_field(data["headers"], f"{prefix}headers") if data.get("headers") is not None else {}
    max_attempts = None
    if data.get("maxAttempts") is not None:
        max_attempts = min(int_field(data["maxAttempts"], f"{prefix}maxAttempts", 1), MAX_ATTEMPTS_CAP)
    priority = DEFAULT_PRIORITY
    if data.get("priority") is not None:
        priority = int_field(data["priority"], f"{prefix}priority", 1, 10)
    delay = 0
    if data.get("delaySeconds") is not None:
        delay = int_field(data["delaySeconds"], f"{prefix}delaySeconds", 0, MAX_DELAY_SECONDS)
    return NewEvent(key, destination, event_type, orjson.dumps(payload), payload, headers, max_attempts,
                    priority, delay)


def filter_document(event: NewEvent) -> dict[str, Any]:
    """What endpoint filters and FIFO keys see: `$.data` is the payload."""
    return {"data": event.payload_obj, "eventType": event.event_type, "headers": event.headers}


def created_json(event_id: uuid.UUID, ev: NewEvent, max_attempts: int, status: str,
                 created_at: Any, sub_account_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {"id": str(event_id), "idempotencyKey": ev.idempotency_key, "destination": ev.destination,
            "eventType": ev.event_type, "status": status, "attempts": 0, "maxAttempts": max_attempts,
            "priority": ev.priority, "delaySeconds": ev.delay_seconds, "createdAt": iso(created_at),
            "subAccountId": str(sub_account_id) if sub_account_id is not None else None}


def attempt_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "eventId": str(row["event_id"]),
        "endpointId": str(row["endpoint_id"]) if row["endpoint_id"] else None,
        "attemptNumber": row["attempt_number"],
        "statusCode": row["status_code"],
        "responseBody": row["response_body"],
        "error": row["error"],
        "errorCategory": row["error_category"],
        "outcome": row["outcome"],
        "durationMs": row["duration_ms"],
        "processingOverheadUs": row["processing_overhead_us"],
        "attemptedAt": iso(row["attempted_at"]),
    }


def pending_json(row: asyncpg.Record) -> dict[str, Any]:
    """One undelivered delivery of an event: where it goes, and why and until when it waits."""
    endpoint = None
    if row["has_endpoint"]:
        endpoint = EndpointState(row["endpoint_status"], row["delivery_mode"], row["rate_limit_per_sec"],
                                 row["circuit_state"], row["circuit_threshold"], row["circuit_opened_at"],
                                 row["circuit_reset_ms"])
    reason, next_at = waiting(PendingTask(row["status"], row["attempts"], row["next_attempt_at"],
                                          row["poll_visible_at"], endpoint), row["now"])
    return {
        "endpointId": str(row["endpoint_id"]) if row["endpoint_id"] else None,
        "destination": row["destination"],
        "status": row["status"],
        "attempts": row["attempts"],
        "nextAttemptAt": iso(next_at),
        "waitingReason": reason,
    }


def event_summary_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "idempotencyKey": row["idempotency_key"],
        "destination": row["destination"],
        "eventType": row["event_type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "maxAttempts": row["max_attempts"],
        "priority": row["priority"],
        "createdAt": iso(row["created_at"]),
        "deliveredAt": iso(row["delivered_at"]),
        # The sub-account it was attributed to (X-Sub-Account-ID, a portal session), else null.
        "subAccountId": str(row["sub_account_id"]) if row["sub_account_id"] is not None else None,
    }


ROUTING_TRIES = 3
ROUTING_CACHE_SIZE = 10_000


@dataclass(slots=True)
class Routing:
    """What fan-out and validation read for one (workspace, project, sub-account, event type), and
    the workspace's routing revision when they were read (migration 029)."""

    rev: int
    schema: tuple[uuid.UUID, int] | None      # the ValidatorCache key of the schema that applies
    subscribers: list[asyncpg.Record]


class RoutingCache:
    """Per API worker; bounded (cleared when full: a miss costs three small reads)."""

    def __init__(self, size: int = ROUTING_CACHE_SIZE) -> None:
        self.size = size
        self._items: dict[tuple[Any, ...], Routing] = {}

    def get(self, key: tuple[Any, ...]) -> Routing | None:
        return self._items.get(key)

    def put(self, key: tuple[Any, ...], route: Routing) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = route

    def drop(self, key: tuple[Any, ...]) -> None:
        self._items.pop(key, None)


class EventService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.routes = RoutingCache()
        self.pool = pool
        self.partitions = partitions
        self.settings = settings
        self.policy = AddressPolicy.from_engine(settings.engine if settings else None)
        self.signal = WorkSignal(pool)

    async def aclose(self) -> None:
        """Send the wake-ups still pending (the API worker is stopping)."""
        await self.signal.flush()

    async def _targets(self, conn: asyncpg.Connection, who: Principal, ev: NewEvent,
                       endpoint_ids: list[uuid.UUID] | None,
                       rows: list[asyncpg.Record] | None = None) -> list[tuple[uuid.UUID | None, int, int]]:
        """(endpoint id, partition, max attempts) per delivery this event makes; `rows`: the
        subscribers when already known (the routing cache). Sorted by endpoint: the insert locks
        FIFO endpoints in this order (insert_event), so two ingests never wait on each other in a cycle."""
        if ev.destination is not None:
            part = partition_for(target_key(None, ev.destination), self.partitions)
            return [(None, part, ev.max_attempts or DEFAULT_MAX_ATTEMPTS)]
        if rows is None:
            rows = await self._subscribers(conn, who, ev, endpoint_ids)
        keep = await filters_hold([row["filter"] for row in rows], lambda: filter_document(ev))
        return sorted(((row["id"], row["partition"], ev.max_attempts or row["max_retries"])
                       for row, ok in zip(rows, keep, strict=True) if ok), key=lambda t: str(t[0]))

    @staticmethod
    async def _subscribers(conn: asyncpg.Connection, who: Principal, ev: NewEvent,
                           endpoint_ids: list[uuid.UUID] | None) -> list[asyncpg.Record]:
        if endpoint_ids:
            return list(await conn.fetch(q("endpoints_by_ids"), who.client_id, who.project_id, endpoint_ids))
        return list(await conn.fetch(q("subscribed_endpoints"), who.client_id, who.project_id, ev.event_type,
                                     who.sub_account_id))

    async def _cached_targets(self, conn: asyncpg.Connection, who: Principal, ev: NewEvent,
                              route: Routing) -> list[tuple[uuid.UUID | None, int, int]] | None:
        """The deliveries from a cached routing, payload validated; None when its validator is gone
        or refuses the payload (then the caller reads again)."""
        if route.schema is not None:
            validator = VALIDATORS.get(route.schema)
            if validator is None:
                return None
            assert ev.event_type is not None
            try:
                await check_payload(validator, ev.payload_obj, ev.event_type)
            except BadRequest:
                return None      # only a schema read just now may refuse (this one may be stale)
        return await self._targets(conn, who, ev, None, route.subscribers)

    async def create(self, who: Principal, body: Any, key: str | None) -> dict[str, Any]:
        return await self.ingest(who, parse_event(body, idempotency_key(key), policy=self.policy))

    async def ingest(self, who: Principal, ev: NewEvent,
                     endpoint_ids: list[uuid.UUID] | None = None) -> dict[str, Any]:
        """Store a parsed event and its deliveries: to the type's subscribers, or to `endpoint_ids`
        (the caller's endpoints; inbound webhooks name theirs). 409 when the key is taken."""
        event_id = time_ordered_ids(1)[0]
        # A typed event's schema and subscribers come from this worker's routing cache when the
        # workspace's routing revision is unchanged, checked by the insert itself: one round trip,
        # like a direct event (which needs neither). A miss reads the revision first, then the rest.
        cacheable = ev.event_type is not None and endpoint_ids is None
        key = (who.client_id, who.project_id, who.sub_account_id, ev.event_type, ev.destination is None)
        async with self.pool.acquire() as conn:
            for attempt in range(ROUTING_TRIES):
                route = self.routes.get(key) if cacheable and attempt == 0 else None
                targets = await self._cached_targets(conn, who, ev, route) if route is not None else None
                if targets is None:
                    rev = await conn.fetchval(q("routing_rev"), who.client_id) if cacheable else None
                    schema = await validate_event_payload(conn, who, ev.event_type, ev.payload_obj)
                    rows = None if ev.destination is not None else await self._subscribers(conn, who, ev, endpoint_ids)
                    targets = await self._targets(conn, who, ev, endpoint_ids, rows)
                    route = Routing(rev, schema, rows or []) if rev is not None else None
                    if route is not None:
                        self.routes.put(key, route)
                assert targets is not None
                status = "queued" if targets else "delivered"
                max_attempts = ev.max_attempts or (targets[0][2] if len(targets) == 1 else DEFAULT_MAX_ATTEMPTS)
                # The last try, read just now, is not guarded: it stands as a read-then-insert.
                guard = route.rev if route is not None and attempt < ROUTING_TRIES - 1 else None
                with quota_checked():
                    row = await conn.fetchrow(
                        q("insert_event"), event_id, who.client_id, who.project_id, ev.idempotency_key,
                        ev.event_type, ev.destination, ev.payload, ev.headers, max_attempts, ev.priority,
                        ev.delay_seconds, status, len(targets), time_ordered_ids(len(targets)),
                        [t[0] for t in targets], [t[1] for t in targets], [t[2] for t in targets],
                        who.sub_account_id, guard)
                if row is not None or guard is None:
                    break
                if await conn.fetchval(q("routing_rev"), who.client_id) == guard:
                    break            # refused for another reason (key taken, sub-account deactivated)
                self.routes.drop(key)
            if row is None:
                await refuse_if_inactive(conn, who)    # the insert's guard found it deactivated
                existing = await conn.fetchval(q("event_id_by_key"), who.client_id, ev.idempotency_key,
                                               who.project_id)
                raise Conflict(f"an event with idempotency key {ev.idempotency_key!r} already exists",
                               extra={"eventId": str(existing)} if existing is not None else None)
        self.signal.wake(t[1] for t in targets or ())
        return created_json(event_id, ev, max_attempts, status, row["created_at"], who.sub_account_id)

    async def _event_row(self, who: Principal, event_id: str) -> asyncpg.Record:
        return await owned_row(self.pool, "get_event", event_id, who, "event", sub_account=True)

    async def _history(self, who: Principal, row: asyncpg.Record) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The event's attempts so far and its deliveries still to make."""
        attempts = await self.pool.fetch(q("event_attempts"), row["id"], who.client_id)
        pending = await self.pool.fetch(q("event_pending_tasks"), row["id"], who.client_id, who.project_id)
        return [attempt_json(a) for a in attempts], [pending_json(p) for p in pending]

    async def get(self, who: Principal, event_id: str) -> dict[str, Any]:
        row = await self._event_row(who, event_id)
        attempts, pending = await self._history(who, row)
        out = event_summary_json(row)
        out.update({
            "payload": orjson.Fragment(row["payload"]),
            "headers": row["headers"],
            "delaySeconds": row["delay_seconds"],
            "updatedAt": iso(row["updated_at"]),
            "deliveryAttempts": attempts,
            "pending": pending,
        })
        return out

    async def deliveries(self, who: Principal, event_id: str) -> dict[str, Any]:
        row = await self._event_row(who, event_id)
        attempts, pending = await self._history(who, row)
        return {"deliveries": attempts, "count": len(attempts), "pending": pending}

    async def list(self, who: Principal, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        if status is not None and status not in EVENT_STATUSES:
            raise BadRequest(f"status: must be one of {', '.join(EVENT_STATUSES)}")
        witnesses = TASKS_OF_STATUS.get(status) if status is not None else None
        recent = await owned_page(self.pool, "list_events", who, limit, cursor, event_summary_json, (status,),
                                  sub_account=True, tail=(STATUS_WINDOW if witnesses else None,))
        if witnesses is None or recent["pagination"]["hasMore"]:
            return recent
        return await page_through_tasks(self.pool, who, status, list(witnesses), limit, cursor)



async def page_through_tasks(pool: asyncpg.Pool, who: Principal, status: str | None, witnesses: list[str],
                             limit: int, cursor: str | None) -> dict[str, Any]:
    """A page of the events in a rare status, found through their tasks in `witnesses`, in the
    events' order, TASK_CHUNK tasks at a time and at most TASK_CHUNKS chunks: however many such
    tasks a workspace has, one request reads a bounded number. A page cut short by that bound
    says hasMore, with a cursor where the reading stopped."""
    at, at_id = decode_cursor(cursor)
    found: list[asyncpg.Record] = []
    async with pool.acquire() as conn:
        for _ in range(TASK_CHUNKS):
            tasks = await conn.fetch(q("tasks_in_event_order"), who.client_id, witnesses, at, at_id, TASK_CHUNK)
            ids = list(dict.fromkeys(r["event_id"] for r in tasks))     # a fan-out event's tasks, once
            if ids:
                rows = await conn.fetch(q("events_in_status"), ids, who.client_id, who.project_id, status,
                                        who.sub_account_id)
                found += sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
            if len(found) > limit or len(tasks) < TASK_CHUNK:      # a page and one more, or the end
                return page([event_summary_json(r) for r in found], found, limit)
            at, at_id = tasks[-1]["created_at"], tasks[-1]["event_id"]
    # The bound, before the page filled: what was found, and where to go on from.
    assert at is not None and at_id is not None
    return {"data": [event_summary_json(r) for r in found],
            "pagination": {"hasMore": True, "cursor": encode_cursor(at, at_id)}}


__all__ = ["WORK_CHANNEL", "EventService", "parse_event"]
