"""What endpoint and event input the API refuses up front because the shards could never deliver
it: unreachable literal addresses, allowlists inside refused ranges, storage mode, Standard
Webhooks secrets that do not decode. And which responses carry a signing secret."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from blacksheep.testing import TestClient

from control.crypto import box_for
from control.services.keys import create_client, create_key
from control.settings import Settings, load_settings
from tests.integration.conftest import Caller

EP = {"url": "https://api.example.com/webhooks", "eventTypes": ["order.created"]}
GOOD_WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()

Open = Callable[..., AbstractAsyncContextManager[tuple[Caller, Settings]]]


@pytest.fixture
def app_with(db_url: str, pool: Any) -> Open:
    """The real app under chosen [engine] settings, e.g. app_with(allow_private_networks="true")."""
    @asynccontextmanager
    async def open_app(**engine: str) -> AsyncIterator[tuple[Caller, Settings]]:
        from api.app import create_app

        env = {"DATABASE_URL": db_url, **{f"MITTR_ENGINE__{k.upper()}": v for k, v in engine.items()}}
        settings = load_settings(env=env)
        app = create_app(settings)
        await app.start()
        client = await create_client(pool, "tenant-policy")
        key = await create_key(pool, client["id"], "admin")
        try:
            yield Caller(TestClient(app), key.key, str(client["id"])), settings
        finally:
            await app.stop()
    return open_app


async def create(api: Caller, **fields: Any) -> tuple[int, Any]:
    status, body, _ = await api.call("POST", "/api/v1/endpoints", {**EP, **fields})
    return status, body


async def patch(api: Caller, ep_id: str, **fields: Any) -> tuple[int, Any]:
    status, body, _ = await api.call("PATCH", f"/api/v1/endpoints/{ep_id}", fields)
    return status, body


async def direct(api: Caller, destination: str, key: str) -> tuple[int, Any]:
    status, body, _ = await api.call("POST", "/api/v1/events", {"destination": destination, "payload": {}},
                                     {"X-Idempotency-Key": key})
    return status, body


def refused(status: int, err: Any, field: str, *words: str) -> bool:
    return (status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith(field + ":")
            and all(w in err["error"] for w in words))


# Item 2b: a whsec_ secret that does not decode would only fail later, in the shard, when signing.

async def test_standard_webhooks_secret_must_decode_at_create_and_patch(app_client: Caller) -> None:
    bad = "whsec_not*base64!!"
    status, err = await create(app_client, standardWebhooks=True, signingSecret=bad)
    assert refused(status, err, "signingSecret", "base64"), err
    for ok in (GOOD_WHSEC, GOOD_WHSEC.rstrip("="), "a-plain-secret-used-as-is"):
        status, ep = await create(app_client, standardWebhooks=True, signingSecret=ok)
        assert status == 201, ep
    status, err = await patch(app_client, ep["id"], signingSecret=bad)
    assert refused(status, err, "signingSecret", "base64"), err
    # Without Standard Webhooks the string is only the v1 HMAC key, so any string does...
    status, plain = await create(app_client, signingSecret=bad)
    assert status == 201, plain
    # ...until Standard Webhooks is switched on: then the stored secret is judged too.
    status, err = await patch(app_client, plain["id"], standardWebhooks=True)
    assert refused(status, err, "signingSecret", "base64"), err
    status, fixed = await patch(app_client, plain["id"], standardWebhooks=True, signingSecret=GOOD_WHSEC)
    assert status == 200 and fixed["standardWebhooks"] is True, fixed


# Item 10: storage destinations are not built; an endpoint in storage mode would never deliver.

async def test_storage_mode_needs_a_storage_config_it_can_run(app_client: Caller) -> None:
    """Never accept what cannot run: storage exists now (issue 16), and a config without a kind it
    knows is refused at create and at PATCH."""
    status, err = await create(app_client, deliveryMode="storage", storageConfig={"bucket": "b"})
    assert refused(status, err, "storageConfig.type", "must be one of"), err
    status, ep = await create(app_client, deliveryMode="poll")
    assert status == 201, ep
    status, err = await patch(app_client, ep["id"], deliveryMode="storage", storageConfig={"bucket": "b"})
    assert refused(status, err, "storageConfig.type", "must be one of"), err


# Item 12: literal addresses the shards would refuse are refused when they are given.

@pytest.mark.parametrize("url", [
    "http://10.0.0.5/h", "http://127.0.0.1:8080/h", "http://[::1]/h", "http://localhost:9000/h",
    "http://2130706433/h", "http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.5]/h",
])
async def test_internal_literals_refused_by_default(app_client: Caller, url: str) -> None:
    status, err = await create(app_client, url=url)
    assert refused(status, err, "url", "engine.allow_private_networks"), err
    status, ep = await create(app_client)
    status, err = await patch(app_client, ep["id"], url=url)
    assert refused(status, err, "url"), err
    status, err = await direct(app_client, url, "internal-" + url)
    assert refused(status, err, "destination"), err


async def test_batch_destinations_are_judged_too(app_client: Caller) -> None:
    events = [{"idempotencyKey": f"b{i}", "destination": d, "payload": {}}
              for i, d in enumerate(("https://ok.example.com/h", "http://192.168.1.10/h"))]
    status, err, _ = await app_client.call("POST", "/api/v1/events/batch", {"events": events})
    assert status == 400 and err["error"].startswith("events[1].destination:") and "192.168.1.10" in err["error"]


async def test_editing_a_destination_is_judged_too(app_client: Caller, pool: Any) -> None:
    status, ev = await direct(app_client, "https://ok.example.com/h", "edit-me")
    await pool.execute("UPDATE events SET status = 'dead' WHERE id = $1::uuid", ev["id"])
    status, err, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}",
                                           {"destination": "http://[::ffff:127.0.0.1]:8080/h"})
    assert refused(status, err, "destination", "127.0.0.1"), err


METADATA_URLS = ["http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/v2/credentials",
                 "http://100.100.100.200/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/",
                 "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[fe80::1]/"]


async def test_metadata_literals_refused_even_with_private_networks_allowed(app_with: Open) -> None:
    async with app_with(allow_private_networks="true") as (api, _):
        status, ep = await create(api, url="http://127.0.0.1:9/loopback-stays-usable")
        assert status == 201, ep
        status, ev = await direct(api, "http://10.1.2.3/h", "private-ok")
        assert status == 201, ev
        for i, url in enumerate(METADATA_URLS):
            status, err = await create(api, url=url)
            assert refused(status, err, "url", "engine.allow_metadata_addresses"), (url, err)
            status, err = await patch(api, ep["id"], url=url)
            assert refused(status, err, "url", "metadata"), (url, err)
            status, err = await direct(api, url, f"meta-{i}")
            assert refused(status, err, "destination", "metadata"), (url, err)
        status, err = await create(api, allowedCidrs=["203.0.113.0/24", "169.254.169.254/32"])
        assert refused(status, err, "allowedCidrs[1]", "cannot re-open"), err
        for url in ("http://0.0.0.0:8080/h", "http://[::]/h", "http://224.0.0.1/h", "http://[64:ff9b:1::1]/h"):
            status, err = await create(api, url=url)
            assert refused(status, err, "url", "never delivered to"), (url, err)


async def test_metadata_setting_opens_them(app_with: Open) -> None:
    async with app_with(allow_private_networks="true", allow_metadata_addresses="true") as (api, _):
        for i, url in enumerate(METADATA_URLS):
            status, ep = await create(api, url=url, allowedCidrs=["169.254.0.0/16", "fd00:ec2::/32"])
            assert status == 201, (url, ep)
            status, ev = await direct(api, url, f"meta-open-{i}")
            assert status == 201, (url, ev)
        status, err = await create(api, url="http://0.0.0.0/h")     # never, whatever the settings
        assert refused(status, err, "url", "never delivered to"), err
    async with app_with(allow_metadata_addresses="true") as (api, _):   # alone it opens nothing
        status, err = await create(api, url=METADATA_URLS[0])
        assert refused(status, err, "url", "both on"), err


# Item 13: the response carries signingSecret exactly when Mittr generated it.

async def test_patch_with_null_secret_rotates_and_returns_the_new_secret(app_with: Open, pool: Any) -> None:
    async with app_with() as (api, settings):
        status, ep = await create(api)
        first = ep["signingSecret"]
        status, rotated = await patch(api, ep["id"], signingSecret=None)
        assert status == 200, rotated
        assert rotated["signingSecret"].startswith("whsec_") and rotated["signingSecret"] != first
        stored = await pool.fetchval("SELECT signing_secret FROM endpoints WHERE id = $1::uuid", ep["id"])
        assert box_for(settings.security["encryption_key"]).open(stored) == rotated["signingSecret"]
        # A secret the caller chose, or no secret change at all, is not echoed back.
        for body in ({"signingSecret": "my-own-secret-123"}, {"description": "x"}):
            status, got, _ = await api.call("PATCH", f"/api/v1/endpoints/{ep['id']}", body)
            assert status == 200 and "signingSecret" not in got, got
        status, chosen = await create(api, signingSecret="another-own-secret")
        assert status == 201 and "signingSecret" not in chosen, chosen
        status, generated = await create(api, signingSecret=None)
        assert status == 201 and generated["signingSecret"].startswith("whsec_"), generated
