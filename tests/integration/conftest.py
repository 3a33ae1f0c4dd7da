from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from blacksheep import Content
from blacksheep.testing import TestClient

from control.services.keys import create_client, create_key
from control.settings import load_settings


@dataclass
class Caller:
    """Drives the real BlackSheep app in-process against a real database."""

    client: TestClient
    key: str
    client_id: str

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   key: str | None = None, raw: bytes | None = None) -> tuple[int, Any, Any]:
        h = {"X-API-Key": self.key if key is None else key, **(headers or {})}
        content = None
        if raw is not None:
            content = Content(b"application/json", raw)
        elif body is not None:
            content = Content(b"application/json", orjson.dumps(body))
        fn = getattr(self.client, method.lower())
        kwargs: dict[str, Any] = {"headers": h}
        if method in ("POST", "PATCH", "PUT") or (method == "DELETE" and content is not None):
            kwargs["content"] = content
        resp = await fn(path, **kwargs)
        text = await resp.read()
        return resp.status, (orjson.loads(text) if text else None), resp


@contextlib.asynccontextmanager
async def running_app(db_url: str, pool: Any) -> AsyncIterator[Caller]:
    """The app started on `db_url`, driven by an admin key of a new workspace ("tenant-a")."""
    from api.app import create_app

    settings = load_settings(env={"DATABASE_URL": db_url, "MITTR_API__MAX_BODY_BYTES": "65536"})
    app = create_app(settings)
    await app.start()
    try:
        client_row = await create_client(pool, "tenant-a")
        key = await create_key(pool, client_row["id"], "admin")
        yield Caller(TestClient(app), key.key, str(client_row["id"]))
    finally:
        await app.stop()


async def new_workspace(app: Caller, pool: Any, name: str = "tenant-a") -> Caller:
    """Another workspace with its own admin key, driving the same running app."""
    client_row = await create_client(pool, name)
    key = await create_key(pool, client_row["id"], "admin")
    return Caller(app.client, key.key, str(client_row["id"]))


@pytest.fixture
async def app_client(db_url: str, pool: Any) -> AsyncIterator[Caller]:
    async with running_app(db_url, pool) as caller:
        yield caller


@pytest.fixture(scope="module")
async def module_app_client(module_db_url: str, module_pool: Any) -> AsyncIterator[Caller]:
    """One app and workspace for a module's tests: only for tests that leave its data unchanged."""
    async with running_app(module_db_url, module_pool) as caller:
        yield caller


@pytest.fixture
async def second_key(pool: Any) -> str:
    client_row = await create_client(pool, "tenant-b")
    return (await create_key(pool, client_row["id"], "admin")).key
