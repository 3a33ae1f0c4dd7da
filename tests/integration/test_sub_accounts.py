"""Sub-accounts, portal sessions and the /sub-account-api runtime, against the in-process app and a
real database: CRUD and deactivation, attribution of events (single and batch) and endpoints by
X-Sub-Account-ID, fan-out that never crosses sub-accounts, the one-time exchange, sliding expiry,
revocation on the next request, and scoping of every runtime route."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from control.store.queries import q
from tests.integration.conftest import Caller


async def make_sub(app: Caller, sub_id: str, **extra: Any) -> dict[str, Any]:
    status, body, _ = await app.call("POST", "/api/v1/sub-accounts",
                                     {"name": f"Customer {sub_id}", "subID": sub_id, **extra})
    assert status == 201, body
    return body


async def portal_token(app: Caller, sub: str, **body: Any) -> str:
    """Mint a URL, take its one-time token, exchange it: the portal's session token."""
    status, out, _ = await app.call("POST", f"/api/v1/sub-accounts/{sub}/sessions", body)
    assert status == 201, out
    url = urlsplit(out["url"])
    assert url.path == "/s/exchange"
    exchange = parse_qs(url.query)["token"][0]
    status, got, _ = await app.call("POST", "/sub-account-api/auth/exchange", {"token": exchange}, key="")
    assert status == 200, got
    return str(got["token"])


async def portal_headers(app: Caller, sub_id: str = "portal-caller") -> dict[str, str]:
    """Authorization for the /sub-account-api routes, as a new sub-account's portal."""
    sub = await make_sub(app, sub_id)
    return {"Authorization": f"Bearer {await portal_token(app, sub['id'])}"}


async def portal(app: Caller, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, out, _ = await app.call(method, "/sub-account-api" + path, body,
                                    {"Authorization": f"Bearer {token}"}, key="")
    return status, out


async def test_crud_and_unique_sub_id(app_client: Caller, pool: Any) -> None:
    sub = await make_sub(app_client, "cust_abc123", metadata={"tier": "enterprise"})
    assert sub["subID"] == "cust_abc123" and sub["metadata"] == {"tier": "enterprise"} and sub["active"]
    status, body, _ = await app_client.call("POST", "/api/v1/sub-accounts", {"name": "x", "subID": "cust_abc123"})
    assert status == 409 and body["code"] == "CONFLICT"
    status, body, _ = await app_client.call("POST", "/api/v1/sub-accounts", {"name": "x"})
    assert status == 400 and "subID" in body["error"]
    status, body, _ = await app_client.call("PATCH", f"/api/v1/sub-accounts/{sub['id']}",
                                            {"name": "Acme Customer Inc. (renamed)"})
    assert status == 200 and body["name"].endswith("(renamed)") and body["subID"] == "cust_abc123"
    other = await make_sub(app_client, "cust_2")
    status, body, _ = await app_client.call("PATCH", f"/api/v1/sub-accounts/{other['id']}", {"subID": "cust_abc123"})
    assert status == 409
    status, page, _ = await app_client.call("GET", "/api/v1/sub-accounts?limit=1")
    assert status == 200 and len(page["data"]) == 1 and page["pagination"]["hasMore"]
    cursor = page["pagination"]["cursor"]
    status, page2, _ = await app_client.call("GET", f"/api/v1/sub-accounts?limit=1&cursor={cursor}")
    assert {page["data"][0]["id"], page2["data"][0]["id"]} == {sub["id"], other["id"]}
    actions = await pool.fetch("SELECT action FROM audit_logs WHERE resource = 'sub_account' ORDER BY created_at")
    assert [r["action"] for r in actions] == ["create", "update", "create"]


async def test_events_attributed_and_fan_out_stays_inside_the_sub_account(app_client: Caller, pool: Any) -> None:
    a, b = await make_sub(app_client, "a"), await make_sub(app_client, "b")
    made = {}
    for name, sub in (("a", a["id"]), ("b", b["id"]), ("none", None)):
        headers = {"X-Sub-Account-ID": sub} if sub else {}
        status, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                              {"url": f"https://{name}.example.com/h", "eventTypes": ["order.*"]},
                                              headers)
        assert status == 201, ep
        assert ep["subAccountId"] == sub
        made[name] = ep["id"]
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "order.created", "payload": {}},
                                          {"X-Idempotency-Key": "fa", "X-Sub-Account-ID": a["id"]})
    assert status == 201, ev
    targets = await pool.fetch("SELECT endpoint_id FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    assert [str(r["endpoint_id"]) for r in targets] == [made["a"]]
    status, ev2, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "order.created", "payload": {}},
                                           {"X-Idempotency-Key": "fn"})
    targets = await pool.fetch("SELECT endpoint_id FROM tasks WHERE event_id = $1", uuid.UUID(ev2["id"]))
    assert [str(r["endpoint_id"]) for r in targets] == [made["none"]]
    stored = await pool.fetchval("SELECT sub_account_id FROM events WHERE id = $1", uuid.UUID(ev["id"]))
    assert str(stored) == a["id"]
    # batch ingest takes the header too
    status, batch, _ = await app_client.call(
        "POST", "/api/v1/events/batch",
        {"events": [{"idempotencyKey": "b1", "destination": "https://x.example.com/d", "payload": {}}]},
        {"X-Sub-Account-ID": b["id"]})
    assert status == 201, batch
    stored = await pool.fetchval("SELECT sub_account_id FROM events WHERE id = $1",
                                 uuid.UUID(batch["events"][0]["id"]))
    assert str(stored) == b["id"]
    # lists narrowed by the header; the workspace without it sees everything
    status, mine, _ = await app_client.call("GET", "/api/v1/events", headers={"X-Sub-Account-ID": a["id"]})
    assert [e["id"] for e in mine["data"]] == [ev["id"]]
    status, everything, _ = await app_client.call("GET", "/api/v1/events")
    assert len(everything["data"]) == 3
    # an unknown or malformed sub-account is 404, like another workspace's
    for bad in (str(uuid.uuid4()), "nope"):
        status, body, _ = await app_client.call("GET", "/api/v1/events", headers={"X-Sub-Account-ID": bad})
        assert status == 404 and body["code"] == "NOT_FOUND"


