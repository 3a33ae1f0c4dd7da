"""The browser fixtures themselves: a signed-up user's page is signed in to the live server, and a
page on the other origin is another origin to Chromium (its fetch to Mittr is cross-origin)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.browser.conftest import OtherOrigin, SignedIn
from tests.support.server import MittrServer


async def test_signed_in_page_is_signed_in(signed_in: Callable[..., Awaitable[SignedIn]], server: MittrServer,
                                           other_origin: OtherOrigin) -> None:
    user = await signed_in()
    page = user.page
    resp = await page.goto(f"{server.url}/auth/session")
    assert resp is not None and resp.status == 200
    assert user.email in await page.inner_text("body")
    await page.goto(other_origin.put("/hello", "<!doctype html><title>host</title><p>hi</p>"))
    assert await page.evaluate("() => window.location.origin") == other_origin.url != server.url
