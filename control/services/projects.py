"""Projects: named slices of a workspace (`X-Project-ID`) that every resource family filters by.

Deleting a project never leaves rows behind that its header could no longer reach: its endpoints go
through the endpoint delete path (their pending deliveries end dead), its event types are deleted
and the API keys bound to it are revoked. A plain delete refuses while the project still holds
endpoints or undelivered events; `force` deletes anyway. Delivered history (events, attempts,
rollups) stays until retention removes it.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from control.errors import BadRequest, Forbidden, InvalidState, NotFound
from control.jsonfmt import iso
from control.services import audit
from control.services.endpoints import EndpointService
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, str_field

ENVIRONMENTS: tuple[str, ...] = ("production", "staging", "development", "test")
DEFAULT_ENVIRONMENT = "production"
NAME_MAX = 100
FIELDS = frozenset({"name", "environment"})
BATCH = 100            # endpoints / event types removed per round trip when a project goes


def _name(value: Any) -> str:
    text = str_field(value, "name", max_len=NAME_MAX, allow_empty=False).strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadRequest("name: must not contain control characters")
    return text


def _environment(value: Any) -> str:
    if value not in ENVIRONMENTS:
        raise BadRequest(f"environment: expected one of {', '.join(ENVIRONMENTS)}")
    return str(value)


def parse_project(body: Any, current: dict[str, Any] | None = None) -> dict[str, str]:
    """The project's name and environment after this body: all of a create (environment defaults to
    production), the given fields of a PATCH over `current`."""
    data = need_object(body)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if current is None and data.get("name") is None:
        raise BadRequest("name: required")
    out = {"name": current["name"] if current else "",
           "environment": current["environment"] if current else DEFAULT_ENVIRONMENT}
    if data.get("name") is not None:
        out["name"] = _name(data["name"])
    if data.get("environment") is not None:
        out["environment"] = _environment(data["environment"])
    return out


def parse_force(raw: str | None) -> bool:
    if raw is None or raw == "" or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadRequest("force: expected true or false")


def project_json(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "environment": row["environment"],
            "createdAt": iso(row["created_at"]), "updatedAt": iso(row["updated_at"])}


class ProjectService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.endpoints = EndpointService(pool, partitions, settings)

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_projects", who, limit, cursor, project_json)

    async def get(self, who: Principal, project_id: str) -> dict[str, Any]:
        return project_json(await owned_row(self.pool, "get_project", project_id, who, "project"))

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        if who.project_id is not None:
            # A key bound to a project (or a request under X-Project-ID) acts inside that project.
            raise Forbidden("a caller scoped to a project cannot create projects")
        v = parse_project(body)
        project_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("insert_project"), project_id, who.client_id, v["name"], v["environment"])
            out = project_json(row)
            await audit.record(conn, who.with_project(project_id), "create", "project", project_id, after=out)
        return out

    async def update(self, who: Principal, project_id: str, body: Any) -> dict[str, Any]:
        current = await owned_row(self.pool, "get_project", project_id, who, "project")
        v = parse_project(body, dict(current))
        if v == {"name": current["name"], "environment": current["environment"]}:
            return project_json(current)        # nothing changes: nothing to write or audit
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("update_project"), current["id"], who.client_id, v["name"], v["environment"])
            if row is None:
                raise NotFound("project not found")
            out = project_json(row)
            await audit.record(conn, who.with_project(row["id"]), "update", "project", row["id"],
                               before=project_json(current), after=out)
        return out

    async def delete(self, who: Principal, project_id: str, force: bool) -> None:
        pid = (await owned_row(self.pool, "get_project", project_id, who, "project"))["id"]
        scoped = who.with_project(pid)
        if force:
            await self._empty(scoped)
        else:
            await _refuse_if_holding(self.pool, who.client_id, pid)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await conn.fetchrow(q("lock_project"), pid, who.client_id)
            if current is None:
                raise NotFound("project not found")
            if not force:       # something arrived since the first look
                await _refuse_if_holding(conn, who.client_id, pid)
            await conn.execute(q("revoke_project_keys"), who.client_id, pid)
            await conn.execute(q("delete_project"), pid, who.client_id)
            await audit.record(conn, scoped, "delete", "project", pid, before=project_json(current))
        # Its event types go now; and a request that resolved X-Project-ID just before the delete
        # committed may still have added an endpoint or a key: nothing outlives the project.
        await self._empty(scoped)

    async def _empty(self, scoped: Principal) -> None:
        """Delete the project's endpoints (each through the endpoint delete path, so its pending
        deliveries end dead exactly as there) and its event types, a bounded batch at a time, and
        revoke the keys bound to it."""
        assert scoped.project_id is not None
        while True:
            ids = await self.pool.fetch(q("project_endpoint_ids"), scoped.client_id, scoped.project_id, BATCH)
            for r in ids:
                try:
                    await self.endpoints.delete(scoped, str(r["id"]))
                except NotFound:    # deleted by someone else meanwhile
                    pass
            if len(ids) < BATCH:
                break
        while len(await self.pool.fetch(q("delete_project_event_types"), scoped.client_id,
                                        scoped.project_id, BATCH)) == BATCH:
            pass
        await self.pool.execute(q("revoke_project_keys"), scoped.client_id, scoped.project_id)
        await self.pool.execute(q("delete_project_inbound_endpoints"), scoped.client_id, scoped.project_id)


async def _refuse_if_holding(db: asyncpg.Pool | asyncpg.Connection, client_id: uuid.UUID,
                             project_id: uuid.UUID) -> None:
    held = await db.fetchrow(q("project_holdings"), client_id, project_id)
    what = [name for name, has in (("endpoints", held["has_endpoints"]),
                                   ("undelivered events", held["has_undelivered"])) if has]
    if what:
        raise InvalidState(f"the project still has {' and '.join(what)}; delete them first, or "
                           "delete the project with ?force=true")