async def test_deactivation_refuses_events_and_keeps_history(app_client: Caller) -> None:
    sub = await make_sub(app_client, "gone")
    scoped = {"X-Sub-Account-ID": sub["id"]}
    status, ev, _ = await app_client.call("POST", "/api/v1/events",
                                          {"destination": "https://x.example.com/d", "payload": {}},
                                          {**scoped, "X-Idempotency-Key": "before"})
    assert status == 201
    token = await portal_token(app_client, sub["id"])
    status, _, _ = await app_client.call("DELETE", f"/api/v1/sub-accounts/{sub['id']}")
    assert status == 204
    status, body, _ = await app_client.call("GET", f"/api/v1/sub-accounts/{sub['id']}")
    assert body["active"] is False and body["deactivatedAt"]
    status, body, _ = await app_client.call("POST", "/api/v1/events",
                                            {"destination": "https://x.example.com/d", "payload": {}},
                                            {**scoped, "X-Idempotency-Key": "after"})
    assert status == 409 and body["code"] == "SUB_ACCOUNT_INACTIVE" and "deactivated" in body["error"]
    status, body, _ = await app_client.call(
        "POST", "/api/v1/events/batch",
        {"events": [{"idempotencyKey": "b", "destination": "https://x.example.com/d", "payload": {}}]}, scoped)
    assert status == 409 and body["code"] == "SUB_ACCOUNT_INACTIVE"
    status, history, _ = await app_client.call("GET", "/api/v1/events", headers=scoped)
    assert status == 200 and [e["id"] for e in history["data"]] == [ev["id"]]
    # its portal sessions ended with it, and no new one is minted
    assert (await portal(app_client, token, "GET", "/session"))[0] == 401
    status, body, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub['id']}/sessions", {})
    assert status == 409 and body["code"] == "SUB_ACCOUNT_INACTIVE"


