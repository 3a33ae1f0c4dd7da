"""An edit that lands while the old destination's attempt is still in flight: the delivery must
still reach the new destination (the old copy gives its claim up instead of keeping it)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.server import Api
from tests.support.sink import Sink, sink_on_shard

pytestmark = pytest.mark.e2e

# Retries due within 50 ms stay claimed in memory (the 20 ms backoff after the slow attempt); the
# 1 s Retry-After goes back to Postgres and is claimed again only when due (the scan runs every
# second), so the slow second attempt is one the database shows as `delivering`: the edit cannot
# release its claim, and only the old copy's outcome can.
SERVER_ENV = {"MITTR_ENGINE__CLAIM_HORIZON_S": "0.05", "MITTR_ENGINE__DEFAULT_RETRY_BACKOFF_MS": "20"}


@pytest.mark.parametrize("same_shard", [True, False], ids=["same shard", "other shard"])
async def test_edit_during_an_attempt_still_reaches_the_new_destination(api: Api, sink: Sink,
                                                                        same_shard: bool) -> None:
    new = await sink_on_shard(sink, same_shard)
    try:
        sink.script("/old", lambda n: (429, {"Retry-After": "1"}, 0.0) if n == 1 else (500, {}, 1.5))
        status, created = await api.call("POST", "/api/v1/events",
                                         {"destination": sink.url + "/old", "payload": {"v": 1}, "maxAttempts": 5},
                                         {"X-Idempotency-Key": f"k-{uuid.uuid4()}"})
        assert status == 201, created
        await sink.wait_for("/old", 2)                     # the slow second attempt is in flight now
        assert sink.answered["/old"] == 1
        status, edited = await api.call("PATCH", f"/api/v1/events/{created['id']}",
                                        {"destination": new.url + "/new", "payload": {"v": 2}})
        assert status == 200, edited
        [got] = await new.wait_for("/new", 1, timeout=15)
        assert got.body == b'{"v":2}'
        event = await api.wait_event(created["id"], {"delivered"})
        assert [a["statusCode"] for a in event["deliveryAttempts"]][-1] == 200
    finally:
        await new.stop()
