"""Event types through the real app: CRUD, isolation, schema checks, and payload validation at ingest."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from control.services import event_types as et
from tests.integration.conftest import Caller

ORDER_SCHEMA = {
    "type": "object",
    "required": ["orderId", "amount"],
    "properties": {"orderId": {"type": "string"}, "amount": {"type": "integer"}},
}
SEED = {"name": "order.created", "description": "Fired when a new order is placed", "schema": ORDER_SCHEMA,
        "schemaVersion": "1.0"}


def idem() -> dict[str, str]:
    return {"X-Idempotency-Key": str(uuid.uuid4())}


async def make(app_client: Caller, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, out, _ = await app_client.call("POST", "/api/v1/event-types", body or SEED)
    assert status == 201, out
    return out  # type: ignore[no-any-return]


async def test_crud_round_trip_with_the_seed_shapes(app_client: Caller) -> None:
    made = await make(app_client)
    uuid.UUID(made["id"])
    assert {k: made[k] for k in SEED} == SEED
    assert made["createdAt"].endswith("Z") and made["updatedAt"].endswith("Z")

    status, got, _ = await app_client.call("GET", f"/api/v1/event-types/{made['id']}")
    assert status == 200 and got == made
    status, got, _ = await app_client.call("GET", "/api/v1/event-types/by-name/order.created")
    assert status == 200 and got == made

    status, upd, _ = await app_client.call("PUT", f"/api/v1/event-types/{made['id']}",
                                           {"description": "Updated description", "schemaVersion": "2.0"})
    assert status == 200, upd
    assert (upd["description"], upd["schemaVersion"], upd["schema"], upd["name"]) == (
        "Updated description", "2.0", ORDER_SCHEMA, "order.created")

    status, _, _ = await app_client.call("DELETE", f"/api/v1/event-types/{made['id']}")
    assert status == 204
    for path in (f"/api/v1/event-types/{made['id']}", "/api/v1/event-types/by-name/order.created"):
        status, err, _ = await app_client.call("GET", path)
        assert status == 404 and err["code"] == "NOT_FOUND"
    status, _, _ = await app_client.call("DELETE", f"/api/v1/event-types/{made['id']}")
    assert status == 404


async def test_defaults_and_schemaless_types(app_client: Caller) -> None:
    made = await make(app_client, {"name": "user.signed_up"})
    assert (made["description"], made["schema"], made["schemaVersion"]) == ("", None, "1.0")


async def test_duplicate_name_is_409_conflict(app_client: Caller) -> None:
    await make(app_client)
    status, err, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "order.created"})
    assert status == 409 and err["code"] == "CONFLICT" and "order.created" in err["error"]
    other = await make(app_client, {"name": "order.updated"})
    status, err, _ = await app_client.call("PUT", f"/api/v1/event-types/{other['id']}", {"name": "order.created"})
    assert status == 409 and err["code"] == "CONFLICT"


async def test_list_is_paginated(app_client: Caller) -> None:
    names = [f"thing.{i}" for i in range(5)]
    for name in names:
        await make(app_client, {"name": name})
    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/v1/event-types?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await app_client.call("GET", path)
        assert status == 200 and set(page) == {"data", "pagination"}
        seen += [t["name"] for t in page["data"]]
        if not page["pagination"]["hasMore"]:
            assert page["pagination"]["cursor"] is None
            break
        cursor = page["pagination"]["cursor"]
    assert seen == names[::-1]


@pytest.mark.parametrize(("body", "field"), [
    ({"description": "no name"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "order.*"}, "name"),
    ({"name": "has space"}, "name"),
    ({"name": "x", "schema": {"type": "nope"}}, "schema.type"),
    ({"name": "x", "schema": {"properties": {"a": {"type": 5}}}}, "schema.properties.a.type"),
    ({"name": "x", "schema": {"pattern": "(["}}, "schema.pattern"),
    ({"name": "x", "schema": "not an object"}, "schema"),
    ({"name": "x", "schemaVersion": 2}, "schemaVersion"),
    ({"name": "x", "surprise": True}, "surprise"),
])
async def test_invalid_bodies_are_400_naming_the_field(app_client: Caller, body: dict[str, Any],
                                                      field: str) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/event-types", body)
    assert status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith(field), err


async def test_other_tenants_get_404(app_client: Caller, second_key: str) -> None:
    made = await make(app_client)
    for method, path, body in (("GET", f"/api/v1/event-types/{made['id']}", None),
                               ("GET", "/api/v1/event-types/by-name/order.created", None),
                               ("PUT", f"/api/v1/event-types/{made['id']}", {"description": "mine"}),
                               ("DELETE", f"/api/v1/event-types/{made['id']}", None),
                               ("GET", "/api/v1/event-types/not-a-uuid", None)):
        status, err, _ = await app_client.call(method, path, body, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND", (method, path)
    status, page, _ = await app_client.call("GET", "/api/v1/event-types", key=second_key)
    assert status == 200 and page["data"] == []
    # the same name is free in another tenant
    status, _, _ = await app_client.call("POST", "/api/v1/event-types", SEED, key=second_key)
    assert status == 201


async def test_fan_out_payloads_are_validated_against_the_schema(app_client: Caller, pool: Any) -> None:
    await make(app_client)
    status, err, _ = await app_client.call(
        "POST", "/api/v1/events", {"eventType": "order.created", "payload": {"orderId": "o1", "amount": "x"}},
        idem())
    assert status == 400 and err["code"] == "BAD_REQUEST"
    assert err["error"] == "payload.amount: 'x' is not of type 'integer'"
    status, err, _ = await app_client.call(
        "POST", "/api/v1/events", {"eventType": "order.created", "payload": {"orderId": "o1"}}, idem())
    assert status == 400 and err["error"] == "payload: 'amount' is a required property"
    assert await pool.fetchval("SELECT count(*) FROM events") == 0

    status, ev, _ = await app_client.call(
        "POST", "/api/v1/events", {"eventType": "order.created", "payload": {"orderId": "o1", "amount": 5}},
        idem())
    assert status == 201, ev
    # types without a registered schema, and direct events, are not checked
    for body in ({"eventType": "order.shipped", "payload": {"anything": True}},
                 {"destination": "https://b.example.com/h", "payload": {"amount": "x"}}):
        status, ev, _ = await app_client.call("POST", "/api/v1/events", body, idem())
        assert status == 201, ev


async def test_nested_paths_are_named(app_client: Caller) -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}}}}
    await make(app_client, {"name": "cart.updated", "schema": schema})
    status, err, _ = await app_client.call(
        "POST", "/api/v1/events", {"eventType": "cart.updated", "payload": {"items": [{"qty": 2}, {"qty": 0}]}},
        idem())
    assert status == 400 and err["error"] == "payload.items[1].qty: 0 is less than the minimum of 1"


async def test_schema_updates_take_effect_and_can_be_removed(app_client: Caller) -> None:
    made = await make(app_client)
    bad = {"eventType": "order.created", "payload": {"orderId": 7}}
    status, _, _ = await app_client.call("POST", "/api/v1/events", bad, idem())
    assert status == 400
    loose = {"type": "object", "properties": {"orderId": {"type": "integer"}}}
    status, upd, _ = await app_client.call("PUT", f"/api/v1/event-types/{made['id']}",
                                           {"schema": loose, "schemaVersion": "2.0"})
    assert status == 200 and upd["schema"] == loose
    status, _, _ = await app_client.call("POST", "/api/v1/events", bad, idem())
    assert status == 201
    status, err, _ = await app_client.call("POST", "/api/v1/events",
                                           {"eventType": "order.created", "payload": {"orderId": "s"}}, idem())
    assert status == 400 and err["error"].startswith("payload.orderId:")
    status, upd, _ = await app_client.call("PUT", f"/api/v1/event-types/{made['id']}", {"schema": None})
    assert status == 200 and upd["schema"] is None
    status, _, _ = await app_client.call("POST", "/api/v1/events",
                                         {"eventType": "order.created", "payload": {"orderId": "s"}}, idem())
    assert status == 201


async def test_validators_are_cached_per_revision(app_client: Caller) -> None:
    cache = et.VALIDATORS          # this worker's cache (the app runs in-process)
    before = len(cache)
    made = await make(app_client)
    good = {"eventType": "order.created", "payload": {"orderId": "o1", "amount": 5}}
    for _ in range(3):
        status, _, _ = await app_client.call("POST", "/api/v1/events", good, idem())
        assert status == 201
    assert len(cache) == before + 1
    await app_client.call("PUT", f"/api/v1/event-types/{made['id']}", {"schemaVersion": "1.1"})
    status, _, _ = await app_client.call("POST", "/api/v1/events", good, idem())
    assert status == 201 and len(cache) == before + 2


async def test_unusable_schemas_are_400s_not_crashes(app_client: Caller) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/event-types", {
        "name": "ref.type", "schema": {"$ref": "https://schemas.example.com/x.json"}})
    assert status == 400 and err["error"].startswith("schema: a $ref cannot be resolved"), err
    status, err, _ = await app_client.call("POST", "/api/v1/event-types",
                                           {"name": "ref.type", "schema": {"$schema": 5}})
    assert status == 400 and err["error"].startswith("schema.$schema"), err
    # a reference loop only some payloads reach
    await make(app_client, {"name": "loop.type", "schema": {"properties": {"a": {"$ref": "#/properties/a"}}}})
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "loop.type", "payload": {}}, idem())
    assert status == 201, ev
    status, err, _ = await app_client.call("POST", "/api/v1/events",
                                           {"eventType": "loop.type", "payload": {"a": 1}}, idem())
    assert status == 400 and err["error"].startswith("payload: too deep"), err


def test_validator_cache_is_bounded() -> None:
    cache = et.ValidatorCache(size=2)
    validator = et.compile_schema({"type": "object"})
    keys = [(uuid.uuid4(), 1) for _ in range(3)]
    for key in keys:
        cache.put(key, validator)
    assert len(cache) == 2 and cache.get(keys[0]) is None and cache.get(keys[2]) is validator
