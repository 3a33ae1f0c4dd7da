"""Endpoint routes through the real app and a real database: defaults, validation, isolation."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Caller

EP = {"url": "https://api.example.com/webhooks", "eventTypes": ["order.created", "payment.*"]}


async def test_create_applies_seed_defaults_and_returns_secret_once(app_client: Caller) -> None:
    status, body, _ = await app_client.call("POST", "/api/v1/endpoints", EP)
    assert status == 201, body
    assert body["url"] == EP["url"] and body["eventTypes"] == EP["eventTypes"]
    defaults = {"description": "", "filter": None, "transformation": None, "fifo": False,
                "fifoPartitionKey": None, "maxRetries": 5, "retryBackoffMs": 1000,
                "retryBackoffMax": 86400000, "retryBackoffMult": 2.0, "timeoutMs": 30000,
                "rateLimitPerSec": 0, "circuitThreshold": 5, "circuitResetMs": 300000, "customHeaders": {},
                "allowedCidrs": [], "blockedCidrs": [], "deliveryMode": "push", "storageConfig": None,
                "status": "active", "circuitState": "closed", "version": 1, "hasMtls": False}
    for name, value in defaults.items():
        assert body[name] == value, name
    assert body["signingSecret"].startswith("whsec_")
    status, got, _ = await app_client.call("GET", f"/api/v1/endpoints/{body['id']}")
    assert status == 200 and "signingSecret" not in got and got["id"] == body["id"]


async def test_every_field_round_trips(app_client: Caller) -> None:
    full = {**EP, "description": "Production", "filter": [{"field": "$.data.amount", "operator": "gte",
                                                            "value": 10000}],
            "transformation": "function handler(w) { return w }", "fifo": True,
            "fifoPartitionKey": "$.data.customerId", "maxRetries": 10, "retryBackoffMs": 500,
            "retryBackoffMax": 60000, "retryBackoffMult": 1.5, "timeoutMs": 5000, "rateLimitPerSec": 50,
            "circuitThreshold": 3, "circuitResetMs": 10000, "customHeaders": {"Authorization": "Bearer t"},
            "allowedCidrs": ["93.184.216.0/24"], "blockedCidrs": ["10.0.0.0/8"], "deliveryMode": "push",
            "signingSecret": "my-own-secret-123"}
    status, body, _ = await app_client.call("POST", "/api/v1/endpoints", full)
    assert status == 201, body
    for name, value in full.items():
        if name != "signingSecret":     # a secret the caller chose is not echoed back
            assert body[name] == value, name
    assert "signingSecret" not in body


@pytest.mark.parametrize(("patch", "field"), [
    ({"url": None}, "url"),
    ({"eventTypes": []}, "eventTypes"),
    ({"url": "ftp://x.example.com"}, "url"),
    ({"url": "https://user:pw@x.example.com"}, "url"),
    ({"timeoutMs": 10}, "timeoutMs"),
    ({"timeoutMs": "fast"}, "timeoutMs"),
    ({"maxRetries": 26}, "maxRetries"),
    ({"retryBackoffMult": 0.5}, "retryBackoffMult"),
    ({"allowedCidrs": ["not-a-cidr"]}, "allowedCidrs[0]"),
    ({"customHeaders": {"X-Mittr-Signature": "forged"}}, "customHeaders.X-Mittr-Signature"),
    ({"customHeaders": {"Bad Header": "x"}}, "customHeaders"),
    ({"deliveryMode": "storage", "storageConfig": {"bucket": "b"}}, "storageConfig.type"),
    ({"deliveryMode": "carrier-pigeon"}, "deliveryMode"),
    ({"fifoPartitionKey": "data.customerId"}, "fifoPartitionKey"),
    ({"filter": [{"field": "$.a", "operator": "like", "value": 1}]}, "filter"),
    ({"mtlsCert": "-----BEGIN CERTIFICATE-----"}, "mtlsCert"),
    ({"surprise": 1}, "surprise"),
])
async def test_bad_fields_answer_400_naming_the_field(app_client: Caller, patch: dict[str, object],
                                                     field: str) -> None:
    body = {**EP, **patch}
    body = {k: v for k, v in body.items() if not (k == "url" and v is None)}
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", body)
    assert status == 400, err
    assert err["code"] == "BAD_REQUEST" and err["error"].startswith(field), err


async def test_malformed_and_oversized_bodies(app_client: Caller) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", raw=b"{not json")
    assert status == 400 and err["code"] == "BAD_REQUEST" and "invalid JSON" in err["error"]
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", raw=b"[1,2]")
    assert status == 400 and "expected a JSON object" in err["error"]
    big = {**EP, "description": "x" * 70000}
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", big)
    assert status == 413 and err["code"] == "PAYLOAD_TOO_LARGE"


async def test_patch_changes_fields_and_bumps_version(app_client: Caller) -> None:
    _, ep, _ = await app_client.call("POST", "/api/v1/endpoints", EP)
    status, body, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep['id']}",
                                            {"url": "https://new-url.example.com/webhooks", "maxRetries": 5,
                                             "rateLimitPerSec": 200})
    assert status == 200, body
    assert body["url"] == "https://new-url.example.com/webhooks" and body["rateLimitPerSec"] == 200
    assert body["version"] == 2 and body["eventTypes"] == EP["eventTypes"]
    status, err, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"retryBackoffMax": 10})
    assert status == 400 and err["error"].startswith("retryBackoffMax")


async def test_list_paginates_with_cursor(app_client: Caller) -> None:
    made = []
    for i in range(5):
        _, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {**EP, "description": f"n{i}"})
        made.append(ep["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        path = "/api/v1/endpoints?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, body, _ = await app_client.call("GET", path)
        assert status == 200
        seen += [e["id"] for e in body["data"]]
        pages += 1
        if not body["pagination"]["hasMore"]:
            assert body["pagination"]["cursor"] is None
            break
        cursor = body["pagination"]["cursor"]
    assert pages == 3 and sorted(seen) == sorted(made) and len(set(seen)) == 5
    status, err, _ = await app_client.call("GET", "/api/v1/endpoints?limit=0")
    assert status == 400 and err["error"].startswith("limit")
    status, err, _ = await app_client.call("GET", "/api/v1/endpoints?cursor=garbage!")
    assert status == 400 and err["error"].startswith("cursor")


async def test_delete_then_404_and_tenant_isolation(app_client: Caller, second_key: str) -> None:
    _, ep, _ = await app_client.call("POST", "/api/v1/endpoints", EP)
    for method, path in (("GET", f"/api/v1/endpoints/{ep['id']}"), ("DELETE", f"/api/v1/endpoints/{ep['id']}"),
                         ("POST", f"/api/v1/endpoints/{ep['id']}/pause")):
        status, err, _ = await app_client.call(method, path, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND", (method, path)
    status, listing, _ = await app_client.call("GET", "/api/v1/endpoints", key=second_key)
    assert listing["data"] == []
    status, _, _ = await app_client.call("DELETE", f"/api/v1/endpoints/{ep['id']}")
    assert status == 204
    status, err, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep['id']}")
    assert status == 404
    status, err, _ = await app_client.call("GET", "/api/v1/endpoints/not-a-uuid")
    assert status == 404


async def test_unknown_route_and_openapi(app_client: Caller) -> None:
    status, err, _ = await app_client.call("GET", "/api/v1/nope")
    assert status == 404 and err["code"] == "NOT_FOUND"
    status, doc, _ = await app_client.call("GET", "/openapi.json")
    assert status == 200
    assert "post" in doc["paths"]["/api/v1/events"] and "delete" in doc["paths"]["/api/v1/endpoints/{id}"]
    status, health, _ = await app_client.call("GET", "/health")
    assert status == 200 and health["status"] == "ok"
