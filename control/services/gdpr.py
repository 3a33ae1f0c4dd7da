"""GDPR export and erasure of a workspace, as the API offers them (the reading is in gdpr_export,
the removing in gdpr_erasure).

Export reads everything in one read-only REPEATABLE READ transaction, so the document is one
consistent snapshot, and streams it as it is read. The export itself leaves an audit row.

Erasure is synchronous: DELETE /api/v1/gdpr/data answers once every row is gone. First, in one
transaction, the workspace stops (`clients.deleted_at`: its keys and sessions stop authenticating
within a second, its endpoints count as deleted for the shards) and the erasure is recorded in
`gdpr_erasures`; then its rows go in bounded batches. The erasure runs as a task of this worker that
the request waits for, so a dropped connection does not stop it, and one that a crash or a lost
database interrupted is finished when an API worker starts. A late sweep, `LATE_SWEEP_S` after,
removes what deliveries that were already on the wire recorded meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg

from control.errors import BadRequest, Forbidden, NotFound
from control.jsonfmt import iso
from control.services import audit
from control.services.gdpr_erasure import DEFAULT_LIMITS, EraseLimits, erase_rows
from control.services.gdpr_export import export_sections, json_document, workspace_json
from control.services.principal import Principal
from control.settings import Settings
from control.store.db import DATABASE_DOWN
from control.store.queries import q

log = logging.getLogger("mittr.gdpr")

LATE_SWEEP_S = 600.0     # longer than any delivery can take (timeoutMs is at most 300 s)
RETRIES = 5              # an erasure that meets a lost database tries again, then waits for a restart


def check_confirmation(body: Any, query_value: str | None, client_id: uuid.UUID) -> None:
    """Erasing everything needs the workspace's id, typed back: `{"confirm": "<id>"}` (or ?confirm=)."""
    given: Any = query_value
    if isinstance(body, dict):
        unknown = sorted(set(body) - {"confirm"})
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        given = body.get("confirm", given)
    elif body is not None:
        raise BadRequest("body: expected a JSON object such as {\"confirm\": \"<workspace id>\"}")
    if given is None or given == "":
        raise BadRequest("confirm: required: this workspace's id, to confirm that all of its data is to be "
                         "erased for good")
    if not isinstance(given, str) or given.strip().lower() != str(client_id):
        raise BadRequest("confirm: does not match this workspace's id")


def workspace_wide(who: Principal) -> None:
    """Export and erasure cover the whole workspace: not for a project-bound key or X-Project-ID."""
    if who.project_id is not None:
        raise Forbidden("GDPR export and erasure cover the whole workspace: call them without X-Project-ID, "
                        "with a key not bound to a project")


class GdprService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None,
                 limits: EraseLimits = DEFAULT_LIMITS, late_sweep_s: float = LATE_SWEEP_S) -> None:
        self.pool = pool
        self.limits = limits
        self.late_sweep_s = late_sweep_s
        self._erasing: dict[uuid.UUID, asyncio.Task[dict[str, int]]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # export

    async def export(self, who: Principal) -> Callable[[], AsyncIterator[bytes]]:
        """Record the export, then return the document's chunks (read when the response is sent)."""
        workspace_wide(who)
        async with self.pool.acquire() as conn, conn.transaction():
            ws = await conn.fetchrow(q("gdpr_workspace"), who.client_id)
            if ws is None:
                raise NotFound("workspace not found")
            await audit.record(conn, who, "export", "workspace", who.client_id)
        head = {"exportedAt": iso(datetime.now(UTC)), "workspace": workspace_json(ws)}
        pool, client_id = self.pool, who.client_id

        async def chunks() -> AsyncIterator[bytes]:
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                async for chunk in json_document(head, export_sections(conn, client_id)):
                    yield chunk

        return chunks

    # erasure

    async def erase(self, who: Principal, body: Any, query_confirm: str | None) -> dict[str, Any]:
        workspace_wide(who)
        check_confirmation(body, query_confirm, who.client_id)
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(q("gdpr_lock_client"), who.client_id) is None:
                raise NotFound("workspace not found")
            stopped = await conn.fetch(q("gdpr_begin_erasure"), who.client_id, who.actor_type, who.actor_id)
        if stopped:
            await self.pool.execute(q("gdpr_notify_endpoints"), [f"{r['id']}:{r['partition']}" for r in stopped])
        log.info("workspace erasure started", extra={"client_id": str(who.client_id), "actor": who.actor_type})
        counts = await asyncio.shield(self._erasure(who.client_id))
        return {"workspaceId": str(who.client_id), "erased": counts}

    def _erasure(self, client_id: uuid.UUID) -> asyncio.Task[dict[str, int]]:
        """This worker's one task erasing `client_id` (a second request waits for the same one)."""
        task = self._erasing.get(client_id)
        if task is None:
            task = self._erasing[client_id] = self._spawn(self._erase(client_id))
            task.add_done_callback(lambda _: self._erasing.pop(client_id, None))
        return task

    async def _erase(self, client_id: uuid.UUID) -> dict[str, int]:
        attempt = 0
        while True:
            try:
                counts = await erase_rows(self.pool, client_id, self.limits)
                await self.pool.fetchval(q("gdpr_finish"), client_id, counts)
                break
            except DATABASE_DOWN:
                attempt += 1
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(2.0 ** attempt)
        log.info("workspace erased", extra={"client_id": str(client_id), "rows": sum(counts.values())})
        self._spawn(self._late_sweep(client_id, self.late_sweep_s))
        return counts

    async def _late_sweep(self, client_id: uuid.UUID, delay_s: float) -> None:
        await asyncio.sleep(max(delay_s, 0.0))
        counts = await erase_rows(self.pool, client_id, self.limits)
        await self.pool.execute(q("gdpr_swept"), client_id, counts)

    def resume(self) -> None:
        """Finish the erasures a stop or crash interrupted (called when the API worker starts)."""
        self._spawn(self._resume())

    async def _resume(self) -> None:
        for row in await self.pool.fetch(q("gdpr_open_erasures")):
            if row["finished_at"] is None:
                with contextlib.suppress(Exception):   # logged by _finished; the others still get their turn
                    await self._erasure(row["client_id"])
            else:
                self._spawn(self._late_sweep(row["client_id"],
                                             self.late_sweep_s - row["finished_ago"].total_seconds()))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("GDPR erasure failed; it resumes when an API worker starts",
                      extra={"error": repr(task.exception())})

    async def aclose(self) -> None:
        """Stop background work (what is unfinished is recorded, and resumed at the next start)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
