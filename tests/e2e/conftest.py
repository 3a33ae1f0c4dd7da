from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from control.policy.partitioning import partition_for, shard_for, target_key
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


PARTITIONS = 4096      # the template database's partitions


def shard_of(sink: Sink, shards: int = 2) -> int:
    """Which of the module server's shards delivers to this sink's origin."""
    return shard_for(partition_for(target_key(None, sink.url), PARTITIONS), PARTITIONS, shards)


async def sink_on_shard(reference: Sink, same_shard: bool, shards: int = 2) -> Sink:
    """A started receiver on a new origin that the same shard as `reference`'s (or another) serves."""
    spares: list[Sink] = []
    try:
        while True:
            s = await Sink().start()
            if (shard_of(s, shards) == shard_of(reference, shards)) == same_shard:
                return s
            spares.append(s)
    finally:
        for spare in spares:
            await spare.stop()
