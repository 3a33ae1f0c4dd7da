"""Inbound endpoints: configuration (CRUD, audited) and the public receiver that verifies a platform's
request against its raw bytes and hands it to the event ingest (EventService.ingest) as one event.

The receiver works per worker from memory as far as it can: a token bucket per path suffix refuses
a flood before any database work, and the endpoint's row (secrets opened) is cached for a second."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson

from control.crypto import box_for
from control.errors import ApiError, BadRequest, Conflict, NotFound, RateLimited, Unauthorized
from control.jsonfmt import iso
from control.policy.inbound_presets import Preset, catalogue, doc_path
from control.policy.inbound_verify import MODES, InboundRequest, VerifyError, check_secrets, verify
from control.policy.jsonpath import CompiledPath
from control.policy.token_bucket import TokenBucket
from control.policy.transform import TransformError, TransformRunner, check_transformation
from control.services import audit
from control.services.events import DEFAULT_PRIORITY, EventService, NewEvent
from control.services.matching import off_loop
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import RESERVED_HEADERS, need_object, str_field, uuid_or_404

FIELDS = frozenset({"name", "pathSuffix", "source", "sourceConfig", "destinationIds", "eventTypeMapping",
                    "description", "transformation", "status"})
STATUSES = ("active", "inactive")
PATH_SUFFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")
MAX_DESTINATIONS = 50
MASK = "********"
LOOKUP_TTL_S = 1.0
MAX_CACHED = 10_000
MAX_KEPT_HEADERS = 64
# Headers never kept on the event: hop-by-hop, Mittr's own, credentials, and those every delivery
# sets itself (kept, they would go out twice under names differing only in case).
DROPPED_HEADERS = RESERVED_HEADERS | {"authorization", "cookie", "x-api-key", "x-forwarded-for", "forwarded",
                                      "user-agent", "x-mittr-attempt", "accept-encoding", "content-encoding",
                                      "expect", "accept"}
JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
TEXT_TYPES = ("text/", "application/xml", "application/x-www-form-urlencoded")


def _preset(value: Any) -> Preset:
    source = str_field(value, "source", max_len=64, allow_empty=False)
    preset = catalogue().get(source)
    if preset is None:
        raise BadRequest(f"source: unknown preset {source!r} (GET /api/v1/inbound-presets lists them)")
    return preset


def _secrets(preset: Preset, value: Any) -> dict[str, str]:
    config = need_object(value if value is not None else {}, "sourceConfig")
    unknown = sorted(set(config) - set(MODES[preset.mode].secrets))
    if unknown:
        raise BadRequest(f"sourceConfig.{unknown[0]}: not used by the {preset.mode} mode of {preset.source}")
    try:
        return check_secrets(preset.mode, config)
    except ValueError as exc:
        raise BadRequest(f"sourceConfig.{exc}") from exc


def _mapping(value: Any) -> str | None:
    if value is None:
        return None
    text = str_field(value, "eventTypeMapping", max_len=1024, allow_empty=False)
    try:
        doc_path(text)
    except ValueError as exc:
        raise BadRequest(f"eventTypeMapping: {exc}") from exc
    return text


def _transformation(value: Any) -> str | None:
    if value is None:
        return None
    text = str_field(value, "transformation", max_len=65536)
    try:
        check_transformation(text)
    except TransformError as exc:
        raise BadRequest(f"transformation: {exc}") from exc
    return text


def _destinations(value: Any) -> list[uuid.UUID]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_DESTINATIONS:
        raise BadRequest(f"destinationIds: expected a list of at most {MAX_DESTINATIONS} endpoint ids")
    out: list[uuid.UUID] = []
    for i, item in enumerate(value):
        try:
            out.append(uuid.UUID(str_field(item, f"destinationIds[{i}]", max_len=64)))
        except ValueError as exc:
            raise BadRequest(f"destinationIds[{i}]: not an endpoint id") from exc
    return list(dict.fromkeys(out))


def _parse(body: Any, current: asyncpg.Record | None, secrets_now: dict[str, str] | None) -> dict[str, Any]:
    """The row's values after applying `body` (create when `current` is None)."""
    data = need_object(body)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if current is None:
        for name in ("name", "pathSuffix", "source"):
            if data.get(name) is None:
                raise BadRequest(f"{name}: required")
    out: dict[str, Any] = {k: current[k] for k in ("name", "path_suffix", "source", "destination_ids",
                                                  "event_type_mapping", "description", "transformation",
                                                  "status")} if current else {
        "name": None, "path_suffix": None, "source": None, "destination_ids": [], "event_type_mapping": None,
        "description": "", "transformation": None, "status": "active"}
    if data.get("name") is not None:
        out["name"] = str_field(data["name"], "name", max_len=200, allow_empty=False)
    if data.get("pathSuffix") is not None:
        suffix = str_field(data["pathSuffix"], "pathSuffix", max_len=128, allow_empty=False)
        if not PATH_SUFFIX.match(suffix):
            raise BadRequest("pathSuffix: 1-128 URL-safe characters (letters, digits, '-', '_', '.', '~'), "
                             "starting with a letter or digit")
        out["path_suffix"] = suffix
    preset = _preset(data["source"] if data.get("source") is not None else out["source"])
    out["source"] = preset.source
    if "sourceConfig" in data or secrets_now is None:
        out["secrets"] = _secrets(preset, data.get("sourceConfig"))
    else:   # the stored secrets must still fit the (possibly new) source
        out["secrets"] = _secrets(preset, secrets_now)
    if "destinationIds" in data:
        out["destination_ids"] = _destinations(data["destinationIds"])
    if "eventTypeMapping" in data:
        out["event_type_mapping"] = _mapping(data["eventTypeMapping"])
    if data.get("description") is not None:
        out["description"] = str_field(data["description"], "description", max_len=2000)
    if "transformation" in data:
        out["transformation"] = _transformation(data["transformation"])
    if data.get("status") is not None:
        if data["status"] not in STATUSES:
            raise BadRequest("status: must be active or inactive")
        out["status"] = data["status"]
    return out


