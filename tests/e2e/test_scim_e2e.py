"""SCIM v2 against a real `mittr serve` on 127.0.0.1: scim2-tester (the python-scim project's RFC
7643/7644 compliance checker) drives /scim/v2 with a token from the admin API and every check it runs
must pass; then a person provisioned through SCIM signs in, and PATCH active=false ends that session."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from control.services.sessions import COOKIE, create_session
from tests.support.server import Api, MittrServer

pytestmark = pytest.mark.e2e
SERVER_SHARDS = 1
FAILED = {Status.ERROR, Status.CRITICAL}
SCIM_JSON = "application/scim+json"


async def scim_token(api: Api, name: str) -> str:
    status, made = await api.call("POST", "/api/v1/scim/tokens", {"name": name})
    assert status == 201, made
    return str(made["token"])


def run_tester(base: str, token: str) -> list[CheckResult]:
    with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        return check_server(SyncSCIMClient(http), raise_exceptions=False)


def summary(results: list[CheckResult]) -> str:
    counts = Counter(r.status.name for r in results)
    lines = [f"scim2-tester: {len(results)} checks: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    lines += [f"  {r.status.name:8} {r.resource_type or '-':5} {r.title}: {r.reason}" for r in results]
    return "\n".join(lines)


async def test_scim2_tester_passes_every_check(server: MittrServer, api: Api) -> None:
    token = await scim_token(api, "scim2-tester")
    results = await asyncio.to_thread(run_tester, server.url + "/scim/v2", token)
    print(summary(results))
    failed = [r for r in results if r.status in FAILED]
    assert not failed, summary(failed)
    passed = [r for r in results if r.status == Status.SUCCESS]
    assert len(passed) >= 30, summary(results)   # discovery, CRUD, attributes, PATCH add/replace/remove
    # What it made, it removed again: the workspace holds no member of its own.
    status, left = await api.call("GET", "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and left["totalResults"] == 0, left


async def scim(api: Api, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await api.call(method, "/scim/v2" + path, body,
                          {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}, key="")


async def with_cookie(api: Api, path: str, cookie: str) -> tuple[int, Any]:
    """A browser's GET: the session cookie and nothing else."""
    async with api.session.get(api.base + path, headers={"Cookie": f"{COOKIE}={cookie}"}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_deactivation_ends_the_members_session(server: MittrServer, api: Api) -> None:
    token = await scim_token(api, "okta")
    address = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    status, user = await scim(api, token, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": address,
        "name": {"givenName": "Ada", "familyName": "Lovelace"}, "emails": [{"value": address, "primary": True}],
        "roles": [{"value": "editor", "primary": True}], "active": True})
    assert status == 201, user
    # The person signs in (a session as the login routes make it) and works in the workspace.
    conn = await asyncpg.connect(server.database_url)
    try:
        client_id = await conn.fetchval("SELECT client_id FROM memberships WHERE user_id = $1", uuid.UUID(user["id"]))
        session = await create_session(conn, client_id, user_id=uuid.UUID(user["id"]))
    finally:
        await conn.close()
    cookie = session.token
    status, me = await with_cookie(api, "/auth/session", cookie)
    assert status == 200 and me["user"]["email"] == address, me
    status, body = await with_cookie(api, "/api/v1/endpoints", cookie)
    assert status == 200, body

    status, patched = await scim(api, token, "PATCH", f"/Users/{user['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert status == 200 and patched["active"] is False, patched
    # Sessions are looked up at most once a second per worker: refused within that.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while True:
        status, body = await with_cookie(api, "/api/v1/endpoints", cookie)
        if status == 401 or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == 401, body
    status, body = await with_cookie(api, "/auth/session", cookie)
    assert status == 401, body