async def test_exchange_works_once_and_stores_only_digests(app_client: Caller, pool: Any) -> None:
    sub = await make_sub(app_client, "x")
    status, out, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub['id']}/sessions",
                                           {"returnURL": "https://app.example.com/integrations", "ttlSeconds": 600})
    assert status == 201 and out["session"]["status"] == "pending"
    exchange = parse_qs(urlsplit(out["url"]).query)["token"][0]
    status, got, _ = await app_client.call("POST", "/sub-account-api/auth/exchange", {"token": exchange}, key="")
    assert status == 200 and got["subAccount"]["subID"] == "x" and got["ttlSeconds"] == 600
    assert got["returnURL"] == "https://app.example.com/integrations"
    status, again, _ = await app_client.call("POST", "/sub-account-api/auth/exchange", {"token": exchange}, key="")
    assert status == 401 and again["code"] == "UNAUTHORIZED"
    row = await pool.fetchrow("SELECT * FROM portal_sessions")
    stored = repr(dict(row))
    assert exchange not in stored and got["token"] not in stored
    status, info = await portal(app_client, got["token"], "GET", "/session")
    assert status == 200 and info["sessionId"] == out["session"]["id"]
    status, listed, _ = await app_client.call("GET", f"/api/v1/sub-accounts/{sub['id']}/sessions")
    assert [s["status"] for s in listed["data"]] == ["active"]


async def test_expired_exchange_token_and_session(app_client: Caller, pool: Any) -> None:
    sub = await make_sub(app_client, "slow")
    status, out, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub['id']}/sessions", {})
    await pool.execute("UPDATE portal_sessions SET exchange_expires_at = now() - interval '1 second'")
    exchange = parse_qs(urlsplit(out["url"]).query)["token"][0]
    status, body, _ = await app_client.call("POST", "/sub-account-api/auth/exchange", {"token": exchange}, key="")
    assert status == 401
    token = await portal_token(app_client, sub["id"])
    await pool.execute("UPDATE portal_sessions SET expires_at = now() - interval '1 second'"
                       " WHERE exchanged_at IS NOT NULL")
    status, body = await portal(app_client, token, "GET", "/session")
    assert status == 401 and body["code"] == "SESSION_EXPIRED"


async def test_sliding_refresh(app_client: Caller, pool: Any) -> None:
    sub = await make_sub(app_client, "slide")
    token = await portal_token(app_client, sub["id"], ttlSeconds=120)
    # Ten seconds from expiry: a request slides it a whole window (120 s) forward again.
    await pool.execute("UPDATE portal_sessions SET expires_at = now() + interval '10 seconds'")
    assert (await portal(app_client, token, "GET", "/endpoints"))[0] == 200
    left = await pool.fetchval("SELECT extract(epoch FROM expires_at - now()) FROM portal_sessions")
    assert 60 < left <= 120


async def test_revocation_takes_effect_on_the_next_request(app_client: Caller) -> None:
    sub = await make_sub(app_client, "rev")
    one, two, three = [await portal_token(app_client, sub["id"]) for _ in range(3)]
    assert (await portal(app_client, one, "GET", "/session"))[0] == 200
    session_of_one = (await portal(app_client, one, "GET", "/session"))[1]["sessionId"]
    status, _, _ = await app_client.call("DELETE", f"/api/v1/sub-accounts/{sub['id']}/sessions/{session_of_one}")
    assert status == 204
    assert (await portal(app_client, one, "GET", "/session"))[0] == 401
    assert (await portal(app_client, two, "GET", "/session"))[0] == 200
    status, body, _ = await app_client.call("DELETE", f"/api/v1/sub-accounts/{sub['id']}/sessions")
    assert status == 200 and body["revoked"] == 2
    for token in (two, three):
        assert (await portal(app_client, token, "GET", "/endpoints"))[0] == 401
    status, _, _ = await app_client.call("DELETE", f"/api/v1/sub-accounts/{sub['id']}/sessions/{uuid.uuid4()}")
    assert status == 404


