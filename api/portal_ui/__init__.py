"""The embedded sub-account portal, served at the URL a portal session returns (/s/exchange?token=...).

Static files shipped in the package (api/portal_ui/static: HTML, CSS, one ES module; no build step),
loaded like the dashboard's (in memory, gzip, ETag). The page exchanges the one-time token for a
session token through /sub-account-api/auth/exchange, keeps it in sessionStorage, and replaces its
address with /s/<sessionId> so that no token stays in the URL, the history or a Referer.

Headers: scripts, styles and fetches from this origin only, nothing inline; no Referer ever leaves
(the first URL carries the token); `frame-ancestors` lets only Mittr itself, the session's returnURL
origin and the operator's [portal] frame_ancestors show the page in a frame (control/services/portal_ui.py).
"""

from __future__ import annotations

from pathlib import Path

from blacksheep import Content, Request, Response

from api.context import ctx
from api.dashboard import Asset, load_assets
from api.http import error_response, header, query_one
from control.errors import NotFound
from control.services.portal_ui import PortalPages

PREFIX = "/s"
ASSETS = f"{PREFIX}/assets/"
FILES = load_assets(Path(__file__).with_name("static"))
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'")
HEADERS = ((b"X-Content-Type-Options", b"nosniff"), (b"Referrer-Policy", b"no-referrer"))


def _serve(request: Request, asset: Asset, frame_policy: str, cache: bytes) -> Response:
    headers = [(b"Content-Security-Policy", f"{CSP}; {frame_policy}".encode()), *HEADERS,
               (b"Cache-Control", cache), (b"ETag", asset.etag), (b"Vary", b"Accept-Encoding")]
    if header(request, b"if-none-match") == asset.etag.decode():
        return Response(304, headers, None)
    body = asset.body
    if asset.gzipped is not None and "gzip" in (header(request, b"accept-encoding") or ""):
        body = asset.gzipped
        headers.append((b"Content-Encoding", b"gzip"))
    return Response(200, headers, Content(asset.content_type, body))


async def page(request: Request) -> Response:
    """/s/exchange?token=... (first load) or /s/<sessionId> (a reload): the same page; the script
    tells them apart. Never stored by a cache: the first address carries a credential."""
    rest = request.path[len(PREFIX) + 1:]
    if not rest or "/" in rest:
        return error_response(NotFound(f"no route for {request.method} {request.path}"))
    pages = ctx().service(PortalPages)
    if rest == "exchange":
        policy = await pages.frame_policy(query_one(request, "token"), None)
    else:
        policy = await pages.frame_policy(None, rest)
    return _serve(request, FILES["index.html"], policy, b"no-store")


async def asset(request: Request) -> Response:
    found = FILES.get(request.path[len(ASSETS):])
    if found is None or found is FILES["index.html"]:
        return error_response(NotFound("no such portal file"))
    return _serve(request, found, "frame-ancestors 'none'", b"no-cache")


# (method, path, handler) in match order: the assets before the page route.
PAGES = (("GET", f"{ASSETS}*", asset), ("GET", f"{PREFIX}/*", page))
