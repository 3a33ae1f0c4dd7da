"""Pull delivery: consumers of poll-mode endpoints long-poll for events and acknowledge them.

A long-poll that finds nothing waits on its endpoint's partition. Each API worker holds one
dedicated LISTEN connection on the channels ingest already notifies (`mittr_work` names the
partitions that got work, `mittr_endpoint` an endpoint whose settings changed) and wakes exactly
the waiters of the partitions named; they re-check the database. A short periodic re-check covers
a lost notification, delayed events coming due and visibility timeouts running out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson

from control import metrics
from control.errors import BadRequest, InvalidState, NotFound
from control.jsonfmt import iso
from control.services import rollups
from control.services.principal import Principal
from control.settings import Settings
from control.signalling import ENDPOINT_CHANNEL, WORK_CHANNEL, parse_work_payload
from control.store.db import connect
from control.store.queries import q
from control.validate import int_param, need_object, uuid_or_404

log = logging.getLogger("mittr.poll")
MAX_LIMIT, DEFAULT_LIMIT = 100, 10
MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S = 60, 30
MAX_ACK_IDS = 1000
ACK_FIELDS = {"endpoint_id", "event_ids"}




def polled_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "eventType": row["event_type"], "payload": orjson.Fragment(row["payload"]),
            "headers": row["headers"], "createdAt": iso(row["created_at"]), "attempts": row["attempts"]}


class WakeHub:
    """One LISTEN connection per worker; wakes the long-polls waiting on the partitions notified."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def _start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def ready(self, within: float) -> bool:
        """Wait (briefly) until LISTEN is in place, so that a notification sent now is not missed."""
        self._start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), within)
        return self._listening.is_set()

    @contextlib.contextmanager
    def waiter(self, partition: int) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(partition, set()).add(event)
        try:
            yield event
        finally:
            found = self._waiters.get(partition)
            if found is not None:
                found.discard(event)
                if not found:
                    del self._waiters[partition]

    def wake(self, partitions: list[int]) -> None:
        for p in partitions:
            for event in self._waiters.get(p, ()):
                event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    def _on_work(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.wake(parse_work_payload(payload))

    def _on_endpoint(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        _, _, part = payload.rpartition(":")
        if part.isdigit():
            self.wake([int(part)])

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("poll listener reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(0.5)

    async def _listen_once(self) -> None:
        conn = await connect(self.url)
        closed = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: closed.set())
            await conn.add_listener(WORK_CHANNEL, self._on_work)
            await conn.add_listener(ENDPOINT_CHANNEL, self._on_endpoint)
            self._listening.set()
            self._wake_all()              # anything announced while we were not listening
            while not closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), timeout=5)
                if not closed.is_set():
                    await conn.execute(q("poll_ping"))   # notice a dead server promptly
        finally:
            self._listening.clear()
            if not conn.is_closed():
                conn.terminate()

    async def aclose(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._wake_all()


class PollService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings) -> None:
        self.pool = pool
        poll = settings.section("poll")
        self.visibility_s = float(poll["visibility_timeout_s"])
        self.recheck_s = int(poll["recheck_ms"]) / 1000
        self.hub = WakeHub(settings.database_url)

    async def _endpoint(self, who: Principal, raw_id: str | None) -> asyncpg.Record:
        if raw_id is None or raw_id == "":
            raise BadRequest("endpoint_id: required")
        row = await self.pool.fetchrow(q("poll_endpoint"), uuid_or_404(raw_id, "endpoint"), who.client_id,
                                       who.project_id)
        if row is None:
            raise NotFound("endpoint not found")
        if row["delivery_mode"] != "poll":    # a well-formed request the endpoint's state refuses
            raise InvalidState(f"endpoint_id: the endpoint's deliveryMode is {row['delivery_mode']!r}, not 'poll'")
        return row

    async def _take(self, endpoint_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
        rows = await self.pool.fetch(q("poll_take"), endpoint_id, limit, self.visibility_s)
        return sorted(rows, key=lambda r: (r["priority"], r["seq"]))

    async def poll(self, who: Principal, endpoint_id: str | None, limit_raw: str | None,
                   timeout_raw: str | None) -> dict[str, Any]:
        """Waiting events at once, or the first to arrive within the timeout, or none."""
        limit = int_param(limit_raw, DEFAULT_LIMIT, 1, MAX_LIMIT, "limit")
        timeout = int_param(timeout_raw, DEFAULT_TIMEOUT_S, 0, MAX_TIMEOUT_S, "timeout")
        ep = await self._endpoint(who, endpoint_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.hub.waiter(ep["partition"]) as woken:
            if timeout > 0:
                await self.hub.ready(min(1.0, float(timeout)))
            while True:
                woken.clear()         # set again by any notification that lands during the query
                rows = await self._take(ep["id"], limit)
                left = deadline - loop.time()
                if rows or left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, self.recheck_s))
        data = [polled_json(r) for r in rows]
        return {"data": data, "count": len(data)}

    async def ack(self, who: Principal, body: Any) -> dict[str, Any]:
        """Mark this endpoint's listed events delivered; each counts as one successful attempt."""
        data = need_object(body)
        unknown = sorted(set(data) - ACK_FIELDS)
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        raw_ids = data.get("event_ids")
        if not isinstance(raw_ids, list) or not raw_ids:
            raise BadRequest("event_ids: expected a non-empty array of event ids")
        if len(raw_ids) > MAX_ACK_IDS:
            raise BadRequest(f"event_ids: at most {MAX_ACK_IDS} ids")
        ids: list[uuid.UUID] = []
        for i, raw in enumerate(raw_ids):
            try:
                ids.append(uuid.UUID(raw))
            except (ValueError, TypeError, AttributeError) as exc:
                raise BadRequest(f"event_ids[{i}]: not an event id") from exc
        endpoint_id = data.get("endpoint_id")
        if endpoint_id is not None and not isinstance(endpoint_id, str):
            raise BadRequest("endpoint_id: expected a string")
        ep = await self._endpoint(who, endpoint_id)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(q("poll_ack"), ep["id"], who.client_id, ids)
            if rows:
                await conn.execute(q("rollup_events"), [r["event_id"] for r in rows])
                await rollups.apply(conn, rollups.aggregate(
                    rollups.AttemptFact(who.client_id, r["project_id"], ep["id"], r["attempted_at"], "success",
                                        None, r["duration_ms"], "delivered") for r in rows))
        metrics.count_acknowledged(len(rows))
        return {"acknowledged": len(rows)}

    async def aclose(self) -> None:
        await self.hub.aclose()
