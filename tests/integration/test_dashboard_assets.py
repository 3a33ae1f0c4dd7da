"""The dashboard's serving: every page path answers the shell, the shipped files under a strict CSP,
gzip and ETag revalidation, nothing outside the shipped set; and the stats WebSocket taking the
dashboard's session cookie only from a page of our own origin."""

from __future__ import annotations

import gzip
import re

import pytest
from blacksheep import Request, Response

from api.dashboard import CSP, FILES, accepts_gzip
from tests.integration.conftest import Caller

OWN = "http://127.0.0.1:8000"   # the TestClient's Host


async def _body(resp: Response) -> bytes:
    raw = await resp.read()
    return gzip.decompress(raw) if resp.headers.get_first(b"Content-Encoding") == b"gzip" else raw


def test_gzip_only_for_clients_that_take_it() -> None:
    def req(*values: bytes) -> Request:
        return Request("GET", b"/dashboard/", [(b"accept-encoding", v) for v in values])
    assert accepts_gzip(req(b"gzip, deflate")) and accepts_gzip(req(b"br", b"GZIP;q=0.5"))
    assert not accepts_gzip(req()) and not accepts_gzip(req(b"identity")) and not accepts_gzip(req(b"gzip;q=0"))
    assert not accepts_gzip(req(b"gzipx, br"))


async def test_page_paths_answer_the_shell_with_a_strict_csp(app_client: Caller) -> None:
    for path in ("/dashboard/", "/dashboard/events/0b7c", "/dashboard/login"):
        resp = await app_client.client.get(path)
        body = await _body(resp)
        assert resp.status == 200, path
        assert b'<script type="module" src="/dashboard/assets/app.js">' in body
        assert resp.headers.get_first(b"Content-Security-Policy").decode() == CSP
        assert resp.headers.get_first(b"X-Frame-Options") == b"DENY"
    assert "script-src 'self';" in CSP and "unsafe" not in CSP and "frame-ancestors 'none'" in CSP
    for path, target in (("/dashboard", b"/dashboard/"), ("/", b"/dashboard/")):
        resp = await app_client.client.get(path)
        assert resp.status == 302 and resp.headers.get_first(b"Location") == target
    resp = await app_client.client.get("/dashboardx")
    assert resp.status == 404


async def test_assets_are_gzipped_revalidated_by_etag_and_only_the_shipped_ones(app_client: Caller) -> None:
    resp = await app_client.client.get("/dashboard/assets/app.js", headers={"Accept-Encoding": "gzip, br"})
    raw = await resp.read()
    assert resp.status == 200 and resp.headers.get_first(b"Content-Encoding") == b"gzip"
    assert gzip.decompress(raw) == FILES["app.js"].body
    assert resp.headers.get_first(b"Content-Type").startswith(b"text/javascript")
    etag = resp.headers.get_first(b"ETag")
    again = await app_client.client.get("/dashboard/assets/app.js", headers={"If-None-Match": etag.decode()})
    assert again.status == 304 and not await again.read()
    css = await app_client.client.get("/dashboard/assets/app.css")
    assert css.status == 200 and await _body(css) == FILES["app.css"].body
    for bad in ("/dashboard/assets/nope.js", "/dashboard/assets/../__init__.py", "/dashboard/assets/index.html",
                "/dashboard/assets/%2e%2e/__init__.py"):
        resp = await app_client.client.get(bad)
        assert resp.status == 404, bad
        assert (await resp.json())["code"] == "NOT_FOUND"


def test_shipped_files_have_no_inline_code_and_every_import_resolves() -> None:
    """CSP would block inline scripts, inline styles and handlers in the browser: none are shipped.
    Every module a module imports (statically or lazily) is a shipped file."""
    html = FILES["index.html"].body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    for name, asset in FILES.items():
        if not name.endswith(".js"):
            continue
        text = asset.body.decode()
        assert ".innerHTML" not in text and "eval(" not in text and "new Function" not in text, name
        folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        for spec in re.findall(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""", text):
            parts = (folder + spec).split("/")
            out: list[str] = []
            for part in parts:
                if part == "..":
                    out.pop()
                elif part not in (".", ""):
                    out.append(part)
            assert "/".join(out) in FILES, f"{name} imports {spec}"


async def _session_cookie(app_client: Caller) -> str:
    status, body, resp = await app_client.call("POST", "/auth/session")
    assert status == 201, body
    return resp.headers.get_first(b"Set-Cookie").decode().split(";", 1)[0].split("=", 1)[1]


@pytest.mark.parametrize("origin", [OWN, None])
async def test_stats_websocket_takes_the_session_cookie_from_our_own_pages(app_client: Caller,
                                                                           origin: str | None) -> None:
    cookie = await _session_cookie(app_client)
    headers = {"Origin": origin} if origin else {}
    ws = app_client.client.websocket_connect("/api/v1/stats/ws", headers=headers, cookies={"mittr_session": cookie})
    await ws.send({"type": "websocket.connect"})
    assert (await ws.receive())["type"] == "websocket.accept"
    first = await ws.receive_json()
    if origin is None:   # no Origin: not a browser page of ours
        assert first["code"] == "FORBIDDEN"
        assert (await ws.receive())["code"] == 1008
    else:
        assert "queueDepth" in first
        await ws.send({"type": "websocket.disconnect", "code": 1000})
    await app_client.client.websocket_all_closed()


async def test_stats_websocket_refuses_the_cookie_from_another_sites_page(app_client: Caller) -> None:
    cookie = await _session_cookie(app_client)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:8001"}):
        ws = app_client.client.websocket_connect("/api/v1/stats/ws", headers=headers,
                                                 cookies={"mittr_session": cookie})
        await ws.send({"type": "websocket.connect"})
        assert (await ws.receive())["type"] == "websocket.accept"
        assert (await ws.receive_json())["code"] == "FORBIDDEN"
        assert (await ws.receive())["code"] == 1008
    ws = app_client.client.websocket_connect("/api/v1/stats/ws", headers={"Origin": OWN},
                                             cookies={"mittr_session": "not-a-session"})
    await ws.send({"type": "websocket.connect"})
    assert (await ws.receive())["type"] == "websocket.accept"
    assert (await ws.receive_json())["code"] == "UNAUTHORIZED"
    await app_client.client.websocket_all_closed()
