"""The `mittr_session` cookie as the browser gets it.

HttpOnly (page scripts cannot read it), SameSite=Lax (other sites' forms and fetches do not carry it
on writes), Path=/ (the API and the dashboard share it), Max-Age = `auth.session_ttl_hours`, and
Secure whenever this server is reached over https: the request came in over https, or
`auth.public_url` says https (TLS ended at a proxy in front).
"""

from __future__ import annotations

from control.services.sessions import COOKIE


def wants_secure(scheme: str, public_url: str) -> bool:
    return scheme == "https" or public_url.strip().lower().startswith("https://")


def session_cookie(token: str, max_age_s: int, secure: bool) -> str:
    return f"{COOKIE}={token}; Max-Age={max(0, max_age_s)}; Path=/; HttpOnly; SameSite=Lax" + (
        "; Secure" if secure else "")


def cleared_cookie(secure: bool) -> str:
    """Tells the browser to drop the cookie (logout, or a cookie that no longer works)."""
    return session_cookie("", 0, secure)
