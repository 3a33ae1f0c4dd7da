"""Browser tests: headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real
`mittr serve`, a real HTTP sink, and a second web server on another origin for pages that embed Mittr.

Fixtures (reuse them from any module under tests/browser/):
- `server`, `http`, `api`: one `mittr serve` per module on a fresh database, an aiohttp session, an
  admin API client (tests/e2e/conftest.py; a module may set SERVER_SHARDS and SERVER_ENV).
- `sink`: one recording HTTP receiver per module (tests/support/sink.py); use a path per test.
- `browser`: one headless Chromium per test session.
- `context`: a fresh browser context (its own cookies and storage) per test, closed after it.
- `signed_in`: `await signed_in()` signs a new user up (a new workspace) through POST /auth/signup,
  inside a fresh context, and returns a `SignedIn` whose page carries the `mittr_session` cookie.
- `other_origin`: a web server on another port serving pages a test puts there (`.put(path, html)`),
  e.g. a host page that frames the portal.

Every test here is marked `browser` and skipped, saying why, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from tests.e2e.conftest import api, http, server  # noqa: F401 - the e2e fixtures, reused as they are
from tests.support.server import MittrServer
from tests.support.sink import Sink

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("MITTR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"


def missing() -> str | None:
    """Why browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MITTR_CHROMIUM)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing()
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[Sink]:
    s = await Sink().start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context()
    try:
        yield ctx
    finally:
        await ctx.close()


@dataclass
class SignedIn:
    page: Page
    email: str
    workspace: dict[str, Any]


@pytest.fixture
async def signed_in(browser: Browser, server: MittrServer,  # noqa: F811 - the imported fixture
                    ) -> AsyncIterator[Callable[..., Awaitable[SignedIn]]]:
    """A factory: each call signs up a new user in its own context; all are closed after the test."""
    opened: list[BrowserContext] = []

    async def make(email: str | None = None, company: str = "Acme") -> SignedIn:
        email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
        ctx = await browser.new_context()
        opened.append(ctx)
        page = await ctx.new_page()
        # Through the context's own request API, so the cookie it sets is the page's.
        resp = await page.request.post(f"{server.url}/auth/signup", headers={"Origin": server.url},
                                       data={"email": email, "password": PASSWORD, "companyName": company})
        assert resp.status == 201, await resp.text()
        assert any(c["name"] == "mittr_session" for c in await ctx.cookies(server.url))
        return SignedIn(page, email, await resp.json())

    try:
        yield make
    finally:
        for ctx in opened:
            await ctx.close()


@dataclass
class OtherOrigin:
    """A plain web server on 127.0.0.1 at another port than Mittr's: another origin to the browser."""
    pages: dict[str, str] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url + path

    async def _page(self, request: web.Request) -> web.Response:
        html = self.pages.get(request.path)
        if html is None:
            return web.Response(status=404, text="no such page")
        return web.Response(text=html, content_type="text/html")

    async def start(self) -> OtherOrigin:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(scope="module")
async def other_origin() -> AsyncIterator[OtherOrigin]:
    site = await OtherOrigin().start()
    try:
        yield site
    finally:
        await site.stop()