async def test_runtime_api_is_scoped_to_the_sub_account(app_client: Caller, pool: Any) -> None:
    a, b = await make_sub(app_client, "ra"), await make_sub(app_client, "rb")
    ta, tb = await portal_token(app_client, a["id"]), await portal_token(app_client, b["id"])
    status, ep = await portal(app_client, ta, "POST", "/endpoints",
                              {"url": "https://a.example.com/h", "eventTypes": ["order.*"]})
    assert status == 201 and ep["subAccountId"] == a["id"] and ep["signingSecret"]
    # the workspace sends an event for sub-account a: only a's endpoint gets it
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "order.paid", "payload": {"n": 1}},
                                          {"X-Idempotency-Key": "r1", "X-Sub-Account-ID": a["id"]})
    assert status == 201 and ev["status"] == "queued"
    status, ws_ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                             {"url": "https://ws.example.com/h", "eventTypes": ["*"]})
    assert (await portal(app_client, ta, "GET", f"/endpoints/{ep['id']}"))[0] == 200
    status, listed = await portal(app_client, ta, "GET", "/endpoints")
    assert [e["id"] for e in listed["data"]] == [ep["id"]]
    status, listed = await portal(app_client, ta, "GET", "/events")
    assert [e["id"] for e in listed["data"]] == [ev["id"]]
    assert (await portal(app_client, ta, "GET", f"/events/{ev['id']}"))[0] == 200
    status, deliveries = await portal(app_client, ta, "GET", f"/events/{ev['id']}/deliveries")
    assert status == 200 and deliveries["pending"][0]["endpointId"] == ep["id"]
    # b sees none of it: every id of a's (or the workspace's) is 404
    status, listed = await portal(app_client, tb, "GET", "/endpoints")
    assert listed["data"] == []
    status, listed = await portal(app_client, tb, "GET", "/events")
    assert listed["data"] == []
    for path in (f"/endpoints/{ep['id']}", f"/endpoints/{ws_ep['id']}", f"/events/{ev['id']}",
                 f"/events/{ev['id']}/deliveries"):
        status, body = await portal(app_client, tb, "GET", path)
        assert status == 404 and body["code"] == "NOT_FOUND", path
    status, body = await portal(app_client, tb, "POST", f"/events/{ev['id']}/retry")
    assert status == 404
    # retry by the owner: the main API's rules (only failed/dead events)
    status, body = await portal(app_client, ta, "POST", f"/events/{ev['id']}/retry")
    assert status == 409 and body["code"] == "INVALID_STATE"
    await pool.execute("UPDATE tasks SET status = 'dead' WHERE event_id = $1", uuid.UUID(ev["id"]))
    await pool.execute("UPDATE events SET status = 'dead' WHERE id = $1", uuid.UUID(ev["id"]))
    status, body = await portal(app_client, ta, "POST", f"/events/{ev['id']}/retry")
    assert status == 200 and body["status"] == "queued", body
    actor = await pool.fetchval("SELECT actor_label FROM audit_logs WHERE action = 'replay'")
    assert actor == "portal:ra"


async def test_runtime_api_validates_like_the_main_api(app_client: Caller) -> None:
    sub = await make_sub(app_client, "v")
    token = await portal_token(app_client, sub["id"])
    status, body = await portal(app_client, token, "POST", "/endpoints",
                                {"url": "http://127.0.0.1:9/h", "eventTypes": ["x"]})
    assert status == 400 and "url" in body["error"], body          # the SSRF policy
    status, body = await portal(app_client, token, "POST", "/endpoints", {"eventTypes": ["x"]})
    assert status == 400 and body["error"] == "url: required"
    status, body = await portal(app_client, token, "POST", "/endpoints",
                                {"url": "https://a.example.com/h", "eventTypes": ["x"],
                                 "storageConfig": {"type": "filesystem", "directory": "x"}})
    assert status == 400 and body["error"].startswith("storageConfig")
    status, body, _ = await app_client.call("POST", "/sub-account-api/endpoints", {}, key="")
    assert status == 401
    for auth in ("Bearer nope", "Basic abc", ""):
        status, body, _ = await app_client.call("GET", "/sub-account-api/events", headers={"Authorization": auth},
                                                key="")
        assert status == 401, auth