def inbound_json(row: asyncpg.Record, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """As the API shows it; the secrets only when given (the create response), masked otherwise."""
    preset = catalogue().get(row["source"])
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "pathSuffix": row["path_suffix"],
        "url": f"/inbound/{row['path_suffix']}",
        "source": row["source"],
        "mode": preset.mode if preset else None,
        "sourceConfig": dict(secrets) if secrets is not None else
        ({name: MASK for name in MODES[preset.mode].secrets} if preset else {}),
        "destinationIds": [str(d) for d in row["destination_ids"]],
        "eventTypeMapping": row["event_type_mapping"],
        "description": row["description"],
        "transformation": row["transformation"],
        "status": row["status"],
        "projectId": str(row["project_id"]) if row["project_id"] else None,
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the public route needs of one inbound endpoint, secrets opened."""

    id: uuid.UUID
    who: Principal
    preset: Preset
    secrets: dict[str, str]
    mapping: CompiledPath | None
    destinations: list[uuid.UUID]
    transformation: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class Incoming:
    suffix: str
    body: bytes
    headers: list[tuple[str, str]]
    query: dict[str, str]
    url: str


def payload_of(body: bytes, content_type: str) -> dict[str, Any]:
    """The event payload: a JSON object as sent; other JSON as {"body": value}; a form as its fields
    (a repeated field as a list); text as {"body", "contentType"}; other bytes base64 in "bodyBase64"."""
    media = content_type.split(";")[0].strip().lower()
    if JSON_TYPES.match(media) or (not media and body.lstrip()[:1] in (b"{", b"[")):
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body: invalid JSON ({exc.msg})") from exc
        return value if isinstance(value, dict) else {"body": value}
    if media == "application/x-www-form-urlencoded":
        fields: dict[str, Any] = {}
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("body: not a valid form") from exc
        for k, v in pairs:
            prev = fields.get(k)
            if k not in fields:
                fields[k] = v
            elif isinstance(prev, list):
                prev.append(v)
            else:
                fields[k] = [prev, v]
        return fields
    try:
        return {"body": body.decode(), "contentType": media}
    except UnicodeDecodeError:
        return {"bodyBase64": base64.b64encode(body).decode(), "contentType": media}


def kept_headers(headers: list[tuple[str, str]], preset: Preset) -> dict[str, str]:
    """The request's headers as the event keeps them, minus credentials and ones Mittr sets."""
    drop = set(DROPPED_HEADERS)
    if preset.mode == "token" and preset.params.get("header"):
        drop.add(str(preset.params["header"]).lower())
    out: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in drop or len(out) >= MAX_KEPT_HEADERS or len(value) > 8192 or "\r" in value or "\n" in value:
            continue
        out[name] = value
    return out


def _text(found: tuple[bool, object]) -> str | None:
    ok, value = found
    if ok and isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value)[:255]
    return None


