"""The workspace dashboard in headless Chromium against a real `mittr serve` and a real sink: a
logged-out visit lands on the login page and signing in returns to the page asked for, with live
stats over the cookie-authenticated WebSocket; an endpoint made in the UI receives a test event that
the UI shows delivered with its attempt; a dead event is replayed, another edited and replayed; an
endpoint paused holds its event until resumed; the project switcher scopes what the pages list.
Also what a cold page load costs (requests and bytes), reported and held under a budget.

Single sign-on and the admin pages, on the same server (configured with an OIDC provider: the test
provider of tests/support/oidc_provider.py, a real server on 127.0.0.1; and a SAML IdP,
tests/support/saml_idp.py, whose sign-on page the browser reaches through a route: its host does
not exist):
- login: a button per configured provider, linking to its loginUrl with next=; a full sign-in
  through the OIDC provider lands on the page asked for. "Continue with SSO" discovers the SAML IdP
  of the address's domain, and a full SAML sign-in (the IdP's form posted to the ACS) lands there too;
- SSO & provisioning: a SAML connection made from metadata XML, its SP URLs shown (and copied),
  edited, deleted; a SCIM token shown once with the base URL, working, then revoked;
- the audit log filtered and paged; sub-accounts created, edited, a portal session minted (its URL
  copied and opened), listed, revoked, the sub-account deactivated; admin pages hidden from editors.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.browser.conftest import PASSWORD, SignedIn
from tests.conftest import _create_db, _drop_db
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, Person
from tests.support.pg import with_database
from tests.support.saml_idp import SSO_URL, SamlIdp, request_id
from tests.support.server import Api, MittrServer, free_port
from tests.support.sink import Sink

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Locator, Page, Route

SignUp = Callable[..., Awaitable[SignedIn]]
# A cold load of the overview (HTML, CSS, modules, the API calls it makes) stays within this.
BUDGET_REQUESTS = 20
BUDGET_BYTES = 80_000


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[OidcProvider]:
    provider = await OidcProvider().start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture(scope="module")
def saml_idp(tmp_path_factory: pytest.TempPathFactory) -> SamlIdp:
    return SamlIdp.make(tmp_path_factory.mktemp("saml-idp"))


@pytest.fixture(scope="module")
async def server(pg_admin_url: str, template_db: str, idp: OidcProvider,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MittrServer]:
    """This module's `mittr serve` (one shard): the e2e fixture's, plus a config naming the OIDC
    provider (whose address is known only once it runs) and the server's public URL."""
    port = free_port()      # known before the start: the redirect URIs are built from public_url
    config = tmp_path_factory.mktemp("sso") / "mittr.toml"
    config.write_text(f"""
[auth]
public_url = "http://127.0.0.1:{port}"

[sso.oidc.acme]
enabled = true
display_name = "Acme SSO"
issuer = "{idp.url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
""")
    name = await _create_db(pg_admin_url, template_db)
    srv = MittrServer(with_database(pg_admin_url, name), shards=1, port=port,
                      env_overrides={"MITTR_CONFIG": str(config)})
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
        await _drop_db(pg_admin_url, name)


async def _expect_text(within: Any, selector: str | None, pattern: str, timeout: float = 15_000) -> None:
    """`selector` under `within` (a page or a locator; None: `within` itself) comes to contain `pattern`."""
    from playwright.async_api import expect

    where = within if selector is None else within.locator(selector)
    await expect(where).to_contain_text(re.compile(pattern), timeout=timeout)


