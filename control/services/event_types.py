"""Event types: a registry of names with optional JSON Schemas that fan-out payloads must satisfy."""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from typing import Any

import asyncpg
from jsonschema import exceptions as schema_errors
from jsonschema import validators
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from control.errors import BadRequest, Conflict, NotFound
from control.jsonfmt import iso
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, str_field, uuid_or_404

FIELDS = frozenset({"name", "description", "schema", "schemaVersion"})
DEFAULT_SCHEMA_VERSION = "1.0"
# Concrete names: endpoints subscribe with `*` patterns, event types are what they match.
_NAME = re.compile(r"^[^\s*]{1,256}$")
VALIDATOR_CACHE_SIZE = 1024


def _name(value: Any) -> str:
    text = str_field(value, "name", max_len=256, allow_empty=False)
    if not _NAME.match(text):
        raise BadRequest("name: no spaces or '*' allowed (at most 256 characters)")
    return text


def compile_schema(schema: Any, name: str = "schema") -> Validator:
    """A validator for a JSON Schema (draft from its `$schema`, 2020-12 by default); 400 if invalid.

    The schema is also tried once on `{}` so that a top-level `$ref` that cannot be resolved (remote
    references are never fetched) is refused now rather than at every event."""
    if not isinstance(schema, dict):
        raise BadRequest(f"{name}: expected a JSON Schema object")
    if not isinstance(schema.get("$schema", ""), str):
        raise BadRequest(f"{name}.$schema: expected a string")
    try:
        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema)
        for _ in validator.iter_errors({}):
            pass
    except schema_errors.SchemaError as exc:
        raise BadRequest(f"{name}{_json_path(exc.absolute_path)}: not a valid JSON Schema: {exc.message}") from exc
    except Unresolvable as exc:
        raise BadRequest(f"{name}: a $ref cannot be resolved ({exc}); remote references are not fetched") from exc
    except RecursionError as exc:
        raise BadRequest(f"{name}: nested or self-referencing too deeply") from exc
    except Exception as exc:   # the library refusing a user's schema in some other way is still a 400
        raise BadRequest(f"{name}: not a usable JSON Schema ({type(exc).__name__}: {exc})") from exc
    return validator


def _json_path(parts: Any) -> str:
    """`.name` for object keys, `[i]` for array indexes."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def validate_payload(validator: Validator, payload: Any, event_type: str) -> None:
    """400 naming the failing path, e.g. `payload.amount: 'x' is not of type 'integer'`."""
    try:
        error = schema_errors.best_match(validator.iter_errors(payload))
    except Unresolvable as exc:
        raise BadRequest(f"eventType: the schema of {event_type!r} has an unresolvable $ref ({exc})") from exc
    except RecursionError as exc:
        raise BadRequest(f"payload: too deep to check against the schema of {event_type!r}") from exc
    except Exception as exc:   # a stored schema the library cannot apply: the caller's 400, not a 500
        raise BadRequest(f"eventType: the schema of {event_type!r} cannot be applied ({exc})") from exc
    if error is not None:
        raise BadRequest(f"payload{_json_path(error.absolute_path)}: {error.message}")


class ValidatorCache:
    """Compiled validators per (event type id, revision), LRU-bounded, one per API worker."""

    def __init__(self, size: int = VALIDATOR_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[uuid.UUID, int], Validator] = OrderedDict()

    def get(self, key: tuple[uuid.UUID, int]) -> Validator | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[uuid.UUID, int], validator: Validator) -> None:
        self._items[key] = validator
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


VALIDATORS = ValidatorCache()


async def validate_event_payload(db: asyncpg.Connection | asyncpg.Pool, who: Principal, event_type: str | None,
                                 payload: Any, cache: ValidatorCache = VALIDATORS) -> None:
    """When `event_type` is registered with a schema in the caller's scope, `payload` must match it.

    One indexed lookup per event; the schema is read and compiled only when its revision is new
    to this worker."""
    if event_type is None:
        return
    ref = await db.fetchrow(q("event_type_schema_ref"), who.client_id, who.project_id, event_type)
    if ref is None:
        return
    key = (ref["id"], ref["revision"])
    validator = cache.get(key)
    if validator is None:
        row = await db.fetchrow(q("event_type_schema"), ref["id"])
        if row is None or row["schema"] is None:     # deleted or cleared in between
            return
        validator = compile_schema(row["schema"])
        cache.put((ref["id"], row["revision"]), validator)
    validate_payload(validator, payload, event_type)


def event_type_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "schema": row["schema"],
        "schemaVersion": row["schema_version"],
        "projectId": str(row["project_id"]) if row["project_id"] else None,
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def _parse(body: Any, current: asyncpg.Record | None) -> dict[str, Any]:
    data = need_object(body)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if current is None and data.get("name") is None:
        raise BadRequest("name: required")
    out: dict[str, Any] = {
        "name": current["name"] if current else None,
        "description": current["description"] if current else "",
        "schema": current["schema"] if current else None,
        "schema_version": current["schema_version"] if current else DEFAULT_SCHEMA_VERSION,
    }
    if data.get("name") is not None:
        out["name"] = _name(data["name"])
    if data.get("description") is not None:
        out["description"] = str_field(data["description"], "description", max_len=2000)
    if "schema" in data:
        if data["schema"] is not None:
            compile_schema(data["schema"])
        out["schema"] = data["schema"]
    if data.get("schemaVersion") is not None:
        out["schema_version"] = str_field(data["schemaVersion"], "schemaVersion", max_len=64,
                                          allow_empty=False)
    return out


class EventTypeService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        v = _parse(body, None)
        row = await self.pool.fetchrow(q("insert_event_type"), uuid.uuid4(), who.client_id, who.project_id,
                                       v["name"], v["description"], v["schema"], v["schema_version"])
        if row is None:
            raise Conflict(f"an event type named {v['name']!r} already exists")
        return event_type_json(row)

    async def _row(self, who: Principal, type_id: str) -> asyncpg.Record:
        return await owned_row(self.pool, "get_event_type", type_id, who, "event type")

    async def get(self, who: Principal, type_id: str) -> dict[str, Any]:
        return event_type_json(await self._row(who, type_id))

    async def get_by_name(self, who: Principal, name: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(q("get_event_type_by_name"), who.client_id, who.project_id, name)
        if row is None:
            raise NotFound("event type not found")
        return event_type_json(row)

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_event_types", who, limit, cursor, event_type_json)

    async def update(self, who: Principal, type_id: str, body: Any) -> dict[str, Any]:
        current = await self._row(who, type_id)
        v = _parse(body, current)
        try:
            row = await self.pool.fetchrow(q("update_event_type"), current["id"], who.client_id, v["name"],
                                           v["description"], v["schema"], v["schema_version"])
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"an event type named {v['name']!r} already exists") from exc
        if row is None:
            raise NotFound("event type not found")
        return event_type_json(row)

    async def delete(self, who: Principal, type_id: str) -> None:
        row = await self.pool.fetchval(q("delete_event_type"), uuid_or_404(type_id, "event type"),
                                       who.client_id, who.project_id)
        if row is None:
            raise NotFound("event type not found")
