"""Endpoints: every field of the guide's table, validated, defaulted, stored and shown."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from control.crypto import box_for
from control.errors import BadRequest, NotFound
from control.jsonfmt import iso
from control.policy import destinations
from control.policy.filters import FilterError, compile_filter
from control.policy.jsonpath import compile_path
from control.policy.partitioning import partition_for
from control.policy.signing import generate_secret, secret_bytes
from control.policy.ssrf import AddressPolicy
from control.policy.transform import TransformError, check_transformation
from control.services import audit
from control.services.mtls import check_pair
from control.services.owned import owned_page, owned_row
from control.services.plan_limits import PlanLimits
from control.services.principal import Principal
from control.settings import Settings
from control.signalling import notify_endpoint_changed, notify_work
from control.store.queries import q
from control.validate import (
    bool_field,
    cidr_list,
    float_field,
    headers_field,
    int_field,
    need_object,
    no_nul,
    reachable_cidrs,
    reachable_url,
    str_field,
    str_list,
    url_field,
)

DELIVERY_MODES = ("push", "poll", "storage", "broker")
# Modes whose deliveries go to a storageConfig / brokerConfig destination rather than `url`.
DESTINATION_CONFIG = {"storage": "storage_config", "broker": "broker_config"}
DAY_MS = 86_400_000


def _filter(value: Any, name: str) -> Any:
    if value is None:
        return None
    no_nul(value, name)
    try:
        compile_filter(value)
    except FilterError as exc:   # its message already names the entry: `filter[2].operator: ...`
        raise BadRequest(str(exc)) from exc
    return value


def _transformation(value: Any, name: str) -> str | None:
    """JavaScript defining `handler(webhook)`: compiled here so a broken one is refused up front."""
    if value is None:
        return None
    text = str_field(value, name, max_len=65536)
    try:
        check_transformation(text)
    except TransformError as exc:
        raise BadRequest(f"{name}: {exc}") from exc
    return text


def _jsonpath(value: Any, name: str) -> str | None:
    if value is None:
        return None
    text = str_field(value, name, max_len=512, allow_empty=False)
    try:
        compile_path(text)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from exc
    return text


def _mode(value: Any, name: str) -> str:
    text = str_field(value, name, max_len=16)
    if text not in DELIVERY_MODES:
        raise BadRequest(f"{name}: must be one of {', '.join(DELIVERY_MODES)}")
    return text


def _object_or_none(value: Any, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    return need_object(value, name)


def _optional_str(max_len: int) -> Callable[[Any, str], str | None]:
    def check(value: Any, name: str) -> str | None:
        return None if value is None else str_field(value, name, max_len=max_len)
    return check


@dataclass(frozen=True)
class Field:
    json: str
    column: str
    check: Callable[[Any, str], Any]
    default: Callable[[], Any]
    shown: bool = True      # returned by GET (secrets are not)
    present: Callable[[Any], Any] | None = None     # what GET shows of the stored value


FIELDS: tuple[Field, ...] = (
    Field("url", "url", url_field, lambda: None),
    Field("eventTypes", "event_types",
          lambda v, n: str_list(v, n, max_items=100, max_len=256, allow_empty_list=False), lambda: None),
    Field("description", "description", lambda v, n: str_field(v, n, max_len=2000), lambda: ""),
    Field("filter", "filter", _filter, lambda: None),
    Field("transformation", "transformation", _transformation, lambda: None),
    Field("fifo", "fifo", bool_field, lambda: False),
    Field("fifoPartitionKey", "fifo_partition_key", _jsonpath, lambda: None),
    Field("maxRetries", "max_retries", lambda v, n: int_field(v, n, 1, 25), lambda: 5),
    Field("retryBackoffMs", "retry_backoff_ms", lambda v, n: int_field(v, n, 0, DAY_MS), lambda: 1000),
    Field("retryBackoffMax", "retry_backoff_max", lambda v, n: int_field(v, n, 0, 7 * DAY_MS),
          lambda: DAY_MS),
    Field("retryBackoffMult", "retry_backoff_mult", lambda v, n: float_field(v, n, 1.0, 100.0), lambda: 2.0),
    Field("timeoutMs", "timeout_ms", lambda v, n: int_field(v, n, 100, 300_000), lambda: 30_000),
    Field("rateLimitPerSec", "rate_limit_per_sec", lambda v, n: int_field(v, n, 0, 1_000_000), lambda: 0),
    Field("circuitThreshold", "circuit_threshold", lambda v, n: int_field(v, n, 0, 10_000), lambda: 5),
    Field("circuitResetMs", "circuit_reset_ms", lambda v, n: int_field(v, n, 100, DAY_MS), lambda: 300_000),
    Field("customHeaders", "custom_headers", headers_field, dict),
    Field("allowedCidrs", "allowed_cidrs", cidr_list, list),
    Field("blockedCidrs", "blocked_cidrs", cidr_list, list),
    Field("deliveryMode", "delivery_mode", _mode, lambda: "push"),
    Field("storageConfig", "storage_config", _object_or_none, lambda: None, present=destinations.shown),
    Field("signingSecret", "signing_secret",
          lambda v, n: str_field(v, n, max_len=256, allow_empty=False), generate_secret, shown=False),
    Field("mtlsCert", "mtls_cert", _optional_str(65536), lambda: None, shown=False),
    Field("mtlsKey", "mtls_key", _optional_str(65536), lambda: None, shown=False),
    Field("standardWebhooks", "standard_webhooks", bool_field, lambda: False),
    Field("brokerConfig", "broker_config", _object_or_none, lambda: None, present=destinations.shown),
)
# Stored sealed (control/crypto.py); a value taken from the current row is already sealed.
SEALED = ("signing_secret", "mtls_key")
BY_JSON = {f.json: f for f in FIELDS}
REQUIRED = ("url", "eventTypes")
# Column order of the insert_endpoint / update_endpoint statements after their leading ids.
UPDATE_COLUMNS = [f.column for f in FIELDS]
# One change to a locked endpoint row: the changed row back (None: it was not there).
Change = Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[asyncpg.Record | None]]


def _check_whole(values: dict[str, Any]) -> None:
    if values["retry_backoff_max"] < values["retry_backoff_ms"]:
        raise BadRequest("retryBackoffMax: must not be less than retryBackoffMs")
    if bool(values["mtls_cert"]) != bool(values["mtls_key"]):
        raise BadRequest("mtlsCert: mtlsCert and mtlsKey must be given together")
    if values["signing_secret"] is not None and len(values["signing_secret"]) < 8:
        raise BadRequest("signingSecret: must be at least 8 characters")


def _parse(body: Any, current: dict[str, Any] | None) -> dict[str, Any]:
    data = need_object(body)
    unknown = sorted(set(data) - set(BY_JSON))
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if current is None:
        for name in REQUIRED:
            if data.get(name) is None and not (name == "url" and str(data.get("deliveryMode")) in DESTINATION_CONFIG):
                raise BadRequest(f"{name}: required")
    values: dict[str, Any] = {}
    for field in FIELDS:
        if field.json in data:
            raw = data[field.json]
            if raw is None and field.json in REQUIRED:
                raise BadRequest(f"{field.json}: must not be null")
            values[field.column] = field.check(raw, field.json) if raw is not None else field.default()
        elif current is not None:
            values[field.column] = current[field.column]
        else:
            values[field.column] = field.default()
    _check_whole(values)
    return values


def _json_name(column: str) -> str:
    return next(f.json for f in FIELDS if f.column == column)


def _given(body: Any) -> set[str]:
    """Columns this request sets (its other values come from the current row, or defaults)."""
    return {f.column for f in FIELDS if isinstance(body, dict) and f.json in body}


def _secret_generated(body: Any, creating: bool) -> bool:
    """Mittr made the secret: none given at create, or `null` in a PATCH (rotation). Only then is
    it returned; a secret the caller chose is never echoed back."""
    if creating:
        return not isinstance(body, dict) or body.get("signingSecret") is None
    return isinstance(body, dict) and "signingSecret" in body and body["signingSecret"] is None


def endpoint_json(row: asyncpg.Record | dict[str, Any], include_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(row["id"])}
    for field in FIELDS:
        if field.shown:
            out[field.json] = field.present(row[field.column]) if field.present else row[field.column]
    out["hasMtls"] = bool(row["mtls_cert"])
    out["standardWebhooksPublicKey"] = row["sw_ed25519_public"]
    if include_secret:
        out["signingSecret"] = row["signing_secret"]
    out.update({
        "status": row["status"],
        "circuitState": row["circuit_state"],
        "version": row["version"],
        "projectId": str(row["project_id"]) if row["project_id"] else None,
        "subAccountId": str(row["sub_account_id"]) if row["sub_account_id"] else None,
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    })
    return out


class EndpointService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.partitions = partitions
        self.settings = settings
        self.box = box_for(settings.security["encryption_key"] if settings else "")
        self.policy = AddressPolicy.from_engine(settings.engine if settings else None)
        self.limits = PlanLimits(pool, partitions, settings)

    def _destination(self, values: dict[str, Any], given: set[str], current: dict[str, Any] | None) -> None:
        """Check (and seal the credentials of) the storageConfig / brokerConfig the mode uses; the
        other one is cleared. Such an endpoint's `url` shows where its deliveries go."""
        mode = values["delivery_mode"]
        for other_mode, column in DESTINATION_CONFIG.items():
            if other_mode == mode:
                continue
            if column in given and values[column] is not None:
                raise BadRequest(f"{_json_name(column)}: only used with deliveryMode {other_mode}")
            values[column] = None
        if mode not in DESTINATION_CONFIG:
            return
        column = DESTINATION_CONFIG[mode]
        if values[column] is None:
            raise BadRequest(f"{_json_name(column)}: required with deliveryMode {mode}")
        if column not in given and current is not None and current["delivery_mode"] == mode:
            values["url"] = current["url"]
            return                                       # unchanged, already checked and sealed
        before = current[column] if current is not None else None
        try:
            if mode == "storage":
                root = str((self.settings.engine if self.settings else {}).get("storage_root") or "")
                values[column] = destinations.parse_storage(values[column], self.box.seal, before,
                                                            filesystem_allowed=bool(root))
            else:
                values[column] = destinations.parse_broker(values[column], self.box.seal, before)
        except destinations.DestinationError as exc:
            raise BadRequest(str(exc)) from exc
        values["url"] = destinations.display_url(values[column])

    def _check_deliverable(self, values: dict[str, Any], given: set[str], creating: bool) -> None:
        """Refuse now what the shards could never deliver, rather than accept it and let events die."""
        if values["delivery_mode"] not in DESTINATION_CONFIG:
            reachable_url(values["url"], "url", self.policy)
        reachable_cidrs(values["allowed_cidrs"], "allowedCidrs", self.policy)
        if values["standard_webhooks"]:
            secret = values["signing_secret"]
            if not (creating or "signing_secret" in given):
                secret = self.box.open(secret)      # the current row's, sealed
            try:
                secret_bytes(secret)                # exactly what signing the headers will do
            except ValueError as exc:
                raise BadRequest(f"signingSecret: {exc} (standardWebhooks signs with the decoded "
                                 "key; omit signingSecret to have one generated)") from exc

    def _seal(self, values: dict[str, Any], given: set[str], creating: bool,
              current: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check an mTLS pair given in this request, then seal the secrets this request set."""
        self._destination(values, given, current)
        self._check_deliverable(values, given, creating)
        if creating or given & {"mtls_cert", "mtls_key"}:
            if values["mtls_cert"] and values["mtls_key"]:
                check_pair(values["mtls_cert"], values["mtls_key"])
        sealed = dict(values)
        for column in SEALED:
            if (creating or column in given) and values[column] is not None:
                sealed[column] = self.box.seal(values[column])
        return sealed

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        values = _parse(body, None)
        sealed = self._seal(values, _given(body), creating=True)
        endpoint_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            sealed = await self.limits.admit_endpoint(conn, who.client_id, sealed, _given(body), creating=True)
            row = await conn.fetchrow(
                q("insert_endpoint"), endpoint_id, who.client_id, who.project_id, who.sub_account_id,
                *[sealed[c] for c in UPDATE_COLUMNS], partition_for(str(endpoint_id), self.partitions))
            await audit.record(conn, who, "create", "endpoint", endpoint_id, after=endpoint_json(row))
        return endpoint_json({**dict(row), "signing_secret": values["signing_secret"]},
                             include_secret=_secret_generated(body, creating=True))

    async def _get_row(self, who: Principal, endpoint_id: str) -> asyncpg.Record:
        return await owned_row(self.pool, "get_endpoint", endpoint_id, who, "endpoint", sub_account=True)

    async def get(self, who: Principal, endpoint_id: str) -> dict[str, Any]:
        return endpoint_json(await self._get_row(who, endpoint_id))

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_endpoints", who, limit, cursor, endpoint_json, sub_account=True)

    async def change(self, who: Principal, endpoint_id: str, action: str, apply: Change,
                     shown: Callable[[asyncpg.Record], dict[str, Any] | None] = endpoint_json) -> asyncpg.Record:
        """Lock the caller's endpoint, apply one change and write its audit row (before and after as
        GET shows them), all in one transaction; then tell the shards. Returns the changed row."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await owned_row(conn, "lock_endpoint", endpoint_id, who, "endpoint", sub_account=True)
            row = await apply(conn, current)
            if row is None:
                raise NotFound("endpoint not found")
            await audit.record(conn, who.with_project(current["project_id"]), action, "endpoint", current["id"],
                               endpoint_json(current), shown(row))
        await notify_endpoint_changed(self.pool, row["id"], row["partition"])
        return row

    async def update(self, who: Principal, endpoint_id: str, body: Any, action: str = "update") -> dict[str, Any]:
        secret: str | None = None

        async def apply(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
            nonlocal secret
            values = _parse(body, dict(current))
            sealed = self._seal(values, _given(body), creating=False, current=dict(current))
            sealed = await self.limits.admit_endpoint(conn, who.client_id, sealed, _given(body), creating=False)
            secret = values["signing_secret"]
            return await conn.fetchrow(q("update_endpoint"), current["id"], who.client_id,
                                       *[sealed[c] for c in UPDATE_COLUMNS])

        row = await self.change(who, endpoint_id, action, apply)
        if _secret_generated(body, creating=False):
            return endpoint_json({**dict(row), "signing_secret": secret}, include_secret=True)
        return endpoint_json(row)

    async def set_status(self, who: Principal, endpoint_id: str, status: str) -> dict[str, Any]:
        async def apply(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
            return await conn.fetchrow(q("set_endpoint_status"), current["id"], who.client_id, status)

        row = await self.change(who, endpoint_id, "resume" if status == "active" else "pause", apply)
        if status == "active":
            await notify_work(self.pool, [row["partition"]])
        return endpoint_json(row)

    async def delete(self, who: Principal, endpoint_id: str) -> None:
        async def apply(conn: asyncpg.Connection, current: asyncpg.Record) -> asyncpg.Record | None:
            row = await conn.fetchrow(q("soft_delete_endpoint"), current["id"], who.client_id, who.project_id)
            if row is not None:
                killed = await conn.fetch(q("kill_endpoint_tasks"), current["id"], "endpoint deleted")
                if killed:
                    await conn.execute(q("rollup_events"), list({r["event_id"] for r in killed}))
            return row

        await self.change(who, endpoint_id, "delete", apply, shown=lambda _: None)
