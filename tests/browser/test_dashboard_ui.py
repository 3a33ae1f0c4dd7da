"""The workspace dashboard in headless Chromium against a real `mittr serve` and a real sink: a
logged-out visit lands on the login page and signing in returns to the page asked for, with live
stats over the cookie-authenticated WebSocket; an endpoint made in the UI receives a test event that
the UI shows delivered with its attempt; a dead event is replayed, another edited and replayed; an
endpoint paused holds its event until resumed; the project switcher scopes what the pages list.
Also what a cold page load costs (requests and bytes), reported and held under a budget."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tests.browser.conftest import PASSWORD, SignedIn
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

SERVER_SHARDS = 1
SignUp = Callable[..., Awaitable[SignedIn]]
# A cold load of the overview (HTML, CSS, modules, the API calls it makes) stays within this.
BUDGET_REQUESTS = 20
BUDGET_BYTES = 80_000


async def _expect_text(page: Page, selector: str, pattern: str, timeout: float = 15_000) -> None:
    from playwright.async_api import expect

    await expect(page.locator(selector)).to_contain_text(re.compile(pattern), timeout=timeout)


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
    await page.get_by_label("E-mail").fill(user.email)
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
         ("Alerting", "Alerting"), ("API keys", "API keys"), ("Team", "Team"), ("Projects", "Projects"))
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
    opener = page.get_by_role("button", name="New project")
    await opener.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New project")
    await dialog.wait_for()
    assert await dialog.get_by_label("Name").evaluate("(e) => e === document.activeElement")
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="detached")
    assert await opener.evaluate("(e) => e === document.activeElement")
