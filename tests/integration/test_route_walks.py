"""Every route, driven from the route table itself: no key → 401, a key without the scope → 403,
another tenant's ids → 404 (never 403), malformed JSON → 400, a read-only key refused on every
write route and let through on every read route. New routes are covered as they are declared.

The module shares one app and database (the app context is process-global, which is why these
live apart from tests that start an app per test). The refusals change nothing, so they share one
workspace too; the 404 walk also calls as the owner (a DELETE really deletes), so each of its
routes gets a workspace of its own."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from api.routes import Route
from control.policy.access import FAMILIES
from control.services.keys import create_client, create_key
from tests.integration.conftest import Caller, new_workspace
from tests.integration.test_api_keys import make_key
from tests.integration.test_security_routes import AUTHED, WITH_BODY, WITH_ID, fill, make_tenant, rid, valid_body


@pytest.fixture(scope="module")
async def shared_tenant(module_app_client: Caller, module_pool: Any) -> dict[str, str]:
    return await make_tenant(module_app_client, module_pool)


@pytest.mark.parametrize("route", AUTHED, ids=rid)
async def test_no_key_is_401(module_app_client: Caller, route: Route, shared_tenant: dict[str, str]) -> None:
    status, body, _ = await module_app_client.call(route.method, fill(route.path, shared_tenant),
                                            {} if route.body is not None else None, key="")
    assert status == 401 and body["code"] == "UNAUTHORIZED", body


@pytest.mark.parametrize("route", AUTHED, ids=rid)
async def test_missing_scope_is_403(module_app_client: Caller, module_pool: Any, route: Route,
                                    shared_tenant: dict[str, str]) -> None:
    scoped = await create_key(module_pool, uuid.UUID(module_app_client.client_id), "scoped", scopes=["nothing:read"])
    status, body, _ = await module_app_client.call(route.method, fill(route.path, shared_tenant),
                                            {} if route.body is not None else None, key=scoped.key)
    assert status == 403 and body["code"] == "FORBIDDEN", body


@pytest.mark.parametrize("route", WITH_BODY, ids=rid)
async def test_malformed_json_is_400(module_app_client: Caller, route: Route, shared_tenant: dict[str, str]) -> None:
    status, body, _ = await module_app_client.call(route.method, fill(route.path, shared_tenant),
                                                   raw=b'{"broken": ', headers={"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 400 and body["code"] in ("BAD_REQUEST", "VALIDATION_ERROR"), body


@pytest.mark.parametrize("route", WITH_ID, ids=rid)
async def test_other_tenants_ids_are_404(module_app_client: Caller, module_pool: Any, route: Route,
                                         tmp_path: Path) -> None:
    pool = module_pool
    app_client = await new_workspace(module_app_client, pool)
    tenant_a = await make_tenant(app_client, pool)
    other = await create_client(pool, "tenant-b")
    key = (await create_key(pool, other["id"], "admin")).key
    path = fill(route.path, tenant_a)
    body = valid_body(route, tmp_path) if route.body is not None else None
    status, answer, _ = await app_client.call(route.method, path, body, key=key)
    assert status == 404 and answer["code"] == "NOT_FOUND", (path, status, answer)
    # ...and the owner is answered (the 404 above is about ownership, not a bad path)
    status, _, _ = await app_client.call(route.method, path, body)
    assert status != 404 or route.method == "DELETE", (path, status)


# -- a read-only key on every route (write routes refuse it, read routes take it) ------------------------

WRITES = [r for r in AUTHED if r.scope is not None and r.scope.endswith(":write")]
READS = [r for r in AUTHED if r.scope is not None and r.scope.endswith(":read")]


def any_ids(path: str) -> str:
    return path.replace("{id}", str(uuid.uuid4())).replace("{n}", "1").replace("{name}", "x.y")


@pytest.fixture(scope="module")
async def read_only_key(module_app_client: Caller) -> str:
    made = await make_key(module_app_client, {"name": "ro", "scopes": [f"{f}:read" for f in FAMILIES]})
    return str(made["key"])


@pytest.mark.parametrize("route", WRITES, ids=rid)
async def test_a_read_only_key_gets_403_on_every_write_route(module_app_client: Caller, read_only_key: str,
                                                             route: Route) -> None:
    status, body, _ = await module_app_client.call(route.method, any_ids(route.path), {} if route.body else None,
                                                   {"X-Idempotency-Key": "ro"}, key=read_only_key)
    assert status == 403 and body["code"] == "FORBIDDEN" and route.scope in body["error"], body


@pytest.mark.parametrize("route", READS, ids=rid)
async def test_a_read_only_key_may_read(module_app_client: Caller, read_only_key: str, route: Route) -> None:
    status, body, _ = await module_app_client.call(route.method, any_ids(route.path), key=read_only_key)
    assert status not in (401, 403), body
