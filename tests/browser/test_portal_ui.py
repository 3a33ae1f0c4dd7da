"""The embedded portal in headless Chromium: a page on another origin frames a portal session; the
customer adds an endpoint (pointing at a real sink), edits, pauses and resumes it, sends a test
event and watches it delivered with its attempt, retries a dead event, sees nothing of another
sub-account, and lands on the expired screen once the workspace revokes the session. Framing from an
origin the session does not allow is refused by the header and by Chromium itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, FrameLocator, expect

from tests.browser.conftest import OtherOrigin
from tests.support.server import Api
from tests.support.sink import Sink

SERVER_SHARDS = 1


async def sub_account(api: Api, sub_id: str) -> str:
    status, sub = await api.call("POST", "/api/v1/sub-accounts", {"name": f"Customer {sub_id}", "subID": sub_id})
    assert status == 201, sub
    return str(sub["id"])


async def mint(api: Api, sub: str, return_url: str) -> dict[str, Any]:
    """POST .../sessions: {"url": ".../s/exchange?token=...", "session": {...}}."""
    status, minted = await api.call("POST", f"/api/v1/sub-accounts/{sub}/sessions",
                                    {"returnURL": return_url, "ttlSeconds": 600})
    assert status == 201, minted
    return dict(minted)


def host_page(portal_url: str) -> str:
    return ("<!doctype html><title>Acme app</title><h1>Acme integrations</h1>"
            f'<iframe src="{portal_url}" title="Webhooks" width="1000" height="900"></iframe>')


async def send(api: Api, sub: str, body: dict[str, Any]) -> str:
    status, ev = await api.call("POST", "/api/v1/events", body,
                                {"X-Idempotency-Key": str(uuid.uuid4()), "X-Sub-Account-ID": sub})
    assert status == 201, ev
    return str(ev["id"])


async def test_a_framed_portal_manages_its_endpoints_and_sees_only_its_deliveries(
        api: Api, sink: Sink, other_origin: OtherOrigin, context: BrowserContext) -> None:
    # Another customer with an endpoint and a delivered event: none of it may show in a's portal.
    b = await sub_account(api, "cust_b")
    status, ep_b = await api.call("POST", "/api/v1/endpoints", {"url": sink.url + "/b", "eventTypes": ["b.*"]},
                                  {"X-Sub-Account-ID": b})
    assert status == 201, ep_b
    await send(api, b, {"eventType": "b.secret", "payload": {"n": 1}})
    a = await sub_account(api, "cust_a")
    portal_url = (await mint(api, a, other_origin.url + "/integrations"))["url"]
    page = await context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(urlsplit(r.url).path) if r.url.startswith(api.base) else None)
    await page.goto(other_origin.put("/integrations", host_page(portal_url + "&accent=%23aa3300")))
    portal: FrameLocator = page.frame_locator("iframe")

    await expect(portal.get_by_role("heading", name="Endpoints")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    # what a load costs: the page, its stylesheet and module, the exchange, the list (docs/portal.md)
    assert sorted(asked) == sorted(["/s/exchange", "/s/assets/portal.css", "/s/assets/portal.js",
                                    "/sub-account-api/auth/exchange", "/sub-account-api/endpoints"]), asked
    await expect(portal.get_by_text("Customer cust_a")).to_be_visible()
    await expect(portal.get_by_text("No endpoints yet")).to_be_visible()
    frame = page.frames[1]
    assert urlsplit(frame.url).path.startswith("/s/") and "token" not in frame.url   # replaced after the exchange
    assert await frame.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--mittr-accent')") \
        == "#aa3300"
    await expect(portal.get_by_role("link", name="Back to 127.0.0.1")).to_have_attribute(
        "href", other_origin.url + "/integrations")

    # create: the secret is shown once
    await portal.get_by_role("link", name="Add endpoint").click()
    await portal.get_by_label("URL").fill(sink.url + "/a")
    await portal.get_by_label("Event types").fill("order.*")
    await portal.get_by_label("Description").fill("orders")
    await portal.get_by_role("button", name="Create endpoint").click()
    await expect(portal.get_by_role("heading", name="Endpoint created")).to_be_visible()
    secret = await portal.locator("#secret").inner_text()
    assert len(secret) >= 16
    await portal.get_by_role("link", name="Done").click()
    row = portal.get_by_role("row").filter(has_text=sink.url + "/a")
    await expect(row).to_contain_text("active")
    assert secret not in await frame.content()
    # a reload inside the frame goes on with the session kept in this tab's sessionStorage
    async with page.expect_event("framenavigated", lambda f: f.parent_frame is not None):
        await frame.evaluate("location.reload()")
    await expect(row).to_contain_text("active")
    frame = page.frames[1]
    assert "token" not in frame.url and secret not in await frame.content()

    # edit, pause, resume (by keyboard: focus and Enter)
    await row.get_by_role("link", name="Edit").click()
    await expect(portal.get_by_label("Description")).to_have_value("orders")
    await portal.get_by_label("Description").fill("orders and refunds")
    await portal.get_by_role("button", name="Save").click()
    await expect(row).to_contain_text("orders and refunds")
    await row.get_by_role("button", name="Pause").focus()
    await page.keyboard.press("Enter")
    await expect(row).to_contain_text("paused")
    await expect(portal.get_by_role("status")).to_contain_text("Paused")
    await row.get_by_role("button", name="Resume").click()
    await expect(row).to_contain_text("active")

    # a test event, delivered to the sink, signed with the secret shown once; its attempt is listed
    await row.get_by_role("button", name="Send test event").click()
    await expect(portal.locator("#event-status")).to_have_text("delivered", timeout=15_000)
    await expect(portal.locator("#attempts")).to_contain_text("HTTP 200")
    [got] = sink.at("/a")
    assert json.loads(got.body)["type"] == "mittr.test"
    assert got.headers["X-Mittr-Signature"] == "v1=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()

    # a dead event of a's, retried from the portal, is delivered on its second attempt
    sink.script("/a", lambda n: 500 if n == 2 else 200)
    dead = await send(api, a, {"eventType": "order.paid", "payload": {"n": 2}, "maxAttempts": 1})
    await api.wait_event(dead, {"dead"})
    await portal.get_by_role("link", name="Events", exact=True).click()
    await expect(portal.get_by_role("heading", name="Events")).to_be_visible()
    await expect(portal.get_by_role("row")).to_have_count(3)   # header, the test event, the dead one
    assert "b.secret" not in await frame.content()
    await portal.get_by_label("Status").select_option("dead")
    await portal.get_by_role("link", name="order.paid").click()
    await portal.get_by_role("button", name="Retry").click()
    await expect(portal.locator("#event-status")).to_have_text("delivered", timeout=15_000)
    await expect(portal.locator("#attempts tbody tr")).to_have_count(2)
    await expect(portal.locator("#attempts")).to_contain_text("HTTP 500")

    # b's ids answer nothing here
    await page.frames[1].evaluate("id => { location.hash = '#endpoints/' + id + '/edit' }", ep_b["id"])
    await expect(portal.get_by_role("status")).to_contain_text("not found")

    # revoked by the workspace: the next request shows the expired screen, linking back
    status, _ = await api.call("DELETE", f"/api/v1/sub-accounts/{a}/sessions")
    assert status == 200
    await portal.get_by_role("link", name="Endpoints", exact=True).click()
    await expect(portal.get_by_role("heading", name="Session expired")).to_be_visible()
    await expect(portal.get_by_role("link", name="Return to 127.0.0.1")).to_have_attribute(
        "href", other_origin.url + "/integrations")
    await page.close()


async def test_an_origin_the_session_does_not_allow_cannot_frame_it(
        api: Api, http: Any, browser: Browser, other_origin: OtherOrigin) -> None:
    sub = await sub_account(api, "cust_frame")
    allowed = await mint(api, sub, other_origin.url + "/back")
    async with http.get(allowed["url"]) as resp:   # the header names Mittr and the returnURL's origin, nothing else
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        assert f"frame-ancestors 'self' {other_origin.url}" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
    elsewhere = await OtherOrigin().start()
    try:
        minted = await mint(api, sub, other_origin.url + "/back")
        portal_url = minted["url"]
        async with http.get(portal_url) as resp:
            assert elsewhere.url not in resp.headers["Content-Security-Policy"]
        ctx = await browser.new_context()
        try:
            page = await ctx.new_page()
            await page.goto(elsewhere.put("/evil", host_page(portal_url)))
            await page.wait_for_load_state("networkidle")
            frame = page.frames[1]
            assert not frame.url.startswith(api.base), frame.url          # Chromium blocked the load
            status, sessions = await api.call("GET", f"/api/v1/sub-accounts/{sub}/sessions")
            assert status == 200
            [refused] = [s for s in sessions["data"] if s["id"] == minted["session"]["id"]]
            assert refused["status"] == "pending"   # the portal's script never ran: its token is unexchanged
        finally:
            await ctx.close()
    finally:
        await elsewhere.stop()
