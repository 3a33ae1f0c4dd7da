"""Throw-away PostgreSQL for the component benchmarks (`bench.writer`, `bench.batch_insert`): an
embedded server in a temporary directory unless DATABASE_URL names one, and a fresh database on it
per run, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@contextlib.asynccontextmanager
async def scratch_server(prefix: str) -> AsyncIterator[str]:
    """The admin URL of DATABASE_URL's server, or of an embedded one started for the block."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from control.store.pgserver import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(workdir, 0o755)
    pg = EmbeddedPostgres(workdir / "pgdata")
    try:
        pg.start()
        yield str(pg.url)
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def scratch_database(admin: str, prefix: str) -> AsyncIterator[str]:
    """A new empty database on `admin`'s server for the block; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    parts = urlsplit(admin)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