class InboundService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.box = box_for(settings.security["encryption_key"] if settings else "")
        section = settings.raw.get("inbound", {}) if settings else {}
        self.rate = float(section.get("rate_per_path", 100))
        self.burst = float(section.get("burst_per_path", 200))
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._cache: OrderedDict[str, tuple[float, Receiver | None]] = OrderedDict()
        self._runner: TransformRunner | None = None

    # --- configuration

    def _open(self, row: asyncpg.Record) -> dict[str, str]:
        return dict(orjson.loads(self.box.open(row["source_config"])))

    async def _check_destinations(self, conn: asyncpg.Connection, who: Principal, ids: list[uuid.UUID]) -> None:
        if not ids:
            return
        found = {r["id"] for r in await conn.fetch(q("owned_endpoint_ids"), who.client_id, who.project_id, ids)}
        for i, d in enumerate(ids):
            if d not in found:
                raise BadRequest(f"destinationIds[{i}]: no such endpoint")

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        v = await off_loop(lambda: _parse(body, None, None))
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_destinations(conn, who, v["destination_ids"])
            row = await conn.fetchrow(
                q("insert_inbound_endpoint"), uuid.uuid4(), who.client_id, who.project_id, v["name"],
                v["path_suffix"], v["source"], self.box.seal(orjson.dumps(v["secrets"]).decode()),
                v["destination_ids"], v["event_type_mapping"], v["description"], v["transformation"], v["status"])
            if row is None:
                raise Conflict(f"the path suffix {v['path_suffix']!r} is taken")
            await audit.record(conn, who, "create", "inbound_endpoint", row["id"], after=inbound_json(row))
        return inbound_json(row, v["secrets"])

    async def get(self, who: Principal, inbound_id: str) -> dict[str, Any]:
        return inbound_json(await owned_row(self.pool, "get_inbound_endpoint", inbound_id, who, "inbound endpoint"))

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_inbound_endpoints", who, limit, cursor, inbound_json)

    async def update(self, who: Principal, inbound_id: str, body: Any) -> dict[str, Any]:
        current = await owned_row(self.pool, "get_inbound_endpoint", inbound_id, who, "inbound endpoint")
        v = await off_loop(lambda: _parse(body, current, self._open(current)))
        async with self.pool.acquire() as conn, conn.transaction():
            before = await owned_row(conn, "lock_inbound_endpoint", inbound_id, who, "inbound endpoint")
            await self._check_destinations(conn, who.with_project(before["project_id"]), v["destination_ids"])
            try:
                row = await conn.fetchrow(
                    q("update_inbound_endpoint"), before["id"], who.client_id, v["name"], v["path_suffix"],
                    v["source"], self.box.seal(orjson.dumps(v["secrets"]).decode()), v["destination_ids"],
                    v["event_type_mapping"], v["description"], v["transformation"], v["status"])
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"the path suffix {v['path_suffix']!r} is taken") from exc
            out = inbound_json(row)
            await audit.record(conn, who.with_project(row["project_id"]), "update", "inbound_endpoint", row["id"],
                               inbound_json(before), out)
        self._cache.pop(before["path_suffix"], None)
        return out

    async def delete(self, who: Principal, inbound_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("delete_inbound_endpoint"), uuid_or_404(inbound_id, "inbound endpoint"),
                                      who.client_id, who.project_id)
            if row is None:
                raise NotFound("inbound endpoint not found")
            await audit.record(conn, who.with_project(row["project_id"]), "delete", "inbound_endpoint", row["id"],
                               before=inbound_json(row))
        self._cache.pop(row["path_suffix"], None)

    # --- the public receiver

    def _take(self, suffix: str) -> None:
        """One token from this path's bucket, or 429: refused before any other work."""
        if self.rate <= 0:
            return
        bucket = self._buckets.get(suffix)
        now = time.monotonic()
        if bucket is None:
            bucket = self._buckets[suffix] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > MAX_CACHED:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(suffix)
        if not bucket.try_take(now):
            wait = max(1, int(bucket.wait_time(now) + 0.999))
            raise RateLimited(f"more than {self.rate:g} requests per second to this path",
                              headers={"Retry-After": str(wait)})

    async def _receiver(self, suffix: str) -> Receiver | None:
        now = time.monotonic()
        hit = self._cache.get(suffix)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await self.pool.fetchrow(q("inbound_endpoint_by_path"), suffix)
        found = None
        if row is not None and row["source"] in catalogue():
            preset = catalogue()[row["source"]]
            who = Principal(row["client_id"], None, frozenset(), None, project_id=row["project_id"],
                            label=f"inbound:{suffix}")
            found = Receiver(row["id"], who, preset, self._open(row),
                             doc_path(row["event_type_mapping"]) if row["event_type_mapping"] else None,
                             list(row["destination_ids"]), row["transformation"], row["status"] == "active")
        self._cache[suffix] = (now + LOOKUP_TTL_S, found)
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return found

    def _transform(self, r: Receiver, payload: dict[str, Any], headers: dict[str, str],
                   event_type: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The endpoint's transformation over {payload, headers, eventType}; None when it cancels."""
        assert r.transformation is not None
        if self._runner is None:
            self._runner = TransformRunner()
        webhook: dict[str, object] = {"payload": payload, "headers": headers, "url": None, "eventType": event_type,
                                      "eventId": None}
        result = self._runner.apply(f"inbound:{r.id}:{hash(r.transformation)}", r.transformation, webhook,
                                    tenant=str(r.who.client_id))
        if result.throttled_ms is not None:
            raise RateLimited("transformation time budget spent",
                              headers={"Retry-After": str(max(1, result.throttled_ms // 1000))})
        if result.error is not None:
            raise ApiError(result.error, code="TRANSFORMATION_FAILED", status=422)
        if result.cancelled:
            return None
        out = orjson.loads(result.payload) if result.payload is not None else payload
        if not isinstance(out, dict):
            raise ApiError("transformation must return a JSON object payload", code="TRANSFORMATION_FAILED",
                           status=422)
        return out, result.headers if result.headers is not None else headers

    async def receive(self, req: Incoming, events: EventService) -> dict[str, Any]:
        """Verify, then ingest: 202 body, or 401/404/429 (ApiError)."""
        if not PATH_SUFFIX.match(req.suffix):
            raise NotFound("inbound endpoint not found")
        self._take(req.suffix)
        r = await self._receiver(req.suffix)
        if r is None or not r.active:
            raise NotFound("inbound endpoint not found")
        lower = {k.lower(): v for k, v in req.headers}
        try:
            verify(r.preset.mode, r.preset.params, r.secrets,
                   InboundRequest(req.body, lower, req.url, time.time(), req.query))
        except VerifyError as exc:
            raise Unauthorized(f"signature verification failed: {exc}") from exc
        payload = payload_of(req.body, lower.get("content-type", ""))
        doc = {"headers": lower, "query": req.query, "data": payload}
        event_type = (_text(r.mapping.get(doc)) if r.mapping else None) \
            or (_text(r.preset.event_type.get(doc)) if r.preset.event_type else None) \
            or f"{r.preset.source}.webhook"
        delivery = _text(r.preset.delivery_id.get(doc)) if r.preset.delivery_id else None
        key = f"inbound:{r.id}:{delivery or uuid.uuid4()}"[:255]
        headers = kept_headers(req.headers, r.preset)
        if r.transformation:
            shaped = await off_loop(lambda: self._transform(r, payload, headers, event_type))
            if shaped is None:
                return {"accepted": True, "eventId": None, "eventType": event_type, "duplicate": False,
                        "cancelled": True}
            payload, headers = shaped
        ev = NewEvent(key, None, event_type, orjson.dumps(payload), payload, headers, None, DEFAULT_PRIORITY, 0)
        try:
            created = await events.ingest(r.who, ev, r.destinations or None)
        except Conflict as exc:   # the platform retried a delivery we already have
            existing = (exc.extra or {}).get("eventId")
            return {"accepted": True, "eventId": existing, "eventType": event_type, "duplicate": True}
        return {"accepted": True, "eventId": created["id"], "eventType": event_type, "duplicate": False}

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.close()


def presets_json() -> dict[str, Any]:
    data = [p.json() for p in catalogue().values()]
    return {"data": data, "count": len(data), "modes": {name: m.summary for name, m in MODES.items()}}
