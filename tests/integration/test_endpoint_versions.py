"""Endpoint versions through the real app: every configuration change is a version, secrets are
never in one, diffs are field-level, rollback restores (as a new version)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Caller
from tests.support.certs import make_pki

EP = {"url": "https://api.example.com/webhooks", "eventTypes": ["order.created"], "description": "v1",
      "signingSecret": "first-secret-value", "customHeaders": {"X-Source": "mittr"}}


async def made(app_client: Caller, body: dict[str, Any] | None = None) -> str:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", body or EP)
    assert status == 201, ep
    return str(ep["id"])


async def patch(app_client: Caller, ep: str, body: dict[str, Any]) -> dict[str, Any]:
    status, out, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep}", body)
    assert status == 200, out
    return out  # type: ignore[no-any-return]


async def test_create_and_each_patch_make_a_version(app_client: Caller) -> None:
    ep = await made(app_client)
    await patch(app_client, ep, {"url": "https://new-url.example.com/webhooks", "maxRetries": 5,
                                 "rateLimitPerSec": 200})
    await patch(app_client, ep, {"description": "v3", "filter": [{"field": "$.data.a", "operator": "eq",
                                                                  "value": 1}]})
    status, page, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions")
    assert status == 200 and page["pagination"] == {"hasMore": False, "cursor": None}
    assert [v["version"] for v in page["data"]] == [3, 2, 1]
    first = page["data"][-1]
    assert first["endpointId"] == ep and first["createdAt"].endswith("Z")
    snap = first["snapshot"]
    assert snap["url"] == EP["url"] and snap["description"] == "v1" and snap["customHeaders"] == {"X-Source": "mittr"}
    assert snap["maxRetries"] == 5 and snap["timeoutMs"] == 30000 and snap["hasMtls"] is False
    assert page["data"][0]["snapshot"]["description"] == "v3"
    # pause/resume are not configuration changes
    await app_client.call("POST", f"/api/v1/endpoints/{ep}/pause")
    await app_client.call("POST", f"/api/v1/endpoints/{ep}/resume")
    status, page, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions")
    assert len(page["data"]) == 3


async def test_snapshots_hold_no_secrets(app_client: Caller, pool: Any) -> None:
    ep = await made(app_client)
    await patch(app_client, ep, {"signingSecret": "second-secret-value"})
    status, page, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions")
    assert status == 200 and [v["version"] for v in page["data"]] == [2, 1]
    text = str(page) + str(await pool.fetch("SELECT snapshot FROM endpoint_versions"))
    for secret in ("first-secret-value", "second-secret-value", "signingSecret", "signing_secret", "mtls_key",
                   "mtlsKey"):
        assert secret not in text


async def test_mtls_changes_make_versions_without_the_key(app_client: Caller, pool: Any, tmp_path: Any) -> None:
    ep = await made(app_client)
    pki = make_pki(tmp_path)
    status, out, _ = await app_client.call("POST", f"/api/v1/endpoints/{ep}/mtls",
                                           {"certPem": pki.client_cert, "keyPem": pki.client_key})
    assert status == 200, out
    status, v2, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/2")
    assert status == 200 and v2["snapshot"]["hasMtls"] is True
    stored = str(await pool.fetch("SELECT snapshot FROM endpoint_versions"))
    assert "PRIVATE KEY" not in stored and "mtls_key" not in stored


async def test_get_one_version_and_its_errors(app_client: Caller) -> None:
    ep = await made(app_client)
    await patch(app_client, ep, {"description": "v2"})
    status, v, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/1")
    assert status == 200 and v["version"] == 1 and v["snapshot"]["description"] == "v1"
    status, err, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/9")
    assert status == 404 and err["code"] == "NOT_FOUND"
    for bad in ("abc", "0", "-1", "1.5"):
        status, err, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/{bad}")
        assert status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith("version"), bad


async def test_diff_is_field_level(app_client: Caller) -> None:
    ep = await made(app_client)
    await patch(app_client, ep, {"url": "https://new-url.example.com/webhooks", "maxRetries": 9})
    await patch(app_client, ep, {"description": "v3", "customHeaders": {"X-Source": "mittr", "X-B": "1"}})
    status, d, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/diff?v1=1&v2=3")
    assert status == 200, d
    assert d["v1"] == 1 and d["v2"] == 3
    assert d["changes"] == [
        {"field": "url", "from": EP["url"], "to": "https://new-url.example.com/webhooks"},
        {"field": "description", "from": "v1", "to": "v3"},
        {"field": "maxRetries", "from": 5, "to": 9},
        {"field": "customHeaders", "from": {"X-Source": "mittr"}, "to": {"X-Source": "mittr", "X-B": "1"}},
    ]
    status, d, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/diff?v1=3&v2=3")
    assert status == 200 and d["changes"] == []


@pytest.mark.parametrize(("query", "status", "starts"), [
    ("", 400, "v1"), ("?v1=1", 400, "v2"), ("?v1=x&v2=1", 400, "v1"), ("?v1=1&v2=7", 404, "version 7"),
])
async def test_diff_errors(app_client: Caller, query: str, status: int, starts: str) -> None:
    ep = await made(app_client)
    got, err, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/diff{query}")
    assert got == status and err["error"].startswith(starts), err


async def test_rollback_restores_and_is_itself_a_version(app_client: Caller) -> None:
    ep = await made(app_client)
    await patch(app_client, ep, {"url": "https://new-url.example.com/webhooks", "maxRetries": 9,
                                 "transformation": "function handler(w) { return w }"})
    await patch(app_client, ep, {"description": "v3", "signingSecret": "rotated-secret-value"})
    status, out, _ = await app_client.call("POST", f"/api/v1/endpoints/{ep}/versions/1/rollback")
    assert status == 200, out
    assert out["version"] == 4 and out["url"] == EP["url"] and out["maxRetries"] == 5
    assert out["description"] == "v1" and out["transformation"] is None
    status, d, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions/diff?v1=1&v2=4")
    assert d["changes"] == []
    status, page, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions")
    assert [v["version"] for v in page["data"]] == [4, 3, 2, 1]
    status, err, _ = await app_client.call("POST", f"/api/v1/endpoints/{ep}/versions/12/rollback")
    assert status == 404 and err["code"] == "NOT_FOUND"


async def test_rollback_keeps_the_current_secret(app_client: Caller, pool: Any) -> None:
    ep = await made(app_client)
    await patch(app_client, ep, {"signingSecret": "rotated-secret-value"})
    before = await pool.fetchval("SELECT signing_secret FROM endpoints")
    await app_client.call("POST", f"/api/v1/endpoints/{ep}/versions/1/rollback")
    assert await pool.fetchval("SELECT signing_secret FROM endpoints") == before


async def test_versions_are_paginated_newest_first(app_client: Caller) -> None:
    ep = await made(app_client)
    for i in range(2, 6):
        await patch(app_client, ep, {"description": f"v{i}"})
    seen: list[int] = []
    cursor = None
    while True:
        path = f"/api/v1/endpoints/{ep}/versions?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await app_client.call("GET", path)
        assert status == 200
        seen += [v["version"] for v in page["data"]]
        if not page["pagination"]["hasMore"]:
            break
        cursor = page["pagination"]["cursor"]
    assert seen == [5, 4, 3, 2, 1]


async def test_other_tenants_get_404(app_client: Caller, second_key: str) -> None:
    ep = await made(app_client)
    for method, path in (("GET", f"/api/v1/endpoints/{ep}/versions"),
                         ("GET", f"/api/v1/endpoints/{ep}/versions/1"),
                         ("GET", f"/api/v1/endpoints/{ep}/versions/diff?v1=1&v2=1"),
                         ("POST", f"/api/v1/endpoints/{ep}/versions/1/rollback")):
        status, err, _ = await app_client.call(method, path, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND", path


async def test_deleted_endpoints_have_no_versions_to_show(app_client: Caller) -> None:
    ep = await made(app_client)
    await app_client.call("DELETE", f"/api/v1/endpoints/{ep}")
    status, _, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}/versions")
    assert status == 404
