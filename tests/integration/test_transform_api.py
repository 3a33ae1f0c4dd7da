"""Endpoint transformations through the real app: compiled at create and update, refused with a 400
naming `transformation` when they cannot run."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Caller

EP = {"url": "https://hooks.example.com/h", "eventTypes": ["order.created"]}
GOOD = "function handler(webhook) { webhook.payload = {wrapped: webhook.payload}; return webhook; }"

BAD = [
    ("function handler(webhook) {", "SyntaxError"),
    ("function transform(webhook) { return webhook }", "must define function handler"),
    ("var handler = 'not a function';", "must define function handler"),
    ("while (true) {}", "CPU time limit"),
    ("   ", "must be JavaScript"),
    (42, "expected a string"),
]


async def test_a_valid_transformation_is_stored(app_client: Caller) -> None:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {**EP, "transformation": GOOD})
    assert status == 201 and ep["transformation"] == GOOD
    status, ep, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"transformation": None})
    assert status == 200 and ep["transformation"] is None


@pytest.mark.parametrize(("code", "needle"), BAD)
async def test_broken_transformations_are_400_at_create_and_update(app_client: Caller, code: Any,
                                                                  needle: str) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", {**EP, "transformation": code})
    assert status == 400 and err["code"] == "BAD_REQUEST", err
    assert err["error"].startswith("transformation: ") and needle in err["error"], err

    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {**EP, "transformation": GOOD})
    assert status == 201
    status, err, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"transformation": code})
    assert status == 400 and err["error"].startswith("transformation: ") and needle in err["error"], err
    status, got, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep['id']}")
    assert got["transformation"] == GOOD and got["version"] == 1
