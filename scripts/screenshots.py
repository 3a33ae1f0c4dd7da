"""Refresh docs/screenshots/*.png: a throwaway Mittr (embedded Postgres, or a new database on the
server DATABASE_URL names), a real sink, some data, and headless Chromium taking each page in SHOTS.

    .venv/bin/python scripts/screenshots.py             # every page
    .venv/bin/python scripts/screenshots.py portal-     # the pages whose name starts with "portal-"
    .venv/bin/python scripts/screenshots.py --cost      # also measure what a portal page load costs

To add a page, append a Shot to SHOTS: a name (the PNG's), an async `url(scene)` that makes whatever
data the page needs and returns the address to open, an optional async `act(scene, page)` run after
the page loaded (click, fill, wait), and `signed_in=True` when it needs the dashboard's cookie
(`scene.page` is then a page of a signed-up user's context).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, PASSWORD, OtherOrigin  # noqa: E402
from tests.support.server import Api, MittrServer, free_port  # noqa: E402
from tests.support.sink import Sink  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1100, "height": 720}


@dataclass
class Scene:
    """The running stack a Shot builds its page on; state it makes is kept for later shots."""
    server: MittrServer
    api: Api
    sink: Sink
    host: OtherOrigin                     # another origin, for pages that frame the portal
    browser: Any
    page: Any = None                      # the page a Shot is taken of
    memo: dict[str, Any] = field(default_factory=dict)

    async def once(self, name: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """Make some data the first time a Shot asks for it (shots share it)."""
        if name not in self.memo:
            self.memo[name] = await make()
        return self.memo[name]

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        status, out = await self.api.call(method, path, body, headers)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {out}")
        return out

    async def event(self, sub: str, event_type: str, payload: dict[str, Any], **extra: Any) -> str:
        out = await self.call("POST", "/api/v1/events", {"eventType": event_type, "payload": payload, **extra},
                              **{"X-Idempotency-Key": str(uuid.uuid4()), "X-Sub-Account-ID": sub})
        return str(out["id"])

    async def customer(self) -> str:
        """A sub-account with two endpoints on the sink, a delivered event, a retried one and a dead one."""
        async def make() -> str:
            sub = (await self.call("POST", "/api/v1/sub-accounts", {"name": "Globex Corporation",
                                                                    "subID": "cust_globex"}))["id"]
            for path, types, description in (("/orders", ["order.*"], "Order updates for the ERP"),
                                              ("/billing", ["invoice.*", "payment.*"], "Billing system")):
                await self.call("POST", "/api/v1/endpoints", {"url": self.sink.url + path, "eventTypes": types,
                                                              "description": description},
                                **{"X-Sub-Account-ID": sub})
            self.sink.script("/billing", lambda n: 503 if n == 1 else 200)
            ids = [await self.event(sub, "order.created", {"orderId": "ord_1042", "amount": 4200}),
                   await self.event(sub, "payment.succeeded", {"paymentId": "pay_77", "amount": 4200}),
                   await self.event(sub, "order.shipped", {"orderId": "ord_1042", "carrier": "DHL"})]
            self.sink.script("/orders", lambda n: 500 if n >= 3 else 200)
            ids.append(await self.event(sub, "order.cancelled", {"orderId": "ord_1043"}, maxAttempts=2))
            for event_id in ids:
                await self.api.wait_event(event_id, {"delivered", "dead"}, timeout=30)
            self.memo["retried"], self.memo["dead"] = ids[1], ids[3]
            return str(sub)
        return str(await self.once("customer", make))

    async def portal(self, view: str = "", theme: str = "") -> str:
        """A fresh portal URL (its token works once) for the customer, returning to the host page."""
        sub = await self.customer()
        minted = await self.call("POST", f"/api/v1/sub-accounts/{sub}/sessions",
                                 {"returnURL": self.host.url + "/integrations", "ttlSeconds": 900})
        return str(minted["url"]) + theme + view


@dataclass
class Shot:
    name: str
    url: Callable[[Scene], Awaitable[str]]
    act: Callable[[Scene, Any], Awaitable[None]] | None = None
    signed_in: bool = False
    full_page: bool = False


async def settle(page: Any, heading: str, exact: bool = False) -> None:
    """The heading drawn and the network quiet (a page; a FrameLocator has no load state)."""
    await page.get_by_role("heading", name=heading, exact=exact).wait_for()
    if hasattr(page, "wait_for_load_state"):
        await page.wait_for_load_state("networkidle")


async def portal_frame(scene: Scene) -> Any:
    """The portal inside the host page's iframe."""
    return scene.page.frame_locator("iframe")


