from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import _create_db, _drop_db
from tests.support.pg import with_database
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink


@pytest.fixture(scope="module")
async def server(request: pytest.FixtureRequest, pg_admin_url: str, template_db: str) -> AsyncIterator[MittrServer]:
    """One real `mittr serve` per test module, on its own fresh database. A module may set
    SERVER_SHARDS (default 2) and SERVER_ENV (extra environment) to shape it."""
    name = await _create_db(pg_admin_url, template_db)
    srv = MittrServer(with_database(pg_admin_url, name), shards=getattr(request.module, "SERVER_SHARDS", 2),
                      env_overrides=dict(getattr(request.module, "SERVER_ENV", {})))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
        await _drop_db(pg_admin_url, name)


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
async def api(server: MittrServer, http: aiohttp.ClientSession) -> Api:
    assert server.admin_key.startswith("mtr_"), "first start must print the admin key"
    return Api(server.url, server.admin_key, http)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = await Sink().start()
    try:
        yield s
    finally:
        await s.stop()

