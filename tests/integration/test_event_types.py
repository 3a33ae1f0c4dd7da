"""Event types through the real app: CRUD, isolation, schema checks, and payload validation at ingest."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from referencing.exceptions import Unresolvable

from control.errors import BadRequest
from control.policy import json_schema
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
        "name": "ref.type", "schema": {"$ref": "#/$defs/missing"}})
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


# --- references never leave the schema; regexes and cost are bounded -----------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = orjson.dumps({"type": "integer"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1, in its own thread (a fetch would block the event loop),
    serving a schema at any path; (its base URL, the paths it was asked for)."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"requests": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


async def test_a_remote_ref_is_refused_and_never_fetched(app_client: Caller, schema_host: Any,
                                                         tmp_path: Path) -> None:
    base, seen = schema_host
    local_file = tmp_path / "schema.json"
    local_file.write_bytes(orjson.dumps({"type": "integer"}))
    for schema, field in (
        ({"$ref": f"{base}/top.json"}, "schema.$ref"),
        ({"properties": {"a": {"$ref": f"{base}/nested.json#/x"}}}, "schema.properties.a.$ref"),
        ({"$defs": {"d": {"items": [{"$dynamicRef": f"{base}/dyn.json"}]}}}, "schema.$defs.d.items[0].$dynamicRef"),
        ({"properties": {"a": {"$ref": local_file.as_uri()}}}, "schema.properties.a.$ref"),
        ({"allOf": [{"$ref": "other.json#/x"}]}, "schema.allOf[0].$ref"),
    ):
        status, err, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "remote.ref", "schema": schema})
        assert status == 400 and err["code"] == "BAD_REQUEST", err
        assert err["error"].startswith(f"{field}: must be a local reference (#/...)"), err
        made = await make(app_client, {"name": f"t{uuid.uuid4().hex[:8]}"})
        status, err, _ = await app_client.call("PUT", f"/api/v1/event-types/{made['id']}", {"schema": schema})
        assert status == 400 and err["error"].startswith(f"{field}: must be a local reference"), err
    await asyncio.sleep(0.2)      # a fetch, had one started, has landed by now
    assert seen == []


async def test_a_stored_schema_with_a_remote_ref_fetches_nothing(app_client: Caller, pool: Any,
                                                                 schema_host: Any) -> None:
    base, seen = schema_host
    made = await make(app_client, {"name": "old.type", "schema": {"type": "object"}})
    # as stored before references were checked: a nested one only some payloads reach
    await pool.execute("UPDATE event_types SET schema = $1, revision = revision + 1 WHERE id = $2",
                       {"properties": {"a": {"$ref": f"{base}/old.json"}}}, uuid.UUID(made["id"]))
    status, err, _ = await app_client.call("POST", "/api/v1/events",
                                           {"eventType": "old.type", "payload": {"a": 1}}, idem())
    assert status == 400 and err["error"].startswith("eventType: the schema of 'old.type' is no longer accepted"), err
    assert "must be a local reference" in err["error"]

    # and the validator itself cannot retrieve, whatever reaches it
    schema = {"properties": {"a": {"$ref": f"{base}/direct.json"}}}
    validator = json_schema.build(json_schema.dialect(schema), schema)
    with pytest.raises(Unresolvable):
        json_schema.best_error(validator, {"a": 1}, json_schema.MAX_STEPS)
    with pytest.raises(BadRequest, match="unresolvable"):
        et.validate_payload(validator, {"a": 1}, "direct.type")
    await asyncio.sleep(0.2)
    assert seen == []


async def test_local_refs_work(app_client: Caller) -> None:
    schema = {
        "definitions": {"money": {"type": "object", "required": ["amount"],
                                  "properties": {"amount": {"type": "integer", "minimum": 0}}}},
        "$defs": {"id": {"$anchor": "orderId", "type": "string", "pattern": "^ord_[0-9]+$"}},
        "type": "object",
        "properties": {"total": {"$ref": "#/definitions/money"}, "orderId": {"$ref": "#orderId"}},
    }
    await make(app_client, {"name": "ref.local", "schema": schema})
    for payload, expected in (
        ({"total": {"amount": 5}, "orderId": "ord_1"}, None),
        ({"total": {"amount": -1}}, "payload.total.amount: -1 is less than the minimum of 0"),
        ({"orderId": "ord_x"}, "payload.orderId: 'ord_x' does not match '^ord_[0-9]+$'"),
    ):
        status, body, _ = await app_client.call("POST", "/api/v1/events",
                                                {"eventType": "ref.local", "payload": payload}, idem())
        if expected is None:
            assert status == 201, body
        else:
            assert status == 400 and body["error"] == expected, body


@pytest.mark.parametrize(("schema", "message"), [
    ({"pattern": "(a)\\1"}, "schema.pattern: invalid regex (RE2 syntax)"),
    ({"properties": {"id": {"pattern": "id(?=_)"}}}, "schema.properties.id.pattern: invalid regex (RE2 syntax)"),
    ({"patternProperties": {"(?<=x)y": {}}}, "schema.patternProperties.(?<=x)y: invalid regex (RE2 syntax)"),
    ({"properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#"}}},
     "schema.properties.a.$schema: only allowed at the top"),
    ({"$schema": "https://example.com/my-dialect"}, "schema.$schema: unknown dialect"),
    ({"unevaluatedProperties": False, "allOf": [{"patternProperties": {"^a": {}}}]},
     "schema.unevaluatedProperties: unevaluatedProperties cannot be combined with patternProperties"),
    (functools.reduce(lambda inner, _: {"not": inner}, range(json_schema.MAX_SCHEMA_DEPTH), {}),
     "schema" + ".not" * json_schema.MAX_SCHEMA_DEPTH + f": nested deeper than {json_schema.MAX_SCHEMA_DEPTH} levels"),
])
async def test_schemas_the_runtime_cannot_bound_are_refused(app_client: Caller, schema: dict[str, Any],
                                                            message: str) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "bounded", "schema": schema})
    assert status == 400 and err["error"].startswith(message), err


async def test_schema_regexes_run_on_re2_without_stalling_the_worker(app_client: Caller) -> None:
    from tests.integration.test_filters import STALLING_SUBJECT, worst_latency_while

    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
              "patternProperties": {"^(b+)+$": {"type": "integer"}}}
    await make(app_client, {"name": "re2.type", "schema": schema})
    post = app_client.call("POST", "/api/v1/events", {"eventType": "re2.type", "payload": {
        "s": STALLING_SUBJECT, "b" * 28 + "!": "not checked: the key does not match"}}, idem())
    (status, err, _), worst, probes = await worst_latency_while(app_client, post)
    print(f"\nschema patterns on pathological subjects: worst concurrent response {worst * 1000:.1f} ms "
          f"over {probes} requests")
    assert status == 400 and err["error"] == f"payload.s: '{STALLING_SUBJECT}' does not match '^(a+)+$'", err
    assert worst < 1.0
    status, err, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "re2.type", "payload": {
        "s": "aaa", "bbb": "x"}}, idem())
    assert status == 400 and err["error"] == "payload.bbb: 'x' is not of type 'integer'", err


async def test_costly_checks_leave_the_loop_and_are_cut_off(app_client: Caller) -> None:
    # each level tries both branches: 2**24 evaluations for a payload that reaches it
    levels = 24
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "string"}
    await make(app_client, {"name": "fan.out", "schema": {"$defs": defs, "properties": {"a": {"$ref": "#/$defs/d0"}}}})
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "fan.out", "payload": {"a": "s"}},
                                          idem())
    assert status == 201, ev
    started = time.perf_counter()
    status, err, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "fan.out", "payload": {"a": 1}},
                                           idem())
    assert status == 400 and err["error"].startswith("payload: too costly to check against the schema"), err
    assert time.perf_counter() - started < 10

    # a big payload that is merely long passes, checked off the loop
    items = {"type": "array", "uniqueItems": True,
             "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}
    await make(app_client, {"name": "big.list", "schema": {"type": "object", "properties": {"items": items}}})
    payload = {"items": [{"id": f"it_{i}", "n": i} for i in range(1500)]}
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "big.list", "payload": payload},
                                          idem())
    assert status == 201, ev
    payload["items"].append({"n": 0, "id": "it_0"})
    status, err, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "big.list", "payload": payload},
                                           idem())
    assert status == 400 and err["error"].startswith("payload.items: ") and "non-unique" in err["error"], err