async def embedded_url(scene: Scene) -> str:
    portal = await scene.portal()
    return scene.host.put("/integrations", (
        '<!doctype html><title>Acme: integrations</title><style>body{font:15px system-ui;margin:0;background:#f4f1ec}'
        "header{background:#23395d;color:#fff;padding:14px 24px;font-weight:600}main{padding:16px 24px}"
        "iframe{border:1px solid #d8d2c8;border-radius:8px;background:#fff;width:100%;height:560px}</style>"
        "<header>Acme · Settings</header><main><h2>Webhooks</h2>"
        f'<iframe src="{portal}&accent=%2323395d&radius=10px" title="Webhooks"></iframe></main>'))


async def endpoint_created(scene: Scene, page: Any) -> None:
    await settle(page, "Endpoints")
    await page.get_by_role("link", name="Add endpoint").click()
    await page.get_by_label("URL").fill(scene.sink.url + "/crm")
    await page.get_by_label("Event types").fill("customer.*")
    await page.get_by_label("Description").fill("CRM sync")
    await page.get_by_role("button", name="Create endpoint").click()
    await settle(page, "Endpoint created")


async def event_url(scene: Scene) -> str:
    await scene.customer()
    return await scene.portal(f"#events/{scene.memo['retried']}")


async def expired(scene: Scene, page: Any) -> None:
    await settle(page, "Endpoints")
    sub = await scene.customer()
    await scene.call("DELETE", f"/api/v1/sub-accounts/{sub}/sessions")
    await page.get_by_role("link", name="Events", exact=True).click()
    await settle(page, "Session expired")


async def embedded(scene: Scene, page: Any) -> None:
    await settle(await portal_frame(scene), "Endpoints")
    await page.wait_for_load_state("networkidle")


async def endpoints_view(scene: Scene, page: Any) -> None:
    await settle(page, "Endpoints")


async def events_view(scene: Scene, page: Any) -> None:
    await settle(page, "Events")


async def event_view(scene: Scene, page: Any) -> None:
    await settle(page, "Event payment.succeeded")


