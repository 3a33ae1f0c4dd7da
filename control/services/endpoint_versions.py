"""Endpoint versions: the configuration history of an endpoint, field-level diffs, and rollback.

Versions are written by a database trigger (migration 004) whenever `endpoints.version` changes,
so every path that changes a configuration records one; this module only reads them, and rolls
back by applying an old snapshot through the ordinary update (which makes a new version).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from control.errors import BadRequest, NotFound
from control.jsonfmt import iso
from control.services.endpoints import FIELDS, EndpointService
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q

# Configuration fields a snapshot shows and a rollback restores: everything GET shows (secrets
# and credentials are not part of a version, and a rollback leaves them as they are).
VERSIONED = tuple(f for f in FIELDS if f.shown)


def snapshot_json(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A stored snapshot (column names) in the API's field names."""
    out = {f.json: snapshot[f.column] for f in VERSIONED if f.column in snapshot}
    out["hasMtls"] = bool(snapshot.get("mtls_cert"))
    return out


def version_json(endpoint_id: str, row: asyncpg.Record) -> dict[str, Any]:
    return {"endpointId": endpoint_id, "version": row["version"], "snapshot": snapshot_json(row["snapshot"]),
            "createdAt": iso(row["created_at"])}


def version_number(raw: str | None, name: str) -> int:
    if raw is None or raw == "":
        raise BadRequest(f"{name}: required (a version number)")
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}: expected a positive integer version number") from exc
    if not 1 <= value <= 2**31 - 1:
        raise BadRequest(f"{name}: expected a positive integer version number")
    return value


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level changes from `old` to `new`, in the order of the endpoint's fields."""
    names = [*old, *(k for k in new if k not in old)]
    return [{"field": n, "from": old.get(n), "to": new.get(n)} for n in names if old.get(n) != new.get(n)]


class EndpointVersionService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.endpoints = EndpointService(pool, partitions, settings)

    async def list(self, who: Principal, endpoint_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """Newest first; the cursor is the last version number of the previous page."""
        ep = await self.endpoints._get_row(who, endpoint_id)
        before = version_number(cursor, "cursor") if cursor else None
        rows = await self.pool.fetch(q("list_endpoint_versions"), ep["id"], who.client_id, before, limit + 1)
        has_more = len(rows) > limit
        return {"data": [version_json(str(ep["id"]), r) for r in rows[:limit]],
                "pagination": {"hasMore": has_more, "cursor": str(rows[limit - 1]["version"]) if has_more else None}}

    async def _version(self, who: Principal, endpoint_id: str, raw: str) -> tuple[asyncpg.Record, asyncpg.Record]:
        number = version_number(raw, "version")
        ep = await self.endpoints._get_row(who, endpoint_id)
        row = await self.pool.fetchrow(q("get_endpoint_version"), ep["id"], who.client_id, number)
        if row is None:
            raise NotFound(f"version {number} of this endpoint not found")
        return ep, row

    async def get(self, who: Principal, endpoint_id: str, raw: str) -> dict[str, Any]:
        ep, row = await self._version(who, endpoint_id, raw)
        return version_json(str(ep["id"]), row)

    async def diff(self, who: Principal, endpoint_id: str, raw_v1: str | None, raw_v2: str | None) -> dict[str, Any]:
        v1, v2 = version_number(raw_v1, "v1"), version_number(raw_v2, "v2")
        ep = await self.endpoints._get_row(who, endpoint_id)
        rows = await self.pool.fetch(q("get_endpoint_versions_pair"), ep["id"], who.client_id, [v1, v2])
        found = {r["version"]: snapshot_json(r["snapshot"]) for r in rows}
        for number in (v1, v2):
            if number not in found:
                raise NotFound(f"version {number} of this endpoint not found")
        return {"v1": v1, "v2": v2, "changes": diff(found[v1], found[v2])}

    async def rollback(self, who: Principal, endpoint_id: str, raw: str) -> dict[str, Any]:
        """Apply version n's configuration as an ordinary update: validated, itself a new version, and
        audited as a `rollback`."""
        _, row = await self._version(who, endpoint_id, raw)
        body = {f.json: row["snapshot"][f.column] for f in VERSIONED if f.column in row["snapshot"]}
        return await self.endpoints.update(who, endpoint_id, body, action="rollback")
