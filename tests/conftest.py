"""Test infrastructure: one real PostgreSQL per test session (embedded unless DATABASE_URL is set),
a migrated template database, and a fresh database cloned from it for each test that needs one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import settings

from tests.support.leaks import close_leaked, open_connections, track_connections
from tests.support.pg import with_database

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())

# Property tests: CI replays the same examples every run ("ci", derandomized), so a red build is
# about the change under test, never about a new random draw; HYPOTHESIS_PROFILE=explore draws
# afresh on every run, which is how a developer hunts for new counterexamples (run it in a loop).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# A fixed key for sealing secrets in tests (never used outside the test suite).
os.environ.setdefault("MITTR_SECURITY__ENCRYPTION_KEY", "dGVzdC1vbmx5LWtleS1mb3ItbWl0dHItdGVzdHMtMDE=")
track_connections()


@pytest.fixture(scope="module", autouse=True)
def no_leaked_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module that leaves a Postgres connection open fails here, by name (see tests/support/leaks.py)."""
    before = open_connections()
    yield
    leaked = close_leaked(before)
    if leaked:
        pytest.fail(f"{request.module.__name__} left {leaked} Postgres connection(s) or pool(s) open", pytrace=False)


@pytest.fixture(scope="session")
def embedded_pg() -> Iterator[Any]:
    """The session's embedded PostgreSQL (None when DATABASE_URL points at a server of yours)."""
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    from control.store.pgserver import EmbeddedPostgres

    base = tempfile.mkdtemp(prefix="mittr-test-pg-")
    os.chmod(base, 0o755)
    pg = EmbeddedPostgres(Path(base) / "pgdata")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(embedded_pg: Any) -> str:
    """A server URL we may CREATE DATABASE on."""
    return str(embedded_pg.url) if embedded_pg is not None else os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    from control.store.db import connect, migrate

    name = f"mittr_tpl_{uuid.uuid4().hex[:10]}"

    async def build() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await connect(with_database(pg_admin_url, name))
        try:
            await migrate(conn, 4096)
        finally:
            await conn.close()

    asyncio.run(build())
    return name


async def _create_db(admin_url: str, template: str) -> str:
    name = f"mittr_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return name


async def _drop_db(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, template: str) -> AsyncIterator[str]:
    """A database cloned from the migrated template, dropped (connections and all) afterwards."""
    name = await _create_db(admin_url, template)
    try:
        yield with_database(admin_url, name)
    finally:
        await _drop_db(admin_url, name)


@contextlib.asynccontextmanager
async def open_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    from control.store.db import create_pool

    p = await create_pool(url, 1, 8)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def db_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated, empty database for one test."""
    async with fresh_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with open_pool(db_url) as p:
        yield p


@pytest.fixture(scope="module")
async def module_db_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """One database shared by a module's tests: only for tests that change nothing in it."""
    async with fresh_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture(scope="module")
async def module_pool(module_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with open_pool(module_db_url) as p:
        yield p