async def test_events_name_their_sub_account_everywhere_they_are_shown(app_client: Caller) -> None:
    """subAccountId on the created event, GET, the list, and the portal's runtime API; null for the
    workspace's own events; and declared (required, nullable) in the OpenAPI schemas of those routes."""
    sub = await make_sub(app_client, "named")
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "named.thing", "payload": {}},
                                          {"X-Idempotency-Key": "named-1", "X-Sub-Account-ID": sub["id"]})
    assert status == 201 and ev["subAccountId"] == sub["id"], ev
    status, own, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "named.thing", "payload": {}},
                                           {"X-Idempotency-Key": "named-2"})
    assert status == 201 and own["subAccountId"] is None, own
    for event, expected in ((ev, sub["id"]), (own, None)):
        status, got, _ = await app_client.call("GET", f"/api/v1/events/{event['id']}")
        assert status == 200 and got["subAccountId"] == expected, got
    status, listed, _ = await app_client.call("GET", "/api/v1/events")
    assert {e["id"]: e["subAccountId"] for e in listed["data"]} == {ev["id"]: sub["id"], own["id"]: None}
    status, listed, _ = await app_client.call("GET", "/api/v1/events", headers={"X-Sub-Account-ID": sub["id"]})
    assert [e["subAccountId"] for e in listed["data"]] == [sub["id"]]
    token = await portal_token(app_client, sub["id"])
    status, listed = await portal(app_client, token, "GET", "/events")
    assert status == 200 and [e["subAccountId"] for e in listed["data"]] == [sub["id"]]
    status, got = await portal(app_client, token, "GET", f"/events/{ev['id']}")
    assert status == 200 and got["subAccountId"] == sub["id"]
    status, doc, _ = await app_client.call("GET", "/openapi.json")
    assert status == 200
    for name in ("Event", "EventSummary", "EventCreated"):
        schema = doc["components"]["schemas"][name]
        assert "subAccountId" in schema["required"], name
        assert schema["properties"]["subAccountId"]["nullable"] is True, name


async def test_a_deactivation_committing_during_an_ingest_refuses_it(app_client: Caller, pool: Any) -> None:
    """The race the request-time check leaves: the ingest has seen the sub-account active, then the
    DELETE commits before the ingest's insert does. A second connection holds the deactivation
    uncommitted (its row lock), so the request gets past the check; the insert must wait for that
    row and, once the deactivation commits, refuse the event: nothing is stored, single or batch."""
    sub = await make_sub(app_client, "racing")
    sub_id, client_id = uuid.UUID(sub["id"]), uuid.UUID(app_client.client_id)
    scoped = {"X-Sub-Account-ID": sub["id"]}
    requests = (
        ("/api/v1/events", {"destination": "https://x.example.com/d", "payload": {}},
         {**scoped, "X-Idempotency-Key": "race-single"}),
        ("/api/v1/events/batch",
         {"events": [{"idempotencyKey": "race-batch", "destination": "https://x.example.com/d", "payload": {}}]},
         scoped),
    )
    for path, body, headers in requests:
        await pool.execute("UPDATE sub_accounts SET deactivated_at = NULL WHERE id = $1", sub_id)
        async with pool.acquire() as holder:
            deactivation = holder.transaction()
            await deactivation.start()
            await holder.fetchrow(q("deactivate_sub_account"), sub_id, client_id)   # the DELETE, not committed
            sending = asyncio.create_task(app_client.call("POST", path, body, headers))
            while not sending.done() and not await waiting_on_a_lock(pool, holder):
                await asyncio.sleep(0.005)
            await deactivation.commit()
        status, out, _ = await sending
        assert status == 409 and out["code"] == "SUB_ACCOUNT_INACTIVE", (path, status, out)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE sub_account_id = $1", sub_id) == 0


async def waiting_on_a_lock(pool: Any, holder: Any) -> bool:
    """Whether some backend of this database waits for a lock `holder`'s backend holds."""
    pid = holder.get_server_pid()
    return bool(await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
        " AND $1 = ANY(pg_blocking_pids(pid)))", pid))