async def _new_endpoint(page: Page, server: MittrServer, url: str, event_type: str, max_attempts: int = 5) -> str:
    """Creates an endpoint through the New endpoint dialog; returns its id (from the page it opens)."""
    await page.goto(f"{server.url}/dashboard/endpoints")
    await page.get_by_role("button", name="New endpoint").click()
    dialog = page.get_by_role("dialog", name="New endpoint")
    await dialog.get_by_label("URL").fill(url)
    await dialog.get_by_label("Event types").fill(event_type)
    await dialog.get_by_label("Max attempts").fill(str(max_attempts))
    await dialog.get_by_role("button", name="Create").click()
    secret = page.get_by_role("dialog", name="Endpoint created")
    assert len(await secret.get_by_label("Signing secret").input_value()) >= 16
    await secret.get_by_role("button", name="Done").click()
    await page.wait_for_url(re.compile(r"/dashboard/endpoints/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


async def _send_test_event(page: Page, payload: dict[str, object] | None = None) -> str:
    """From an endpoint's page: Send test event; returns the event id (the page opens it)."""
    await page.get_by_role("button", name="Send test event").click()
    dialog = page.get_by_role("dialog", name="Send a test event")
    if payload is not None:
        await dialog.get_by_label("Payload (JSON object)").fill(json.dumps(payload))
    await dialog.get_by_role("button", name="Send").click()
    await page.wait_for_url(re.compile(r"/dashboard/events/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


async def test_logged_out_visit_goes_to_login_and_signing_in_returns_with_live_stats(
        signed_in: SignUp, server: MittrServer, api: Api, context: BrowserContext) -> None:
    user = await signed_in()
    page = await context.new_page()
    await page.goto(f"{server.url}/dashboard/events")
    await page.wait_for_url(re.compile(r"/dashboard/login\?next=%2Fdashboard%2Fevents$"))
    await page.get_by_label("E-mail", exact=True).fill(user.email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await _expect_text(page, "#login-error", "Wrong e-mail address or password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{server.url}/dashboard/events")
    await _expect_text(page, "header", user.email)
    await page.get_by_role("link", name="Overview").click()
    await page.wait_for_url(f"{server.url}/dashboard/")
    await _expect_text(page, "h2#live-h", "live")        # the stats WebSocket, on the session cookie
    await _expect_text(page, "#live-figures", "Queue depth")
    for title in ("Outcomes per", "Throughput per", "Latency", "Failures by category", "Endpoint health"):
        await _expect_text(page, "main", title)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/dashboard/login"))
    assert not [c for c in await context.cookies(server.url) if c["name"] == "mittr_session" and c["value"]]
    # The first-start admin key signs in too (a session acting with the key's scopes).
    await page.get_by_text("Sign in with an API key instead").click()
    await page.get_by_label("API key").fill(api.key)
    await page.get_by_role("button", name="Sign in with key").click()
    await page.wait_for_url(f"{server.url}/dashboard/")
    await _expect_text(page, "header", f"key {api.key[:8]}")


async def test_cold_page_load_cost(signed_in: SignUp, server: MittrServer) -> None:
    user = await signed_in()
    page = user.page
    sizes: list[tuple[str, int]] = []

    async def finished(request: object) -> None:
        s = await request.sizes()  # type: ignore[attr-defined]
        sizes.append((request.url, s["responseBodySize"] + s["responseHeadersSize"]))  # type: ignore[attr-defined]

    page.on("requestfinished", finished)
    await page.goto(f"{server.url}/dashboard/", wait_until="networkidle")
    await _expect_text(page, "main", "Endpoint health")
    await page.wait_for_timeout(300)
    page.remove_listener("requestfinished", finished)
    total = sum(n for _, n in sizes)
    print(f"\ncold load of /dashboard/: {len(sizes)} requests, {total} bytes on the wire")
    for url, n in sizes:
        print(f"  {n:>7}  {url.removeprefix(server.url)}")
    assert len(sizes) <= BUDGET_REQUESTS and total <= BUDGET_BYTES, sizes


async def test_endpoint_receives_a_test_event_shown_delivered_with_its_attempt(
        signed_in: SignUp, server: MittrServer, sink: Sink) -> None:
    page = (await signed_in()).page
    await _new_endpoint(page, server, f"{sink.url}/dash-ok", "dash.ping")
    await _expect_text(page, "#ep-circuit", "closed")
    event_id = await _send_test_event(page, {"hello": "sink"})
    await _expect_text(page, "main .row", "delivered")
    await _expect_text(page, "main table", r"success[\s\S]*200")
    [got] = sink.at("/dash-ok")
    assert got.headers["X-Mittr-Event-ID"] == event_id and json.loads(got.body) == {"hello": "sink"}
    await page.get_by_role("link", name="Events").first.click()
    await _expect_text(page, "#events-list", event_id[-12:])
    await page.get_by_label("Status").select_option("dead")
    await _expect_text(page, "#events-list", "No events match")


async def test_dead_events_are_replayed_and_edited_then_replayed(signed_in: SignUp, server: MittrServer,
                                                                  sink: Sink) -> None:
    sink.script("/dash-flaky", lambda n: 500 if n in (1, 3, 5) else 200)
    page = (await signed_in()).page
    endpoint = await _new_endpoint(page, server, f"{sink.url}/dash-flaky", "dash.flaky", max_attempts=1)
    await _send_test_event(page, {"n": 1})
    await _expect_text(page, "main .row", "dead")
    replay = page.get_by_role("button", name="Replay", exact=True)
    await replay.click()
    await _expect_text(page, "main .row", "delivered")
    await _expect_text(page, "main", r"Attempts \(2\)")
    assert [r.body for r in sink.at("/dash-flaky")] == [b'{"n":1}', b'{"n":1}']

    await page.goto(f"{server.url}/dashboard/endpoints/{endpoint}")
    await _send_test_event(page, {"n": 2})
    await _expect_text(page, "main .row", "dead")
    await page.get_by_role("button", name="Edit and replay").click()
    dialog = page.get_by_role("dialog", name="Edit and replay")
    await dialog.get_by_label("Payload (JSON object)").fill('{"n": 2, "fixed": true}')
    await dialog.get_by_role("button", name="Save").click()
    await _expect_text(page, "main .row", "delivered")
    assert json.loads(sink.at("/dash-flaky")[-1].body) == {"n": 2, "fixed": True}

    # The dead ones in bulk, from the list.
    await page.goto(f"{server.url}/dashboard/endpoints/{endpoint}")
    dead = await _send_test_event(page, {"n": 3})
    await _expect_text(page, "main .row", "dead")
    await page.goto(f"{server.url}/dashboard/events?status=dead")
    await _expect_text(page, "#events-list", dead[-12:])
    await page.get_by_role("button", name="Retry these").click()
    await page.get_by_role("dialog").get_by_role("button", name="Replay").click()
    await _expect_text(page, "#toasts", "1 events replayed")
    await _expect_text(page, "#events-list", "No events match")
    await page.goto(f"{server.url}/dashboard/events/{dead}")
    await _expect_text(page, "main .row", "delivered")
    assert [json.loads(r.body) for r in sink.at("/dash-flaky")][-2:] == [{"n": 3}, {"n": 3}]


async def test_a_paused_endpoint_holds_its_event_until_resumed(signed_in: SignUp, server: MittrServer,
                                                               sink: Sink) -> None:
    page = (await signed_in()).page
    endpoint = await _new_endpoint(page, server, f"{sink.url}/dash-paused", "dash.paused")
    await page.get_by_role("button", name="Pause").click()
    await _expect_text(page, "#ep-status", "paused")
    await _send_test_event(page)
    await _expect_text(page, "main", "endpoint paused")
    assert sink.at("/dash-paused") == []
    await page.goto(f"{server.url}/dashboard/endpoints/{endpoint}")
    await page.get_by_role("button", name="Resume").click()
    await _expect_text(page, "#ep-status", "active")
    await page.go_back()
    await _expect_text(page, "main .row", "delivered")
    assert len(sink.at("/dash-paused")) == 1


async def test_the_project_switcher_scopes_the_pages(signed_in: SignUp, server: MittrServer, sink: Sink) -> None:
    page = (await signed_in()).page
    await _new_endpoint(page, server, f"{sink.url}/dash-all", "dash.all")
    await page.get_by_role("link", name="Projects").click()
    await page.get_by_role("button", name="New project").click()
    dialog = page.get_by_role("dialog", name="New project")
    await dialog.get_by_label("Name").fill("Staging")
    await dialog.get_by_label("Environment").select_option("staging")
    await dialog.get_by_role("button", name="Create").click()
    await _expect_text(page, "#projects-list", "Staging")
    switch = page.get_by_label("Project", exact=True)
    await switch.select_option(label="Staging (staging)")
    await page.get_by_role("link", name="Endpoints").click()
    await _expect_text(page, "#endpoints-list", "No endpoints yet")
    await _new_endpoint(page, server, f"{sink.url}/dash-staging", "dash.staging")
    await page.goto(f"{server.url}/dashboard/endpoints")   # a reload keeps the chosen project
    await _expect_text(page, "#endpoints-list", "dash-staging")
    assert "dash-all" not in await page.inner_text("#endpoints-list")
    await page.get_by_label("Project", exact=True).select_option(label="All projects")
    await _expect_text(page, "#endpoints-list", "dash-all")
    await _expect_text(page, "#endpoints-list", "dash-staging")


PAGES = (("Overview", "Overview"), ("Events", "Events"), ("Endpoints", "Endpoints"), ("Event types", "Event types"),
         ("Alerting", "Alerting"), ("API keys", "API keys"), ("Team", "Team"), ("Projects", "Projects"),
         ("Sub-accounts", "Sub-accounts"), ("Audit log", "Audit log"), ("SSO & provisioning", "SSO & provisioning"))
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((c) => !c.hidden && !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
                 && !c.getAttribute('aria-labelledby') && !(c.tagName === 'BUTTON' && c.textContent.trim()))
  .map((c) => c.outerHTML)"""


async def test_every_page_renders_with_labelled_controls_and_works_from_the_keyboard(
        signed_in: SignUp, server: MittrServer, sink: Sink) -> None:
    page = (await signed_in()).page
    origin = {"Origin": server.url}
    for path, body in (("/api/v1/endpoints", {"url": f"{sink.url}/dash-tour", "eventTypes": ["tour.*"]}),
                       ("/api/v1/event-types", {"name": "tour.created", "schema": {"type": "object"}}),
                       ("/api/v1/api-keys", {"name": "CI", "scopes": ["events:write"]}),
                       ("/api/v1/sub-accounts", {"name": "Initech", "subID": "cust_initech"}),
                       ("/api/v1/scim/tokens", {"name": "Okta"}),
                       ("/api/v1/alerting/rules", {"name": "Failures", "condition": {
                           "metric": "failure_rate", "operator": "gt", "value": 0.5, "window": "5m"},
                           "action": {"type": "webhook", "webhookUrl": "https://hooks.example.com/x"}})):
        resp = await page.request.post(server.url + path, headers=origin, data=body)
        assert resp.status == 201, await resp.text()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    await page.goto(f"{server.url}/dashboard/login")   # signed in already: straight on
    await page.wait_for_url(f"{server.url}/dashboard/")
    for link, heading in PAGES:
        await page.get_by_role("navigation").get_by_role("link", name=link, exact=True).click()
        await page.get_by_role("heading", name=heading, level=1).wait_for()
        await page.wait_for_load_state("networkidle")
        assert await page.get_by_role("link", name=link, exact=True).get_attribute("aria-current") == "page"
        assert await page.evaluate(UNLABELLED) == [], link
        assert not await page.locator(".form-error:not(:empty)").count(), link
    assert problems == []
    # Keyboard: open a dialog with Enter, its first field has focus, Escape closes it, focus returns.
    from playwright.async_api import expect

    await page.get_by_role("navigation").get_by_role("link", name="Projects", exact=True).click()
    await page.get_by_role("heading", name="Projects", level=1).wait_for()
    await page.wait_for_load_state("networkidle")    # the page has rendered: its button is not replaced later
    opener = page.get_by_role("button", name="New project")
    await opener.focus()
    await expect(opener).to_be_focused()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New project")
    await dialog.wait_for()
    assert await dialog.get_by_label("Name").evaluate("(e) => e === document.activeElement")
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="detached")
    assert await opener.evaluate("(e) => e === document.activeElement")


async def _expect_count(rows: Locator, n: int) -> None:
    from playwright.async_api import expect

    await expect(rows).to_have_count(n)


async def _call(page: Page, server: MittrServer, method: str, path: str, body: Any = None) -> Any:
    """The API with the page's session cookie (and the Origin its writes need)."""
    resp = await page.request.fetch(server.url + path, method=method, data=body, headers={"Origin": server.url})
    assert resp.status < 300, f"{method} {path}: {resp.status} {await resp.text()}"
    return await resp.json() if resp.status != 204 else None


def _tag() -> str:
    return uuid.uuid4().hex[:8]


# ---- signing in ------------------------------------------------------------------------------------

async def test_provider_buttons_sign_in_through_the_oidc_provider_and_return_to_the_page(
        server: MittrServer, idp: OidcProvider, context: BrowserContext) -> None:
    tag = _tag()
    idp.reset(Person(f"sub-{tag}", f"grace-{tag}@example.com", name="Grace Hopper"))
    page = await context.new_page()
    await page.goto(f"{server.url}/dashboard/alerts")
    await page.wait_for_url(re.compile(r"/dashboard/login\?next=%2Fdashboard%2Falerts$"))
    button = page.get_by_role("link", name="Sign in with Acme SSO")
    assert await button.get_attribute("href") == "/auth/sso/acme/login?next=%2Fdashboard%2Falerts"
    await button.click()                         # -> the provider -> the callback -> the page asked for
    await page.wait_for_url(f"{server.url}/dashboard/alerts")
    await page.get_by_role("heading", name="Alerting", level=1).wait_for()
    await _expect_text(page, "header", f"grace-{tag}@example.com · admin")   # a new account, its own workspace
    assert any(c["name"] == "mittr_session" for c in await context.cookies(server.url))


async def test_continue_with_sso_discovers_the_saml_idp_and_signs_in_there(
        server: MittrServer, saml_idp: SamlIdp, signed_in: SignUp, context: BrowserContext) -> None:
    admin = (await signed_in()).page
    domain = f"corp-{_tag()}.example"
    conn = await _call(admin, server, "POST", "/api/v1/sso/saml", {
        "slug": "okta", "name": "Okta", "metadataXml": saml_idp.metadata(), "emailDomains": [domain],
        "defaultRole": "editor"})
    async with aiohttp.ClientSession() as http, http.get(conn["sp"]["metadataUrl"]) as resp:
        saml_idp.trust(await resp.text())
    email = f"bob@{domain}"

    async def at_the_idp(route: Route) -> None:
        """The IdP signs `email` in at once: a form that posts its signed response to the ACS."""
        answer = saml_idp.response(in_response_to=request_id(route.request.url), acs=conn["sp"]["acsUrl"],
                                   audience=conn["sp"]["entityId"], email=email)
        await route.fulfill(content_type="text/html", body=(
            f'<!doctype html><title>IdP</title><form method="post" action="{conn["sp"]["acsUrl"]}">'
            f'<input type="hidden" name="SAMLResponse" value="{answer}"><button>Continue</button></form>'))

    page = await context.new_page()
    await page.route(re.compile("^" + re.escape(SSO_URL) + r"\?"), at_the_idp)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    await page.goto(f"{server.url}/dashboard/login?next=%2Fdashboard%2Fevents")
    await page.get_by_label("Work e-mail").fill(f"bob@elsewhere-{_tag()}.example")
    await page.get_by_role("button", name="Continue with SSO").click()
    await _expect_text(page, "#sso-error", "not set up for this address")
    await page.get_by_label("Work e-mail").fill(email)
    await page.get_by_role("button", name="Continue with SSO").click()
    # (Chromium tries the made-up host once before the route answers: no wait_for_url, which fails on that.)
    await page.get_by_role("button", name="Continue", exact=True).wait_for()
    assert page.url.startswith(SSO_URL + "?SAMLRequest=")
    assert f"{conn['sp']['loginUrl']}?next=%2Fdashboard%2Fevents" in asked
    await page.get_by_role("button", name="Continue", exact=True).click()
    await page.wait_for_url(f"{server.url}/dashboard/events")
    await page.get_by_role("heading", name="Events", level=1).wait_for()
    await _expect_text(page, "header", f"{email} · editor")      # joined the connection's workspace


# ---- SSO & provisioning ----------------------------------------------------------------------------

async def test_saml_connections_and_scim_tokens_are_managed_from_the_settings_page(
        server: MittrServer, saml_idp: SamlIdp, signed_in: SignUp) -> None:
    user = await signed_in()
    page = user.page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    await page.goto(f"{server.url}/dashboard/")
    await page.get_by_role("navigation").get_by_role("link", name="SSO & provisioning").click()
    await page.get_by_role("heading", name="SSO & provisioning", level=1).wait_for()
    await _expect_text(page, "#saml-list", "No SAML identity provider yet")
    await _expect_text(page, "#scim-list", "No SCIM tokens yet")

    domain = f"acme-{_tag()}.example"
    await page.get_by_role("button", name="New SAML connection").click()
    dialog = page.get_by_role("dialog", name="New SAML connection")
    await dialog.get_by_label("Slug").fill("okta")
    await dialog.get_by_label("Name").fill("Okta")
    await dialog.get_by_label("E-mail domains").fill(domain)
    await dialog.get_by_label("Default role").select_option("editor")
    await dialog.get_by_label("…or the metadata XML").fill(saml_idp.metadata())
    await dialog.get_by_role("button", name="Create").click()
    await dialog.wait_for(state="detached")
    card = page.locator("section.saml[data-slug=okta]")
    await _expect_text(card, "h3", "Okta")
    workspace = user.workspace["workspace"]["id"]
    root = f"{server.url}/auth/sso/saml/{workspace}/okta"
    assert await card.get_by_label("ACS URL (single sign-on URL)").input_value() == f"{root}/acs"
    assert await card.get_by_label("SP entity id (audience)").input_value() == f"{root}/metadata"
    assert await card.get_by_label("SP metadata URL").input_value() == f"{root}/metadata"
    await card.locator(".field.copy", has_text="ACS URL").get_by_role("button", name="Copy").click()
    await _expect_text(page, "#toasts", "Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == f"{root}/acs"
    await _expect_text(card, ".domains", domain)
    await _expect_text(card, ".default-role", "editor")

    await card.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit Okta")
    await dialog.get_by_label("E-mail domains").fill(f"{domain}, eu.{domain}")
    await dialog.get_by_label("Require SSO").check()
    await dialog.get_by_label("Default role").select_option("viewer")
    await dialog.get_by_role("button", name="Save").click()
    await _expect_text(card, ".domains", f"{domain}, eu.{domain}")
    await _expect_text(card, ".row", "SSO required")
    [saved] = (await _call(page, server, "GET", "/api/v1/sso/saml"))["data"]
    assert saved["emailDomains"] == [domain, f"eu.{domain}"] and saved["requireSso"] is True
    assert saved["defaultRole"] == "viewer"

    # SCIM: the token is shown once, with the base URL; it works until revoked.
    await page.get_by_role("button", name="New SCIM token").click()
    dialog = page.get_by_role("dialog", name="New SCIM token")
    await dialog.get_by_label("Name").fill("Okta provisioning")
    await dialog.get_by_role("button", name="Create").click()
    shown = page.get_by_role("dialog", name="SCIM token created")
    token = await shown.get_by_label("Bearer token").input_value()
    assert token.startswith("mtscim_")
    assert await shown.get_by_label("SCIM base URL").input_value() == f"{server.url}/scim/v2"
    await shown.get_by_role("button", name="Done").click()
    await _expect_text(page, "#scim-list", r"Okta provisioning[\s\S]*active")

    async def scim_status() -> int:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/scim/v2/Users",
                                                             headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status
    assert await scim_status() == 200
    await page.locator("#scim-list").get_by_role("button", name="Revoke").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    await _expect_text(page, "#scim-list", "revoked")
    assert await scim_status() == 401

    await card.get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await _expect_text(page, "#saml-list", "No SAML identity provider yet")
    assert (await _call(page, server, "GET", "/api/v1/sso/saml"))["data"] == []


# ---- the audit log ---------------------------------------------------------------------------------

async def test_the_audit_log_is_filtered_and_paged(server: MittrServer, signed_in: SignUp) -> None:
    user = await signed_in()
    page = user.page
    project = await _call(page, server, "POST", "/api/v1/projects", {"name": "Audit me"})
    for n in range(52):                      # more than a page (50) of one kind
        await _call(page, server, "PATCH", f"/api/v1/projects/{project['id']}", {"name": f"Audit me {n}"})
    await _call(page, server, "POST", "/api/v1/api-keys", {"name": "Audited key", "scopes": ["events:read"]})
    await page.goto(f"{server.url}/dashboard/")
    await page.get_by_role("navigation").get_by_role("link", name="Audit log").click()
    await page.get_by_role("heading", name="Audit log", level=1).wait_for()
    rows = page.locator("#audit-list tbody tr")
    await _expect_text(page, "#audit-list tbody tr:first-child", r"create[\s\S]*api_key")   # newest first
    await _expect_text(page, "#audit-list tbody tr:first-child", re.escape(user.email) + r"\s+user")
    await _expect_count(rows, 50)
    await page.get_by_role("button", name="Load more").click()
    await _expect_text(page, "#audit-list", "create[\\s\\S]*workspace")                      # the sign-up
    await _expect_count(rows, 55)    # workspace, project, 52 updates, the key
    assert await page.get_by_role("button", name="Load more").is_hidden()

    await page.get_by_label("Resource").fill("api_key")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(f"{server.url}/dashboard/audit-log?resource=api_key")
    await _expect_text(page, "#audit-list", "Audited key")
    await _expect_count(rows, 1)
    await rows.first.get_by_text("Details").click()
    await _expect_text(page, "#audit-list tbody tr:first-child pre", '"scopes"')
    await page.reload()                        # the filter is in the address
    await _expect_text(page, "#audit-list", "Audited key")
    assert await page.get_by_label("Resource").input_value() == "api_key"
    await _expect_count(rows, 1)
    await page.get_by_label("Resource").fill("project")
    await page.get_by_label("Action").fill("create")
    await page.get_by_role("button", name="Filter").click()
    await _expect_text(page, "#audit-list", "Audit me")
    await _expect_count(rows, 1)
    await page.get_by_label("Action").fill("delete")
    await page.get_by_role("button", name="Filter").click()
    await _expect_text(page, "#audit-list", "No entries match")


# ---- sub-accounts ----------------------------------------------------------------------------------

async def test_sub_accounts_and_their_portal_sessions(server: MittrServer, signed_in: SignUp) -> None:
    page = (await signed_in()).page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    await page.goto(f"{server.url}/dashboard/")
    await page.get_by_role("navigation").get_by_role("link", name="Sub-accounts").click()
    await _expect_text(page, "#sub-accounts-list", "No sub-accounts yet")
    await page.get_by_role("button", name="New sub-account").click()
    dialog = page.get_by_role("dialog", name="New sub-account")
    await dialog.get_by_label("Name").fill("Globex")
    await dialog.get_by_label("Your id for it (subID)").fill("cust_globex")
    await dialog.get_by_label("Metadata (JSON object)").fill('{"tier": "gold"}')
    await dialog.get_by_role("button", name="Create").click()
    await page.wait_for_url(re.compile(r"/dashboard/sub-accounts/[0-9a-f-]{36}$"))
    sub = page.url.rsplit("/", 1)[1]
    await page.get_by_role("heading", name="Globex", level=1).wait_for()
    await _expect_text(page, "main", '"tier": "gold"')
    await _expect_text(page, "#portal-sessions", "No portal sessions yet")

    await page.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit Globex")
    await dialog.get_by_label("Name").fill("Globex Corporation")
    await dialog.get_by_role("button", name="Save").click()
    await page.get_by_role("heading", name="Globex Corporation", level=1).wait_for()

    await page.get_by_role("button", name="New portal session").click()
    dialog = page.get_by_role("dialog", name="New portal session")
    await dialog.get_by_label("Return URL").fill("https://app.example.com/integrations")
    await dialog.get_by_label("Idle timeout (seconds)").fill("900")
    await dialog.get_by_role("button", name="Create").click()
    shown = page.get_by_role("dialog", name="Portal session created")
    url = await shown.get_by_label("Portal URL").input_value()
    assert url.startswith(f"{server.url}/s/exchange?token=")
    await shown.get_by_role("button", name="Copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == url
    async with page.context.expect_page() as opened:
        await shown.get_by_role("link", name="Open the portal in a new tab").click()
    portal = await opened.value
    await portal.get_by_role("heading", name="Endpoints").wait_for()         # the customer's portal
    await shown.get_by_role("button", name="Done").click()
    await _expect_text(page, "#portal-sessions", r"active[\s\S]*app\.example\.com")

    await page.locator("#portal-sessions").get_by_role("button", name="Revoke").click()
    await _expect_text(page, "#portal-sessions", "revoked")
    [listed] = (await _call(page, server, "GET", f"/api/v1/sub-accounts/{sub}/sessions"))["data"]
    assert listed["status"] == "revoked" and listed["returnURL"] == "https://app.example.com/integrations"

    await page.get_by_role("link", name="← Sub-accounts").click()
    row = page.locator("#sub-accounts-list tr", has_text="cust_globex")
    await _expect_text(row, None, "Globex Corporation")
    await row.get_by_role("button", name="Deactivate").click()
    await page.get_by_role("dialog").get_by_role("button", name="Deactivate").click()
    await _expect_text(row, None, "deactivated")
    assert (await _call(page, server, "GET", f"/api/v1/sub-accounts/{sub}"))["active"] is False


# ---- every new page ----------------------------------------------------------------------------------

async def test_admin_pages_are_hidden_from_editors_and_the_saml_dialog_is_labelled(
        server: MittrServer, signed_in: SignUp, browser: Any) -> None:
    page = (await signed_in()).page
    await page.goto(f"{server.url}/dashboard/sso")
    await page.get_by_role("button", name="New SAML connection").click()
    await page.get_by_role("dialog", name="New SAML connection").wait_for()
    assert await page.evaluate(UNLABELLED) == []
    await page.keyboard.press("Escape")

    # An editor (invited, then signed in with a password) sees neither admin page in the navigation.
    email = f"ed-{_tag()}@example.com"
    await _call(page, server, "POST", "/api/v1/team/invite", {"email": email, "role": "editor"})
    ctx = await browser.new_context()
    try:
        editor = await ctx.new_page()
        token = parse_qs(urlsplit(await _invite_link(server, email)).query)["token"][0]
        resp = await editor.request.post(f"{server.url}/auth/accept-invite", headers={"Origin": server.url},
                                         data={"token": token, "password": "correct horse battery staple",
                                               "name": "Ed"})
        assert resp.status in (200, 201), await resp.text()
        await editor.goto(f"{server.url}/dashboard/")
        nav = editor.get_by_role("navigation")
        await nav.get_by_role("link", name="Sub-accounts").wait_for()
        assert await nav.get_by_role("link", name="Audit log").count() == 0
        assert await nav.get_by_role("link", name="SSO & provisioning").count() == 0
    finally:
        await ctx.close()


async def _invite_link(server: MittrServer, email: str) -> str:
    """The invitation link mailed to `email` (no SMTP in tests: the server writes .eml files to its
    outbox, after answering)."""
    outbox = Path(server.environment()["MITTR_MAIL__OUTBOX_DIR"])
    for _ in range(100):
        for path in outbox.glob("*"):
            mail = message_from_bytes(path.read_bytes(), policy=default_policy)
            if mail["To"] == email:
                body = mail.get_body(("plain",))
                found = re.search(r"https?://\S+token=[\w-]+", body.get_content() if body else "")
                if found:
                    return found.group(0)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no invitation mail for {email} in {outbox}")
