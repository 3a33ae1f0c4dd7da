"""Every route of the app, called as each kind of caller, against the permission table.

Callers: a viewer, an editor and an admin (browser sessions: cookie plus Origin on writes), a
read-only API key, an expired API key, and an admin key of another workspace. What each may do comes
from control/policy/access.py; the answer must agree: refused callers get 401 (expired) or 403
(lacking the role or scope), permitted ones get neither, and another workspace's ids answer 404.
Routes are read from the route table, so a new route is covered the moment it is declared.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from blacksheep import Content

from api.routes import Route
from control.policy.access import FAMILIES, Role, role_allows
from control.services.keys import create_client, create_key
from control.services.sessions import COOKIE, create_session
from control.services.users import add_member, create_user
from tests.integration.conftest import Caller, new_workspace
from tests.integration.test_security_routes import AUTHED, fill, make_tenant, rid, valid_body

HOST = "127.0.0.1:8000"   # what the in-process test client names as Host
READ_ONLY = [f"{f}:read" for f in FAMILIES]


async def call(app: Caller, route: Route, path: str, body: Any, *, key: str | None = None,
               cookie: str | None = None) -> int:
    headers = {"X-Idempotency-Key": str(uuid.uuid4())}
    if key is not None:
        headers["X-API-Key"] = key
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
        headers["Origin"] = f"http://{HOST}"
    fn = getattr(app.client, route.method.lower())
    kwargs: dict[str, Any] = {"headers": headers}
    if route.method in ("POST", "PATCH", "PUT"):
        kwargs["content"] = Content(b"application/json", orjson.dumps(body if body is not None else {}))
    resp = await fn(path, **kwargs)
    await resp.read()
    return int(resp.status)


async def person(pool: Any, client_id: uuid.UUID, role: Role) -> str:
    user = await create_user(pool, f"{role}-{uuid.uuid4().hex[:6]}" + "@" + "matrix.example")
    await add_member(pool, client_id, user["id"], role)
    return (await create_session(pool, client_id, user_id=user["id"])).token


@pytest.mark.parametrize("route", AUTHED, ids=rid)
async def test_every_caller_gets_what_the_permission_table_says(module_app_client: Caller, module_pool: Any,
                                                               route: Route, tmp_path: Path) -> None:
    assert route.scope is not None
    pool = module_pool      # one app and database for the module; a workspace of its own per route
    app_client = await new_workspace(module_app_client, pool)
    tenant_a = await make_tenant(app_client, pool)
    client_id = uuid.UUID(app_client.client_id)
    path = fill(route.path, tenant_a)
    viewer, editor, admin = [await person(pool, client_id, r) for r in ("viewer", "editor", "admin")]
    read_only = (await create_key(pool, client_id, "read-only", scopes=READ_ONLY)).key
    expired = (await create_key(pool, client_id, "expired",
                                expires_at=datetime.now(UTC) - timedelta(seconds=1))).key
    other = await create_client(pool, "another workspace")
    outsider = (await create_key(pool, other["id"], "admin")).key
    writes = not route.scope.endswith(":read")
    body = valid_body(route, tmp_path) if route.body is not None else None   # ownership decides, not validation

    # Refused callers first, then the permitted ones (an allowed DELETE goes last: it changes state).
    assert await call(app_client, route, path, body, key=expired) == 401, "expired key"
    outsider_status = await call(app_client, route, path, body, key=outsider)
    if "{" in route.path:
        assert outsider_status == 404, f"another workspace's ids: {outsider_status}"
    else:
        assert outsider_status not in (401, 403), f"another workspace's own data: {outsider_status}"
    status = await call(app_client, route, path, body, key=read_only)
    assert (status == 403) == writes, f"read-only key: {status}"
    for role, token in (("viewer", viewer), ("editor", editor), ("admin", admin)):
        status = await call(app_client, route, path, body, cookie=token)
        allowed = role_allows(role, route.scope)  # type: ignore[arg-type]
        assert status not in (401,) and (status == 403) != allowed, f"{role} session: {status}"
