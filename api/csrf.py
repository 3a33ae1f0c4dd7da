"""CSRF protection for cookie-authenticated writes: the request must come from our own origin.

Browsers send `Origin` on every cross-site write and on same-origin fetch/XHR writes, and a page
cannot forge it; `Referer` stands in when a privacy setting dropped `Origin`. A write carrying the
session cookie but neither header, or another origin, is refused with 403 FORBIDDEN. Requests with
`X-API-Key` are not checked: browsers never attach that header on their own. The cookie is also
SameSite=Lax, which keeps other sites' forms from sending it at all on POST.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from blacksheep import Request

from api.http import header
from control.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or default
    except ValueError:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + ("" if port == default else f":{port}")


def own_origin(request: Request, public_url: str) -> str | None:
    if public_url:
        return origin_of(public_url)
    host = header(request, b"host")
    if not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(request.scheme, request.scheme)   # a WebSocket handshake
    return origin_of(f"{scheme}://{host}")


def check_origin(request: Request, public_url: str) -> None:
    claimed = header(request, b"origin") or header(request, b"referer")
    if not claimed:
        raise Forbidden("cookie-authenticated writes need an Origin (or Referer) header from this site")
    if origin_of(claimed) is None or origin_of(claimed) != own_origin(request, public_url):
        raise Forbidden("cross-site request refused: the Origin does not match this server")
