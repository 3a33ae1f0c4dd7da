"""The portal page and the runtime routes its UI adds (edit, pause/resume, test event), against the
in-process app and a real database: every change stays inside the session's sub-account, a test
event reaches only its endpoint, and the page's headers (CSP, framing, referrer, caching) are what
docs/portal.md promises."""

from __future__ import annotations

import gzip
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from control.services.portal_ui import PortalPages
from control.settings import SettingsError, load_settings
from tests.integration.conftest import Caller
from tests.integration.test_sub_accounts import make_sub, portal, portal_token


async def portal_endpoint(app: Caller, token: str, **extra: Any) -> dict[str, Any]:
    status, ep = await portal(app, token, "POST", "/endpoints",
                              {"url": "https://hooks.example.com/in", "eventTypes": ["*"], **extra})
    assert status == 201, ep
    return dict(ep)


async def test_endpoint_changes_stay_inside_the_sub_account(app_client: Caller) -> None:
    a = await portal_token(app_client, (await make_sub(app_client, "a"))["id"])
    b = await portal_token(app_client, (await make_sub(app_client, "b"))["id"])
    ep = await portal_endpoint(app_client, a)
    for method, path, body in (("PATCH", "", {"description": "x"}), ("POST", "/pause", None),
                               ("POST", "/resume", None), ("POST", "/test", None)):
        status, err = await portal(app_client, b, method, f"/endpoints/{ep['id']}{path}", body)
        assert status == 404 and err["code"] == "NOT_FOUND", (method, path, err)
    status, changed = await portal(app_client, a, "PATCH", f"/endpoints/{ep['id']}", {"description": "orders"})
    assert status == 200 and changed["description"] == "orders" and "signingSecret" not in changed
    status, err = await portal(app_client, a, "PATCH", f"/endpoints/{ep['id']}", {"rateLimitPerSec": 5})
    assert status == 400 and "not available in the portal" in err["error"]
    status, rotated = await portal(app_client, a, "PATCH", f"/endpoints/{ep['id']}", {"signingSecret": None})
    assert status == 200 and rotated["signingSecret"] not in (None, ep["signingSecret"])   # shown once...
    status, read = await portal(app_client, a, "GET", f"/endpoints/{ep['id']}")
    assert status == 200 and "signingSecret" not in read                                   # ...never again
    status, paused = await portal(app_client, a, "POST", f"/endpoints/{ep['id']}/pause")
    assert status == 200 and paused["status"] == "paused"
    status, resumed = await portal(app_client, a, "POST", f"/endpoints/{ep['id']}/resume")
    assert status == 200 and resumed["status"] == "active"


async def test_a_test_event_goes_to_that_endpoint_only(app_client: Caller, pool: Any) -> None:
    sub = (await make_sub(app_client, "t"))["id"]
    a = await portal_token(app_client, sub)
    first, second = await portal_endpoint(app_client, a), await portal_endpoint(app_client, a)
    status, ev = await portal(app_client, a, "POST", f"/endpoints/{first['id']}/test")
    assert status == 201 and ev["eventType"] == "mittr.test" and ev["status"] == "queued", ev
    targets = await pool.fetch("SELECT endpoint_id FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    assert [str(r["endpoint_id"]) for r in targets] == [first["id"]] != [second["id"]]
    assert await pool.fetchval("SELECT sub_account_id FROM events WHERE id = $1", uuid.UUID(ev["id"])) \
        == uuid.UUID(sub)
    status, seen = await portal(app_client, a, "GET", f"/events/{ev['id']}")
    assert status == 200 and seen["payload"]["endpointId"] == first["id"]
    other = await portal_token(app_client, (await make_sub(app_client, "u"))["id"])
    assert (await portal(app_client, other, "GET", f"/events/{ev['id']}"))[0] == 404


async def page(app: Caller, path: str) -> tuple[int, bytes, Any]:
    resp = await app.client.get(path)
    body = await resp.read() or b""
    if resp.headers.get_first(b"content-encoding") == b"gzip":
        body = gzip.decompress(body)
    return resp.status, body, resp


def csp(resp: Any) -> str:
    return resp.headers.get_first(b"content-security-policy").decode()


async def test_the_page_frames_only_where_the_session_allows(app_client: Caller) -> None:
    sub = (await make_sub(app_client, "p"))["id"]
    status, minted, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub}/sessions",
                                              {"returnURL": "https://app.example.com:8443/integrations"})
    assert status == 201, minted
    url = urlsplit(minted["url"])
    status, body, resp = await page(app_client, f"{url.path}?{url.query}")
    assert status == 200 and b'<script type="module" src="/s/assets/portal.js">' in body
    policy = csp(resp)
    assert policy.endswith("frame-ancestors 'self' https://app.example.com:8443"), policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy
    assert resp.headers.get_first(b"referrer-policy") == b"no-referrer"
    assert resp.headers.get_first(b"cache-control") == b"no-store"
    # loading the page does not spend the token: the page's script exchanges it
    token = parse_qs(url.query)["token"][0]
    status, _, _ = await app_client.call("POST", "/sub-account-api/auth/exchange", {"token": token}, key="")
    assert status == 200
    # a reload after the exchange (/s/<sessionId>) frames the same way; anything else only in Mittr
    assert csp((await page(app_client, f"/s/{minted['session']['id']}"))[2]).endswith(
        "frame-ancestors 'self' https://app.example.com:8443")
    for path in ("/s/exchange?token=mtx_forged", "/s/exchange", f"/s/{uuid.uuid4()}", "/s/not-an-id"):
        status, _, resp = await page(app_client, path)
        assert status == 200 and csp(resp).endswith("frame-ancestors 'self'"), path


async def test_the_assets_and_nothing_else(app_client: Caller) -> None:
    status, body, resp = await page(app_client, "/s/assets/portal.js")
    assert status == 200 and b"/sub-account-api" in body
    assert resp.headers.get_first(b"content-type").startswith(b"text/javascript")
    etag = resp.headers.get_first(b"etag")
    resp = await app_client.client.get("/s/assets/portal.js", headers={"If-None-Match": etag.decode()})
    assert resp.status == 304
    for path in ("/s/assets/index.html", "/s/assets/../__init__.py", "/s/assets/nope.js", "/s/a/b", "/s/"):
        assert (await page(app_client, path))[0] == 404, path


async def test_configured_origins_are_added_and_checked(pool: Any) -> None:
    settings = load_settings(env={"MITTR_PORTAL__FRAME_ANCESTORS": "https://app.example.com,https://*.example.org"})
    pages = PortalPages(pool, 0, settings)
    assert await pages.frame_policy("mtx_unknown", None) == \
        "frame-ancestors 'self' https://app.example.com https://*.example.org"
    for bad in ("https://x.example.com; script-src *", "app.example.com", "https://x.example.com/path", "*"):
        with pytest.raises(SettingsError, match="frame_ancestors"):
            PortalPages(pool, 0, load_settings(env={"MITTR_PORTAL__FRAME_ANCESTORS": bad}))
