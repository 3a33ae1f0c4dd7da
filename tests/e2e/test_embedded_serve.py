"""The quick start as a new user runs it: `mittr serve` with no DATABASE_URL starts its own
PostgreSQL, prints the admin key once, serves, and on SIGTERM stops everything it started."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import aiohttp
import pytest

from control.store.pgserver import EmbeddedPostgres
from tests.support.server import MittrServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_serve_with_embedded_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    base = Path(tempfile.mkdtemp(prefix="mittr-embedded-"))
    os.chmod(base, 0o755)
    data_dir = base / "pgdata"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env = {"MITTR_DATABASE__DATA_DIR": str(data_dir)}
    first = MittrServer("", shards=1, env_overrides=env)
    first.env_overrides["DATABASE_URL"] = ""
    await first.start()
    try:
        assert first.admin_key.startswith("mtr_")
        assert any("embedded PostgreSQL at" in line for line in first.output)
        async with aiohttp.ClientSession() as http:
            async with http.get(first.url + "/health") as resp:
                assert resp.status == 200 and (await resp.json())["database"] == "ok"
            async with http.get(first.url + "/api/v1/events", headers={"X-API-Key": first.admin_key}) as resp:
                assert resp.status == 200
    finally:
        assert await first.stop(signal.SIGTERM, timeout=60) == 0
    pg = EmbeddedPostgres(data_dir)
    assert pg.is_initialized() and not pg.is_running(), "serve stops the PostgreSQL it started"

    again = MittrServer("", shards=1, env_overrides={**env, "DATABASE_URL": ""})
    await again.start()
    try:
        assert again.admin_key == "", "the admin key is printed on the very first start only"
    finally:
        assert await again.stop(signal.SIGTERM, timeout=60) == 0
