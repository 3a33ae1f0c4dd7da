"""The workspace dashboard, served at /dashboard/ by the API process itself.

Static files shipped in the package (api/dashboard/static: HTML, CSS, ES modules; no build step),
read once at import, kept in memory with a gzip copy and an ETag. Every page path under /dashboard/
answers the same index.html and the modules route in the browser, so a reload or a shared link
opens the same page. The dashboard calls the public API with the `mittr_session` cookie: it sees
and does nothing the API would not allow that session. Strict CSP: scripts and styles only from
this origin, no inline code, no framing.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from blacksheep import Content, Request, Response

from api.http import error_response, header
from control.errors import NotFound

STATIC = Path(__file__).with_name("static")
PREFIX = "/dashboard"
ASSETS = f"{PREFIX}/assets/"
TYPES = {".html": b"text/html; charset=utf-8", ".css": b"text/css; charset=utf-8",
         ".js": b"text/javascript; charset=utf-8", ".svg": b"image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = ((b"Content-Security-Policy", CSP.encode()), (b"X-Content-Type-Options", b"nosniff"),
                    (b"Referrer-Policy", b"same-origin"), (b"X-Frame-Options", b"DENY"))


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None   # None when compressing would not save bytes
    content_type: bytes
    etag: bytes


def load_assets(root: Path = STATIC) -> dict[str, Asset]:
    """Every shipped file by its path under static/ (the only names served: no path is ever joined
    from a request, so nothing outside this set can be read)."""
    out: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        kind = TYPES.get(path.suffix)
        if kind is None or not path.is_file():
            continue
        body = path.read_bytes()
        packed = gzip.compress(body, 9, mtime=0)
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        out[path.relative_to(root).as_posix()] = Asset(body, packed if len(packed) < len(body) else None, kind, etag)
    return out


FILES = load_assets()


def accepts_gzip(request: Request) -> bool:
    """Whether any Accept-Encoding header lists gzip without refusing it (q=0)."""
    for value in request.headers.get(b"accept-encoding"):
        for item in value.decode("latin-1").lower().split(","):
            name, _, params = item.strip().partition(";")
            if name.strip() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
                return True
    return False


def _serve(request: Request, asset: Asset) -> Response:
    headers = [*SECURITY_HEADERS, (b"Cache-Control", b"no-cache"), (b"ETag", asset.etag), (b"Vary", b"Accept-Encoding")]
    if header(request, b"if-none-match") == asset.etag.decode():
        return Response(304, headers, None)
    body = asset.body
    if asset.gzipped is not None and accepts_gzip(request):
        body = asset.gzipped
        headers.append((b"Content-Encoding", b"gzip"))
    return Response(200, headers, Content(asset.content_type, body))


async def root(request: Request) -> Response:
    """`/` opens the dashboard."""
    return Response(302, [(b"Location", f"{PREFIX}/".encode())], None)


async def page(request: Request) -> Response:
    """Any page path (the browser-side router draws it); the bare prefix gets its slash."""
    path = request.path
    if path == PREFIX:
        return Response(302, [(b"Location", f"{PREFIX}/".encode())], None)
    if not path.startswith(f"{PREFIX}/"):
        return error_response(NotFound(f"no route for {request.method} {path}"))
    return _serve(request, FILES["index.html"])


async def asset(request: Request) -> Response:
    found = FILES.get(request.path[len(ASSETS):])
    if found is None or found is FILES["index.html"]:
        return error_response(NotFound("no such dashboard file"))
    return _serve(request, found)


# (method, path, handler) in match order: the assets before the catch-all page route.
PAGES = (("GET", "/", root), ("GET", f"{ASSETS}*", asset), ("GET", PREFIX, page), ("GET", f"{PREFIX}/*", page))
