"""Inbound endpoints through the real app and database: CRUD (secrets sealed, masked, audited), and the
public POST /inbound/{pathSuffix} for every preset: 202 with an event, 401/404/429 with none."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
from blacksheep import Content

from control.policy.inbound_presets import catalogue
from tests.integration.conftest import Caller
from tests.support.inbound_sign import SECRETS, secrets_for, sign

BASE = "/api/v1/inbound-endpoints"
BODY = orjson.dumps({"id": "evt_123", "type": "invoice.paid", "event": {"type": "message"}, "amount": 7})


async def post(app_client: Caller, suffix: str, body: bytes, headers: dict[str, str],
               query: str = "") -> tuple[int, Any]:
    ct = headers.get("Content-Type", "application/json")
    h = {**{k: v for k, v in headers.items() if k != "Content-Type"}, "host": "hooks.test"}
    path = f"/inbound/{suffix}" + (f"?{query}" if query else "")
    resp = await app_client.client.post(path, headers=h, content=Content(ct.encode(), body))
    text = await resp.read()
    return resp.status, orjson.loads(text) if text else None


def url_of(suffix: str) -> str:
    return f"http://hooks.test/inbound/{suffix}"   # the Host the test requests carry


async def create(app_client: Caller, source: str, suffix: str, **extra: Any) -> dict[str, Any]:
    p = catalogue()[source]
    body = {"name": source, "pathSuffix": suffix, "source": source,
            "sourceConfig": secrets_for(p.mode, p.params), **extra}
    status, out, _ = await app_client.call("POST", BASE, body)
    assert status == 201, out
    return dict(out)


async def events_of(pool: Any, client_id: str) -> list[Any]:
    return list(await pool.fetch("SELECT * FROM events WHERE client_id = $1 ORDER BY created_at",
                                 uuid.UUID(client_id)))


async def test_crud_seals_masks_and_audits(app_client: Caller, pool: Any) -> None:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                          {"url": "https://api.example.com/hook", "eventTypes": ["push"]})
    assert status == 201
    out = await create(app_client, "github", "github-prod", destinationIds=[ep["id"]],
                       eventTypeMapping="$.headers.X-GitHub-Event", description="prod")
    assert out["sourceConfig"] == {"secret": SECRETS["hmac"]["secret"]}   # shown once
    assert out["mode"] == "hmac" and out["url"] == "/inbound/github-prod" and out["status"] == "active"
    stored = await pool.fetchval("SELECT source_config FROM inbound_endpoints WHERE id = $1", uuid.UUID(out["id"]))
    assert stored.startswith("enc:v1:") and SECRETS["hmac"]["secret"] not in stored
    status, got, _ = await app_client.call("GET", f"{BASE}/{out['id']}")
    assert status == 200 and got["sourceConfig"] == {"secret": "********"}
    assert got["destinationIds"] == [ep["id"]]
    status, page, _ = await app_client.call("GET", BASE)
    assert status == 200 and [r["id"] for r in page["data"]] == [out["id"]]
    status, upd, _ = await app_client.call("PATCH", f"{BASE}/{out['id']}", {"description": "Updated",
                                                                            "status": "inactive"})
    assert status == 200 and upd["description"] == "Updated" and upd["status"] == "inactive"
    status, err, _ = await app_client.call("POST", BASE, {"name": "x", "pathSuffix": "github-prod",
                                                          "source": "github", "sourceConfig": {"secret": "s"}})
    assert status == 409, err
    status, _, _ = await app_client.call("DELETE", f"{BASE}/{out['id']}")
    assert status == 204
    status, _, _ = await app_client.call("GET", f"{BASE}/{out['id']}")
    assert status == 404
    rows = await pool.fetch("SELECT action, before, after FROM audit_logs WHERE resource = 'inbound_endpoint' "
                            "AND client_id = $1 ORDER BY created_at, id", uuid.UUID(app_client.client_id))
    assert [r["action"] for r in rows] == ["create", "update", "delete"]
    assert SECRETS["hmac"]["secret"] not in str([dict(r) for r in rows])


@pytest.mark.parametrize(("body", "field"), [
    ({"pathSuffix": "a", "source": "github"}, "name"),
    ({"name": "n", "pathSuffix": "has space", "source": "github", "sourceConfig": {"secret": "s"}}, "pathSuffix"),
    ({"name": "n", "pathSuffix": "../x", "source": "github", "sourceConfig": {"secret": "s"}}, "pathSuffix"),
    ({"name": "n", "pathSuffix": "ok", "source": "nope"}, "source"),
    ({"name": "n", "pathSuffix": "ok", "source": "github"}, "sourceConfig.secret"),
    ({"name": "n", "pathSuffix": "ok", "source": "github", "sourceConfig": {"secret": "s", "x": "y"}},
     "sourceConfig.x"),
    ({"name": "n", "pathSuffix": "ok", "source": "github", "sourceConfig": {"secret": "s"},
      "eventTypeMapping": "$.["}, "eventTypeMapping"),
    ({"name": "n", "pathSuffix": "ok", "source": "github", "sourceConfig": {"secret": "s"},
      "destinationIds": [str(uuid.uuid4())]}, "destinationIds[0]"),
    ({"name": "n", "pathSuffix": "ok", "source": "github", "sourceConfig": {"secret": "s"}, "status": "on"}, "status"),
])
async def test_invalid_bodies_name_the_field(app_client: Caller, body: dict[str, Any], field: str) -> None:
    status, err, _ = await app_client.call("POST", BASE, body)
    assert status == 400 and err["error"].startswith(field), err


async def test_presets_route_lists_at_least_130(app_client: Caller) -> None:
    status, out, _ = await app_client.call("GET", "/api/v1/inbound-presets")
    assert status == 200 and out["count"] >= 130 and len(out["data"]) == out["count"]
    assert {"source", "name", "description", "mode"} <= set(out["data"][0])


async def test_every_preset_accepts_its_signed_request(app_client: Caller, pool: Any) -> None:
    """Generated over the whole catalogue: sign as the platform documents it, post, expect 202."""
    now = int(time.time())
    for i, (source, p) in enumerate(catalogue().items()):
        suffix = f"p{i}-{source}"
        await create(app_client, source, suffix)
        headers, query = sign(p.mode, p.params, secrets_for(p.mode, p.params), BODY, url_of(suffix), now,
                              msg_id=f"msg-{i}")
        status, out = await post(app_client, suffix, BODY, headers, query)
        assert status == 202, (source, out)
        assert out["eventId"] and not out["duplicate"], (source, out)
    assert len(await events_of(pool, app_client.client_id)) == len(catalogue())


async def test_github_event_type_delivery_and_dedup(app_client: Caller, pool: Any) -> None:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                          {"url": "https://api.example.com/hook", "eventTypes": ["push"]})
    await create(app_client, "github", "gh")
    p = catalogue()["github"]
    headers, _ = sign(p.mode, p.params, SECRETS["hmac"], BODY, url_of("gh"), int(time.time()))
    headers.update({"x-github-event": "push", "X-GitHub-Delivery": "d-1", "User-Agent": "GitHub-Hookshot/1"})
    status, out = await post(app_client, "gh", BODY, headers)
    assert status == 202 and out["eventType"] == "push" and not out["duplicate"]
    row = await pool.fetchrow("SELECT * FROM events WHERE id = $1", uuid.UUID(out["eventId"]))
    assert orjson.loads(row["payload"]) == orjson.loads(BODY)
    kept = {k.lower(): v for k, v in row["headers"].items()}
    assert kept["x-github-delivery"] == "d-1" and kept["x-hub-signature-256"].startswith("sha256=")
    assert "user-agent" not in kept   # every delivery sets its own
    tasks = await pool.fetch("SELECT endpoint_id FROM tasks WHERE event_id = $1", row["id"])
    assert [str(t["endpoint_id"]) for t in tasks] == [ep["id"]]
    # GitHub retries the same delivery: accepted, not stored twice.
    status, again = await post(app_client, "gh", BODY, headers)
    assert status == 202 and again["duplicate"] and again["eventId"] == out["eventId"]
    assert len(await events_of(pool, app_client.client_id)) == 1


async def test_bad_signatures_are_401_and_store_nothing(app_client: Caller, pool: Any) -> None:
    await create(app_client, "stripe", "st")
    await create(app_client, "slack", "sl")
    now = int(time.time())
    st, sl = catalogue()["stripe"], catalogue()["slack"]
    good, _ = sign(st.mode, st.params, SECRETS["stripe"], BODY, url_of("st"), now)
    assert (await post(app_client, "st", BODY + b" ", good))[0] == 401                      # tampered
    wrong, _ = sign(st.mode, st.params, {"secret": "whsec_other"}, BODY, url_of("st"), now)
    assert (await post(app_client, "st", BODY, wrong))[0] == 401                            # wrong secret
    old, _ = sign(st.mode, st.params, SECRETS["stripe"], BODY, url_of("st"), now - 600)
    status, err = await post(app_client, "st", BODY, old)
    assert status == 401 and err["code"] == "UNAUTHORIZED" and "tolerance" in err["error"]  # old timestamp
    old_sl, _ = sign(sl.mode, sl.params, SECRETS["hmac_timestamped"], BODY, url_of("sl"), now - 600)
    assert (await post(app_client, "sl", BODY, old_sl))[0] == 401
    assert (await post(app_client, "st", BODY, {"Content-Type": "application/json"}))[0] == 401   # missing
    assert await events_of(pool, app_client.client_id) == []
    status, out = await post(app_client, "st", BODY, good)
    assert status == 202 and out["eventType"] == "invoice.paid"          # the preset's $.data.type


async def test_unknown_inactive_and_limits(app_client: Caller, pool: Any) -> None:
    assert (await post(app_client, "nobody-here", BODY, {}))[0] == 404
    out = await create(app_client, "custom", "open")
    assert (await post(app_client, "open", b"hello", {"Content-Type": "text/plain"}))[0] == 202
    await app_client.call("PATCH", f"{BASE}/{out['id']}", {"status": "inactive"})
    assert (await post(app_client, "open", BODY, {}))[0] == 404
    await app_client.call("PATCH", f"{BASE}/{out['id']}", {"status": "active"})
    # The app's max body is 64 KiB in these tests.
    status, err = await post(app_client, "open", b"x" * 70000, {"Content-Type": "text/plain"})
    assert status == 413, err
    status, err = await post(app_client, "open", b"{not json", {"Content-Type": "application/json"})
    assert status == 400, err
    row = (await events_of(pool, app_client.client_id))[0]
    assert orjson.loads(row["payload"]) == {"body": "hello", "contentType": "text/plain"}


async def test_form_bodies_and_a_flooded_path_does_not_block_another(app_client: Caller) -> None:
    from api.context import ctx
    from control.services.inbound import InboundService
    service = ctx().service(InboundService)
    await create(app_client, "custom", "flood")
    await create(app_client, "custom", "calm")
    service.rate, service.burst = 5, 5
    try:
        codes = [(await post(app_client, "flood", BODY, {}))[0] for _ in range(12)]
        assert codes.count(202) <= 6 and 429 in codes
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, out = await post(app_client, "calm", b"a=1&a=2&b=x", form)
        assert status == 202, out
    finally:
        service.rate, service.burst = 100, 200


async def test_the_transformation_shapes_the_stored_event_or_cancels_it(app_client: Caller, pool: Any) -> None:
    code = """function handler(w) {
        if (w.payload.amount > 100) { w.cancel = true; return w; }
        w.payload = {invoice: w.payload.id, cents: w.payload.amount * 100, type: w.eventType};
        w.headers["x-shaped"] = "yes";
        return w;
    }"""
    await create(app_client, "github", "gh-shaped", transformation=code)
    p = catalogue()["github"]
    headers, _ = sign(p.mode, p.params, SECRETS["hmac"], BODY, url_of("gh-shaped"), int(time.time()))
    headers.update({"x-github-event": "invoice", "X-GitHub-Delivery": "d-shaped"})
    status, out = await post(app_client, "gh-shaped", BODY, headers)
    assert status == 202 and not out.get("cancelled"), out
    row = await pool.fetchrow("SELECT payload, headers FROM events WHERE id = $1", uuid.UUID(out["eventId"]))
    assert orjson.loads(row["payload"]) == {"invoice": "evt_123", "cents": 700, "type": "invoice"}
    assert row["headers"]["x-shaped"] == "yes"
    big = orjson.dumps({"id": "evt_big", "amount": 500})
    headers, _ = sign(p.mode, p.params, SECRETS["hmac"], big, url_of("gh-shaped"), int(time.time()))
    headers.update({"x-github-event": "invoice", "X-GitHub-Delivery": "d-big"})
    status, out = await post(app_client, "gh-shaped", big, headers)
    assert status == 202 and out["cancelled"] and out["eventId"] is None, out
    assert len(await events_of(pool, app_client.client_id)) == 1, "a cancelled request stores nothing"
