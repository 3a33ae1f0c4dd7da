"""What the embedded portal page needs from the server beyond the runtime API: which origins may
frame it, and the test event a customer sends to one of its endpoints.

Framing (`Content-Security-Policy: frame-ancestors`): Mittr's own origin, the origin of the
session's `returnURL` (the workspace's product, chosen with its API key when it minted the session),
and the operator's `[portal] frame_ancestors`. Nothing else: a page elsewhere cannot frame the portal
(clickjacking), and a bogus token frames nowhere but Mittr itself.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from control.policy.tokens import digest
from control.services.events import NewEvent
from control.settings import Settings, SettingsError
from control.store.queries import q

# A CSP host-source as an operator writes one: scheme, host (optionally `*.` first), optional port.
HOST_SOURCE = re.compile(r"^https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:(\d{1,5}|\*))?$")
TEST_EVENT_TYPE = "mittr.test"
MAX_TOKEN = 200


def configured_origins(raw: Any) -> tuple[str, ...]:
    """`[portal] frame_ancestors`, checked: a typo must not widen (or break) the header."""
    if not isinstance(raw, list):
        raise SettingsError("portal.frame_ancestors: must be a list of origins")
    for item in raw:
        if not isinstance(item, str) or not HOST_SOURCE.match(item):
            raise SettingsError(f"portal.frame_ancestors: {item!r} is not an origin like https://app.example.com")
    return tuple(raw)


def url_origin(url: str | None) -> str | None:
    """scheme://host[:port] of an http(s) URL, as a CSP source; None for anything else."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return origin if HOST_SOURCE.match(origin) else None   # IPv6 literals are no CSP host-source


def frame_ancestors(return_url: str | None, configured: tuple[str, ...]) -> str:
    sources = ["'self'", *dict.fromkeys(o for o in (url_origin(return_url), *configured) if o)]
    return "frame-ancestors " + " ".join(sources)


def test_event(endpoint_id: str) -> NewEvent:
    """A small signed event of type `mittr.test` for one endpoint, whatever types it subscribes to."""
    payload = {"type": TEST_EVENT_TYPE, "endpointId": endpoint_id, "message": "A test event sent from the portal"}
    return NewEvent(idempotency_key=f"portal-test-{uuid.uuid4()}", destination=None, event_type=TEST_EVENT_TYPE,
                    payload=orjson.dumps(payload), payload_obj=payload, headers={}, max_attempts=None, priority=5,
                    delay_seconds=0)


class PortalPages:
    """One per API worker (ctx().service): the configured origins are checked once."""

    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool
        section = settings.section("portal") if settings is not None else {}
        self.configured = configured_origins(section.get("frame_ancestors", []))

    async def frame_policy(self, exchange_token: str | None, session_id: str | None) -> str:
        """The frame-ancestors directive for a page load, from the session it is about."""
        return_url: str | None = None
        if exchange_token and len(exchange_token) <= MAX_TOKEN:
            return_url = await self.pool.fetchval(q("portal_frame_by_exchange"), digest(exchange_token))
        elif session_id:
            try:
                sid = uuid.UUID(session_id)
            except ValueError:
                sid = None
            if sid is not None:
                return_url = await self.pool.fetchval(q("portal_frame_by_id"), sid)
        return frame_ancestors(return_url, self.configured)
