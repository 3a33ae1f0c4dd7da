"""Event types: a registry of names with optional JSON Schemas that fan-out payloads must satisfy.

Schemas are tenant input: control.policy.json_schema bounds them (no retrieval, RE2 regexes, a
step budget). Compiling one (its meta-schema check alone can take a good fraction of a second)
runs on the matching pool, and so do payload checks that outgrow the inline budget: the event
loop never waits on either."""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from typing import Any

import asyncpg
from jsonschema import exceptions as schema_errors
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from control.errors import BadRequest, Conflict, NotFound
from control.jsonfmt import iso
from control.policy import json_schema
from control.policy.json_schema import SchemaRefused, TooCostly, json_path
from control.services import audit
from control.services.matching import off_loop
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, no_nul, str_field, uuid_or_404

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

    Besides the meta-schema, the bounds of control.policy.json_schema apply (local `$ref`s only,
    RE2 regexes, size and depth). The schema is also tried once on `{}` so that a top-level `$ref`
    that cannot be resolved, or a schema too costly even for that, is refused now rather than at
    every event."""
    if not isinstance(schema, dict):
        raise BadRequest(f"{name}: expected a JSON Schema object")
    if not isinstance(schema.get("$schema", ""), str):
        raise BadRequest(f"{name}.$schema: expected a string")
    try:
        base = json_schema.dialect(schema)
        json_schema.check_document(schema)
        json_schema.check_against_meta_schema(base, schema)
        validator = json_schema.build(base, schema)
        json_schema.best_error(validator, {}, json_schema.PROBE_STEPS)
    except SchemaRefused as exc:
        raise BadRequest(f"{name}{exc.path}: {exc.reason}") from exc
    except schema_errors.SchemaError as exc:
        raise BadRequest(f"{name}{json_path(exc.absolute_path)}: not a valid JSON Schema: "
                         f"{_with_cause(exc)}") from exc
    except Unresolvable as exc:
        raise BadRequest(f"{name}: a $ref cannot be resolved ({exc}); remote references are not fetched") from exc
    except TooCostly as exc:
        raise BadRequest(f"{name}: too costly to evaluate (more than {json_schema.PROBE_STEPS} steps "
                         "on an empty object)") from exc
    except RecursionError as exc:
        raise BadRequest(f"{name}: nested or self-referencing too deeply") from exc
    except Exception as exc:   # the library refusing a user's schema in some other way is still a 400
        raise BadRequest(f"{name}: not a usable JSON Schema ({type(exc).__name__}: {exc})") from exc
    return validator


def _with_cause(exc: schema_errors.SchemaError) -> str:
    """The library's message, plus why when a format check (an RE2 refusal) said no."""
    return f"{exc.message} ({exc.cause})" if exc.cause is not None else exc.message


def _first_error(validator: Validator, payload: Any, event_type: str,
                 steps: int) -> schema_errors.ValidationError | None:
    """The error to report, or None; TooCostly past `steps`, 400 when the schema cannot be applied."""
    try:
        return json_schema.best_error(validator, payload, steps)
    except TooCostly:
        raise
    except Unresolvable as exc:
        raise BadRequest(f"eventType: the schema of {event_type!r} has an unresolvable $ref ({exc})") from exc
    except RecursionError as exc:
        raise BadRequest(f"payload: too deep to check against the schema of {event_type!r}") from exc
    except Exception as exc:   # a stored schema the library cannot apply: the caller's 400, not a 500
        raise BadRequest(f"eventType: the schema of {event_type!r} cannot be applied ({exc})") from exc


def _report(error: schema_errors.ValidationError | None) -> None:
    if error is not None:
        raise BadRequest(f"payload{json_path(error.absolute_path)}: {error.message}")


def validate_payload(validator: Validator, payload: Any, event_type: str,
                     steps: int = json_schema.MAX_STEPS) -> None:
    """400 naming the failing path, e.g. `payload.amount: 'x' is not of type 'integer'`."""
    try:
        error = _first_error(validator, payload, event_type, steps)
    except TooCostly as exc:
        raise BadRequest(f"payload: too costly to check against the schema of {event_type!r} "
                         f"(more than {steps} steps)") from exc
    _report(error)


async def check_payload(validator: Validator, payload: Any, event_type: str) -> None:
    """validate_payload, on the event loop while it stays cheap and on the matching pool after."""
    try:
        error = _first_error(validator, payload, event_type, json_schema.INLINE_STEPS)
    except TooCostly:
        await off_loop(lambda: validate_payload(validator, payload, event_type))
        return
    _report(error)


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
                                 payload: Any, cache: ValidatorCache = VALIDATORS) -> tuple[uuid.UUID, int] | None:
    """When `event_type` is registered with a schema in the caller's scope, `payload` must match it.
    Returns the (event type id, revision) of the schema applied, None when none applies.

    One indexed lookup per event; the schema is read and compiled only when its revision is new
    to this worker."""
    if event_type is None:
        return None
    ref = await db.fetchrow(q("event_type_schema_ref"), who.client_id, who.project_id, event_type)
    if ref is None:
        return None
    key = (ref["id"], ref["revision"])
    validator = cache.get(key)
    if validator is None:
        row = await db.fetchrow(q("event_type_schema"), ref["id"])
        if row is None or row["schema"] is None:     # deleted or cleared in between
            return None
        try:
            validator = await off_loop(lambda: compile_schema(row["schema"]))
        except BadRequest as exc:   # stored before a rule was tightened: it applies to no payload
            raise BadRequest(f"eventType: the schema of {event_type!r} is no longer accepted "
                             f"({exc.message}); update the event type") from exc
        key = (ref["id"], row["revision"])
        cache.put(key, validator)
    await check_payload(validator, payload, event_type)
    return key


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
            compile_schema(no_nul(data["schema"], "schema"))
        out["schema"] = data["schema"]
    if data.get("schemaVersion") is not None:
        out["schema_version"] = str_field(data["schemaVersion"], "schemaVersion", max_len=64,
                                          allow_empty=False)
    return out


class EventTypeService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        v = await off_loop(lambda: _parse(body, None))
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("insert_event_type"), uuid.uuid4(), who.client_id, who.project_id,
                                      v["name"], v["description"], v["schema"], v["schema_version"])
            if row is None:
                raise Conflict(f"an event type named {v['name']!r} already exists")
            out = event_type_json(row)
            await audit.record(conn, who, "create", "event_type", row["id"], after=out)
        return out

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
        v = await off_loop(lambda: _parse(body, current))   # a schema compiles before any lock is taken
        async with self.pool.acquire() as conn, conn.transaction():
            before = await owned_row(conn, "lock_event_type", type_id, who, "event type")
            try:
                row = await conn.fetchrow(q("update_event_type"), current["id"], who.client_id, v["name"],
                                          v["description"], v["schema"], v["schema_version"])
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"an event type named {v['name']!r} already exists") from exc
            if row is None:
                raise NotFound("event type not found")
            out = event_type_json(row)
            await audit.record(conn, who.with_project(row["project_id"]), "update", "event_type", row["id"],
                               event_type_json(before), out)
        return out

    async def delete(self, who: Principal, type_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("delete_event_type"), uuid_or_404(type_id, "event type"),
                                      who.client_id, who.project_id)
            if row is None:
                raise NotFound("event type not found")
            await audit.record(conn, who.with_project(row["project_id"]), "delete", "event_type", row["id"],
                               before=event_type_json(row))
