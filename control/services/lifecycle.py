"""Event lifecycle: edit and replay failed or dead events, and retry many at once.

Every change locks the event's tasks before the event row, the order the engine's writer uses, and
ends with the event's status rolled up again from its tasks and a NOTIFY naming the partitions of
the re-queued work (the shards' periodic scan finds it too, should the notification be lost).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson

from control.errors import BadRequest, InvalidState, NotFound
from control.policy.partitioning import partition_for, target_key
from control.services import audit
from control.services.event_types import validate_event_payload
from control.services.events import EventService
from control.services.principal import Principal
from control.settings import Settings
from control.signalling import release_payload, work_payload
from control.store.queries import q
from control.validate import bool_field, headers_field, int_field, need_object, reachable_url, url_field, uuid_or_404

T = TypeVar("T")
REPLAYABLE = ("failed", "dead")
EDIT_FIELDS = ("destination", "payload", "headers", "replay")
RETRY_FIELDS = frozenset({"eventIds", "status", "endpointId", "limit"})
RETRY_LIMIT_DEFAULT = 100
RETRY_LIMIT_MAX = 1000
DEADLOCK_TRIES = 3


@dataclass(frozen=True, slots=True)
class EventEdit:
    destination: str | None
    payload: bytes | None            # re-serialised once, here; these bytes are what gets delivered
    payload_obj: Any
    headers: dict[str, str] | None
    replay: bool

    @property
    def changes_content(self) -> bool:
        return self.destination is not None or self.payload is not None or self.headers is not None


def parse_edit(body: Any) -> EventEdit:
    data = need_object(body)
    unknown = sorted(set(data) - set(EDIT_FIELDS))
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    destination = url_field(data["destination"], "destination") if data.get("destination") is not None else None
    payload_obj = data.get("payload")
    if payload_obj is not None and not isinstance(payload_obj, dict):
        raise BadRequest("payload: expected a JSON object")
    payload = orjson.dumps(payload_obj) if payload_obj is not None else None
    headers = headers_field(data["headers"], "headers") if data.get("headers") is not None else None
    replay = bool_field(data["replay"], "replay") if data.get("replay") is not None else False
    edit = EventEdit(destination, payload, payload_obj, headers, replay)
    if not edit.changes_content and not edit.replay:
        raise BadRequest(f"body: give at least one of {', '.join(EDIT_FIELDS)}")
    return edit


def audit_view(row: asyncpg.Record, with_payload: bool = False) -> dict[str, Any]:
    """What the audit log keeps of an event before and after a change: its API fields, and the
    payload only when the change is to the payload (a replay need not copy it twice)."""
    out: dict[str, Any] = {"id": str(row["id"]), "eventType": row["event_type"], "destination": row["destination"],
                           "headers": row["headers"], "status": row["status"], "attempts": row["attempts"]}
    if with_payload:
        out["payload"] = orjson.loads(row["payload"])
    return out


@dataclass(frozen=True, slots=True)
class RetrySelection:
    event_ids: list[uuid.UUID] | None
    status: str | None
    endpoint_id: uuid.UUID | None
    limit: int


def _uuid(value: Any, name: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected an id string")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: not a valid id") from exc


def parse_retry(body: Any) -> RetrySelection:
    """`{eventIds}`, or `{status, limit}`, or `{endpointId, status?, limit}`."""
    data = need_object(body)
    unknown = sorted(set(data) - RETRY_FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    raw_ids, status, endpoint = data.get("eventIds"), data.get("status"), data.get("endpointId")
    if raw_ids is not None:
        if status is not None or endpoint is not None or data.get("limit") is not None:
            raise BadRequest("eventIds: give eventIds alone, or status/endpointId with a limit")
        if not isinstance(raw_ids, list) or not raw_ids:
            raise BadRequest("eventIds: expected a non-empty array of event ids")
        if len(raw_ids) > RETRY_LIMIT_MAX:
            raise BadRequest(f"eventIds: at most {RETRY_LIMIT_MAX} ids")
        ids = list(dict.fromkeys(_uuid(v, f"eventIds[{i}]") for i, v in enumerate(raw_ids)))
        return RetrySelection(ids, None, None, len(ids))
    if status is None and endpoint is None:
        raise BadRequest("body: give eventIds, status or endpointId")
    if status is not None and status not in REPLAYABLE:
        raise BadRequest("status: must be failed or dead")
    limit = RETRY_LIMIT_DEFAULT
    if data.get("limit") is not None:
        limit = int_field(data["limit"], "limit", 1, RETRY_LIMIT_MAX)
    endpoint_id = _uuid(endpoint, "endpointId") if endpoint is not None else None
    return RetrySelection(None, status, endpoint_id, limit)


class LifecycleService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.partitions = partitions
        self.events = EventService(pool, partitions, settings)

    async def _in_tx(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `fn` in a transaction; a deadlock with the engine's writer (rare: both lock the
        same tasks in a different order) is retried rather than answered with a 500."""
        for attempt in range(DEADLOCK_TRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await fn(conn)
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _requeue(self, conn: asyncpg.Connection, who: Principal, event_ids: list[uuid.UUID],
                       endpoint_id: uuid.UUID | None = None) -> list[uuid.UUID]:
        """Re-queue, re-roll-up, signal; the ids of the events that got work back."""
        rows = await conn.fetch(q("requeue_tasks"), event_ids, who.client_id, who.project_id, endpoint_id)
        if not rows:
            return []
        requeued = {r["event_id"] for r in rows}
        await conn.execute(q("rollup_events"), list(requeued))
        await conn.execute(q("notify_work"), work_payload(r["partition"] for r in rows))
        return [i for i in event_ids if i in requeued]

    async def _locked_event(self, conn: asyncpg.Connection, who: Principal, event_id: str,
                            action: str) -> asyncpg.Record:
        eid = uuid_or_404(event_id, "event")
        await conn.execute(q("lock_event_tasks"), eid, who.client_id)
        row = await conn.fetchrow(q("get_event"), eid, who.client_id, who.project_id, who.sub_account_id)
        if row is None:
            raise NotFound("event not found")
        if row["status"] not in REPLAYABLE:
            raise InvalidState(f"event is {row['status']}; only failed or dead events can be {action}")
        return row

    async def edit(self, who: Principal, event_id: str, body: Any) -> dict[str, Any]:
        edit = parse_edit(body)
        if edit.destination is not None:
            reachable_url(edit.destination, "destination", self.events.policy)

        async def run(conn: asyncpg.Connection) -> None:
            row = await self._locked_event(conn, who, event_id, "edited")
            if edit.destination is not None and row["event_type"] is not None:
                raise BadRequest("destination: this event fans out to its type's endpoints; "
                                 "only direct events have a destination")
            if edit.payload is not None:     # a typed event's new payload must still fit its schema
                await validate_event_payload(conn, who.with_project(row["project_id"]), row["event_type"],
                                             edit.payload_obj)
            if edit.changes_content:
                await conn.execute(q("update_event_content"), row["id"], edit.destination, edit.payload,
                                   edit.headers)
            if edit.destination is not None:
                await self._move_destination(conn, row, edit.destination)
            if edit.changes_content and not edit.replay:
                released = await conn.fetch(q("release_event_claims"), row["id"])
                if released:
                    await conn.execute(q("notify_work"), work_payload(r["partition"] for r in released))
            if edit.replay and not await self._requeue(conn, who, [row["id"]]):
                raise InvalidState("nothing to replay: the endpoints of its undelivered deliveries were deleted")
            await self._audit(conn, who, "update", row, edit.payload is not None)

        await self._in_tx(run)
        return await self.events.get(who, event_id)

    async def _move_destination(self, conn: asyncpg.Connection, row: asyncpg.Record, destination: str) -> None:
        """Point a direct event's delivery at its new destination. A shard holding the delivery for
        the old origin is told to drop that copy (delivered with the commit), so a retry waiting in
        its memory is not sent to the old URL; the delivery is claimed again for the new one."""
        old_key, new_key = target_key(None, row["destination"]), target_key(None, destination)
        if old_key != new_key:
            for r in await conn.fetch(q("held_direct_tasks"), row["id"]):
                await conn.execute(q("notify_release"), release_payload(r["partition"], old_key, [r["id"]]))
        await conn.execute(q("move_direct_task"), row["id"], partition_for(new_key, self.partitions))

    async def replay(self, who: Principal, event_id: str) -> dict[str, Any]:
        async def run(conn: asyncpg.Connection) -> None:
            row = await self._locked_event(conn, who, event_id, "replayed")
            if not await self._requeue(conn, who, [row["id"]]):
                raise InvalidState("nothing to replay: the endpoints of its undelivered deliveries were deleted")
            await self._audit(conn, who, "replay", row)

        await self._in_tx(run)
        return await self.events.get(who, event_id)

    async def _audit(self, conn: asyncpg.Connection, who: Principal, action: str, before: asyncpg.Record,
                     with_payload: bool = False) -> None:
        after = await conn.fetchrow(q("get_event"), before["id"], who.client_id, None, None)
        await audit.record(conn, who.with_project(before["project_id"]), action, "event", before["id"],
                           audit_view(before, with_payload), audit_view(after, with_payload))

    async def retry(self, who: Principal, body: Any) -> dict[str, Any]:
        sel = parse_retry(body)

        async def run(conn: asyncpg.Connection) -> list[uuid.UUID]:
            if sel.event_ids is not None:
                ids = sel.event_ids
            elif sel.endpoint_id is not None:
                statuses = [sel.status] if sel.status else list(REPLAYABLE)
                rows = await conn.fetch(q("retryable_events_by_endpoint"), sel.endpoint_id, who.client_id,
                                        who.project_id, statuses, sel.limit)
                ids = [r["id"] for r in rows]
            else:
                rows = await conn.fetch(q("retryable_events_by_status"), who.client_id, who.project_id,
                                        sel.status, sel.limit)
                ids = [r["id"] for r in rows]
            retried = await self._requeue(conn, who, ids, sel.endpoint_id) if ids else []
            # One row for the whole batch: the selection, and which events got work back.
            selection = {"eventIds": [str(i) for i in sel.event_ids]} if sel.event_ids is not None else {
                "status": sel.status, "endpointId": str(sel.endpoint_id) if sel.endpoint_id else None,
                "limit": sel.limit}
            await audit.record(conn, who, "retry", "event", None, before=selection,
                               after={"retried": len(retried), "eventIds": [str(i) for i in retried]})
            return retried

        retried = await self._in_tx(run)
        return {"retried": len(retried), "eventIds": [str(i) for i in retried]}