async def dash_call(scene: Scene, page: Any, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """The dashboard user's own API call (the page's cookie, our Origin), as the pages make them."""
    resp = await page.request.fetch(scene.server.url + path, method=method, data=body,
                                    headers={"Origin": scene.server.url, **headers})
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {await resp.text()}")
    return await resp.json() if resp.status != 204 else None


def settled(event: dict[str, Any]) -> bool:
    """Delivered, dead, or held by an open circuit breaker (which stays open for the pictures)."""
    pending = event.get("pending") or []
    return event["status"] in ("delivered", "dead") or (bool(pending) and all(
        p["waitingReason"] == "circuit_open" for p in pending))


async def dashboard_data(scene: Scene) -> dict[str, Any]:
    """The signed-in user's workspace with something to show: three endpoints on the sink (one edited,
    so it has versions; two failing now and then), event types with a schema, a project, a key, an
    alert rule, an invitation, and events delivered, retried and dead."""
    async def make() -> dict[str, Any]:
        ctx = await signed_in_context(scene)
        page = ctx.pages[0]

        async def call(method: str, path: str, body: Any = None, **headers: str) -> Any:
            return await dash_call(scene, page, method, path, body, **headers)
        try:
            eps = [await call("POST", "/api/v1/endpoints", {
                "url": scene.sink.url + path, "eventTypes": types, "description": description, "maxRetries": 3,
                "retryBackoffMs": 200}) for path, types, description in (
                    ("/shop", ["order.*"], "Order updates for the ERP"),
                    ("/ledger", ["payment.*", "invoice.*"], "Billing ledger"),
                    ("/crm", ["customer.*"], "CRM sync"))]
            # The CRM starts failing: its breaker opens (and stays open for the pictures).
            await call("PATCH", f"/api/v1/endpoints/{eps[2]['id']}", {"circuitThreshold": 3, "circuitResetMs": 3600000})
            await call("PATCH", f"/api/v1/endpoints/{eps[0]['id']}",
                       {"timeoutMs": 10000, "rateLimitPerSec": 50, "description": "Order updates (ERP, v2)"})
            await call("POST", "/api/v1/event-types", {
                "name": "order.created", "description": "A customer placed an order", "schemaVersion": "1.2",
                "schema": {"type": "object", "required": ["id", "amount"], "properties": {
                    "id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}}}})
            await call("POST", "/api/v1/event-types", {"name": "payment.succeeded", "description": "A payment cleared"})
            await call("POST", "/api/v1/projects", {"name": "Staging", "environment": "staging"})
            await call("POST", "/api/v1/api-keys", {"name": "Checkout service",
                                                    "scopes": ["events:write", "events:read"]})
            await call("POST", "/api/v1/alerting/rules", {
                "name": "Failure rate over 10%", "condition": {"metric": "failure_rate", "operator": "gt", "value": 0.1,
                                                               "window": "15m"},
                "action": {"type": "email", "to": ["oncall@example.com"]}, "cooldown": "30m"})
            await call("POST", "/api/v1/team/invite", {"email": "grace@example.com", "role": "editor"})
            scene.sink.script("/ledger", lambda n: 503 if n % 4 == 1 else 200)
            scene.sink.script("/crm", lambda n: 500 if n >= 4 else 200)
            ids = []
            for i in range(18):
                kind = ("order.created", "payment.succeeded", "customer.updated")[i % 3]
                made = await call("POST", "/api/v1/events", {
                    "eventType": kind, "payload": {"id": f"{kind[:3]}_{1040 + i}", "amount": 1200 + 75 * i},
                    "maxAttempts": 2}, **{"X-Idempotency-Key": str(uuid.uuid4())})
                ids.append(made["id"])
            deadline = asyncio.get_running_loop().time() + 30
            for event_id in ids:
                while not settled(await call("GET", f"/api/v1/events/{event_id}")):
                    if asyncio.get_running_loop().time() > deadline:
                        raise RuntimeError(f"event {event_id} did not finish")
                    await asyncio.sleep(0.2)
            return {"endpoint": eps[0]["id"], "retried": ids[1]}
        finally:
            await ctx.close()
    return dict(await scene.once("dashboard", make))


def dashboard_shot(name: str, path: str | Callable[[dict[str, Any]], str], heading: str, *,
                   full_page: bool = False, after: Callable[[Any], Awaitable[None]] | None = None) -> Shot:
    """A dashboard page, signed in, taken once `heading` is drawn and the network is quiet."""
    async def url(scene: Scene) -> str:
        data = await dashboard_data(scene)
        return f"{scene.server.url}/dashboard{path(data) if callable(path) else path}"

    async def act(scene: Scene, page: Any) -> None:
        await settle(page, heading, exact=True)
        if after is not None:
            await after(page)
    return Shot(name, url, act, signed_in=True, full_page=full_page)


async def live_and_charts(page: Any) -> None:
    await page.locator(".live-status.on").wait_for()
    await page.get_by_role("heading", name="Endpoint health").wait_for()
    await page.wait_for_timeout(2500)   # a few live samples for the sparkline


async def diffed(page: Any) -> None:
    await page.get_by_role("button", name="Diff").click()
    await page.get_by_text("Changes from v1 to v2").wait_for()


async def admin_data(scene: Scene) -> dict[str, Any]:
    """For the admin pages, in the dashboard user's workspace: a SAML connection (the metadata of a
    test IdP), a SCIM token, two sub-accounts, one with portal sessions (one revoked)."""
    from tests.support.saml_idp import SamlIdp

    async def make() -> dict[str, Any]:
        await dashboard_data(scene)
        ctx = await signed_in_context(scene)
        page = ctx.pages[0]

        async def call(method: str, path: str, body: Any = None) -> Any:
            return await dash_call(scene, page, method, path, body)
        try:
            idp = SamlIdp.make(Path(tempfile.mkdtemp(prefix="mittr-shots-idp-")))
            await call("POST", "/api/v1/sso/saml", {
                "slug": "okta", "name": "Okta", "metadataXml": idp.metadata(), "emailDomains": ["acme.com"],
                "requireSso": False, "defaultRole": "editor"})
            await call("POST", "/api/v1/scim/tokens", {"name": "Okta provisioning"})
            subs = [await call("POST", "/api/v1/sub-accounts", {"name": name, "subID": sub_id, "metadata": meta})
                    for name, sub_id, meta in (("Globex Corporation", "cust_globex", {"tier": "enterprise"}),
                                               ("Initech", "cust_initech", {}))]
            for n in range(3):
                minted = await call("POST", f"/api/v1/sub-accounts/{subs[0]['id']}/sessions",
                                    {"returnURL": "https://app.acme.com/integrations", "ttlSeconds": 3600})
                if n == 0:
                    await call("DELETE", f"/api/v1/sub-accounts/{subs[0]['id']}/sessions/{minted['session']['id']}")
                elif n == 1:      # opened by the customer: active
                    await page.goto(minted["url"])
                    await settle(page, "Endpoints")
            return {"sub": subs[0]["id"]}
        finally:
            await ctx.close()
    return dict(await scene.once("admin", make))


def admin_shot(name: str, path: str | Callable[[dict[str, Any]], str], heading: str, *,
               full_page: bool = False) -> Shot:
    """An admin page of the dashboard (admin_data made first)."""
    async def url(scene: Scene) -> str:
        data = await admin_data(scene)
        return f"{scene.server.url}/dashboard{path(data) if callable(path) else path}"

    async def act(scene: Scene, page: Any) -> None:
        await settle(page, heading, exact=True)
    return Shot(name, url, act, signed_in=True, full_page=full_page)


async def login_drawn(scene: Scene, page: Any) -> None:
    await settle(page, "Sign in to Mittr")
    await page.get_by_role("link", name="Sign in with GitHub").wait_for()


async def login_page(scene: Scene) -> str:
    return f"{scene.server.url}/dashboard/events"   # not signed in: the login page, then back here


SHOTS: list[Shot] = [
    Shot("portal-embedded", embedded_url, embedded),
    Shot("portal-endpoints", lambda s: s.portal(), endpoints_view),
    Shot("portal-endpoint-created", lambda s: s.portal(), endpoint_created),
    Shot("portal-events", lambda s: s.portal("#events"), events_view),
    Shot("portal-event", event_url, event_view),
    Shot("portal-expired", lambda s: s.portal(), expired),
    Shot("dashboard-login", login_page, login_drawn),
    dashboard_shot("dashboard-overview", "/", "Overview", full_page=True, after=live_and_charts),
    dashboard_shot("dashboard-events", "/events", "Delivery attempts"),
    dashboard_shot("dashboard-event", lambda d: f"/events/{d['retried']}", "Payload"),
    dashboard_shot("dashboard-endpoints", "/endpoints", "Endpoints"),
    dashboard_shot("dashboard-endpoint", lambda d: f"/endpoints/{d['endpoint']}", "Versions", full_page=True,
                   after=diffed),
    dashboard_shot("dashboard-event-types", "/event-types", "Event types"),
    dashboard_shot("dashboard-alerts", "/alerts", "Alerting"),
    dashboard_shot("dashboard-team", "/team", "Team"),
    admin_shot("dashboard-sso", "/sso", "SCIM provisioning", full_page=True),
    admin_shot("dashboard-audit-log", "/audit-log", "Audit log"),
    admin_shot("dashboard-sub-accounts", "/sub-accounts", "Sub-accounts"),
    admin_shot("dashboard-sub-account", lambda d: f"/sub-accounts/{d['sub']}", "Portal sessions"),
]


async def signed_in_context(scene: Scene) -> Any:
    ctx = await scene.browser.new_context(viewport=VIEWPORT)
    page = await ctx.new_page()
    who = {"email": "ada@example.com", "password": PASSWORD}
    resp = await page.request.post(f"{scene.server.url}/auth/signup", headers={"Origin": scene.server.url},
                                   data={**who, "companyName": "Acme"})
    if resp.status == 409:   # signed up by an earlier shot: log in
        resp = await page.request.post(f"{scene.server.url}/auth/login", headers={"Origin": scene.server.url},
                                       data=who)
    if resp.status not in (200, 201):
        raise RuntimeError(f"signup: {resp.status} {await resp.text()}")
    return ctx


async def take(scene: Scene, shot: Shot) -> Path:
    ctx = await (signed_in_context(scene) if shot.signed_in else scene.browser.new_context(viewport=VIEWPORT))
    try:
        scene.page = ctx.pages[0] if ctx.pages else await ctx.new_page()
        await scene.page.goto(await shot.url(scene))
        if shot.act is not None:
            await shot.act(scene, scene.page)
        path = OUT / f"{shot.name}.png"
        await scene.page.screenshot(path=str(path), full_page=shot.full_page)
        return path
    finally:
        await ctx.close()


async def page_cost(scene: Scene, url: str | None = None, heading: str = "Endpoints",
                    signed_in: bool = False) -> dict[str, int]:
    """Requests and bytes (as transferred: headers and encoded bodies) of one page load, from
    opening `url` (default: a portal session URL) to `heading` drawn and the network quiet, in a
    fresh context (nothing cached; `signed_in`: with the dashboard's cookie)."""
    ctx = await (signed_in_context(scene) if signed_in else scene.browser.new_context(viewport=VIEWPORT))
    sizes: list[dict[str, int]] = []
    done: list[Any] = []

    async def finished(request: Any) -> None:
        sizes.append(await request.sizes())
    try:
        page = ctx.pages[0] if ctx.pages else await ctx.new_page()
        page.on("requestfinished", lambda r: done.append(asyncio.ensure_future(finished(r))))
        await page.goto(url or await scene.portal())
        await settle(page, heading)
        await asyncio.gather(*done)
    finally:
        await ctx.close()
    return {"requests": len(sizes),
            "bytes": sum(s["responseBodySize"] + s["responseHeadersSize"] + s["requestHeadersSize"]
                         + s["requestBodySize"] for s in sizes),
            "responseBodyBytes": sum(s["responseBodySize"] for s in sizes)}


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def run(names: list[str], cost: bool) -> int:
    from playwright.async_api import async_playwright

    from control.store.pgserver import EmbeddedPostgres

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MITTR_SECURITY__ENCRYPTION_KEY", "bWl0dHItc2NyZWVuc2hvdHMta2V5LTAxMjM0NTY3ODk=")
    work = Path(tempfile.mkdtemp(prefix="mittr-shots-"))
    os.chmod(work, 0o755)   # noqa: S103 - as root, Postgres runs as another user and must reach its data
    pg = None
    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url:
        pg = EmbeddedPostgres(work / "pgdata")
        pg.start()
        admin_url = str(pg.url)
    db = f"mittr_shots_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    # Two providers for the login page's buttons (never contacted: no one signs in with them here).
    sso = {f"MITTR_SSO__{p}__{k}": v for p in ("GOOGLE", "GITHUB")
           for k, v in (("ENABLED", "true"), ("CLIENT_ID", "shots"), ("CLIENT_SECRET", "shots"))}
    # The address people use, so that the URLs shown (SAML's SP URLs) are the ones a browser reaches.
    port = free_port()
    server = MittrServer(database_url(admin_url, db), shards=1, port=port,
                         env_overrides={**sso, "MITTR_AUTH__PUBLIC_URL": f"http://127.0.0.1:{port}"})
    sink, host = Sink(), OtherOrigin()
    try:
        await server.start()
        await sink.start()
        await host.start()
        async with aiohttp.ClientSession() as http, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
            scene = Scene(server, Api(server.url, server.admin_key, http), sink, host, browser)
            for shot in SHOTS:
                if names and not any(shot.name.startswith(n) for n in names):
                    continue
                print("wrote", (await take(scene, shot)).relative_to(ROOT))
            if cost:
                print("portal page load:", await page_cost(scene))
                await dashboard_data(scene)
                print("dashboard overview load:", await page_cost(scene, scene.server.url + "/dashboard/",
                                                                  "Endpoint health", signed_in=True))
                print("dashboard events load:", await page_cost(scene, scene.server.url + "/dashboard/events",
                                                                "Delivery attempts", signed_in=True))
            await browser.close()
    finally:
        await host.stop()
        await sink.stop()
        await server.stop()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()
        if pg is not None:
            pg.stop(mode="immediate")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="only the shots whose name starts with one of these")
    parser.add_argument("--cost", action="store_true", help="measure a portal page load (requests, bytes)")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.names, args.cost))


if __name__ == "__main__":
    raise SystemExit(main())
