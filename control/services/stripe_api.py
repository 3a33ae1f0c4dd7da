"""A small asynchronous client of Stripe's REST API, for the billing provider.

Why not the `stripe` package: its default HTTP client is synchronous (requests), which would block
the API worker's event loop for the length of every call; its async client needs httpx or aiohttp
wired in through options that change between major versions. The provider makes a handful of
calls, so this speaks the wire format itself, with the aiohttp the server already uses: form-encoded
bodies (`items[0][price]=...`), `Authorization: Bearer <key>`, a pinned `Stripe-Version` (so the
objects read back always have the shape the code was written for, whatever the account's default
version), an `Idempotency-Key` on every POST (the same one on each retry, so a retried call never
acts twice), a timeout per attempt, and bounded retries with backoff on what Stripe says may be
retried: network errors, 409 (an idempotency or lock conflict), 429, 5xx, and whatever carries
`Stripe-Should-Retry: true` (`false` stops retrying).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from control.errors import ApiError

API_VERSION = "2026-10-28.endive"     # the version the stripe SDK in the dev extras is generated for
MAX_BACKOFF_S = 4.0

log = logging.getLogger("mittr.billing.stripe")

Params = Mapping[str, Any]


class StripeError(ApiError):
    """Stripe refused the call (its message is passed on: it names the field or the state)."""
    status, code = 502, "PAYMENT_PROVIDER_ERROR"

    def __init__(self, message: str, http_status: int = 0, stripe_code: str | None = None) -> None:
        super().__init__(f"Stripe: {message}")
        self.http_status, self.stripe_code = http_status, stripe_code


class StripeUnavailable(StripeError):
    """Stripe could not be reached, or kept failing, within the retries."""
    status, code = 503, "PAYMENT_PROVIDER_UNAVAILABLE"


def form_pairs(params: Params, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested objects as `a[b]`, lists as `a[0]`, booleans as true/false;
    None is left out (Stripe reads an empty string as "unset", which is never meant here)."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            out += form_pairs(value, name)
        elif isinstance(value, list | tuple):
            out += form_pairs({str(i): v for i, v in enumerate(value)}, name)
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, str(value)))
    return out


def _retryable(status: int, should_retry: str | None) -> bool:
    if should_retry == "false":
        return False
    return should_retry == "true" or status in (409, 429) or status >= 500


def _error_message(status: int, body: bytes) -> tuple[str, str | None]:
    try:
        err = orjson.loads(body)["error"]
        return str(err.get("message") or err.get("type") or f"HTTP {status}"), err.get("code")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return f"HTTP {status}", None


class StripeClient:
    def __init__(self, secret_key: str, api_base: str, timeout_s: float, max_retries: int,
                 backoff_s: float = 0.5) -> None:
        self._key = secret_key
        self._base = api_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = max_retries
        self._backoff = backoff_s
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, params: Params | None = None) -> dict[str, Any]:
        query = urlencode(form_pairs(params or {}))
        return await self._call("GET", path + (f"?{query}" if query else ""), None, None)

    async def post(self, path: str, params: Params | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """POST with an Idempotency-Key: the caller's (a key naming the operation, so that even a
        repeated request is one action at Stripe) or a fresh one for this call and its retries."""
        body = urlencode(form_pairs(params or {})).encode()
        return await self._call("POST", path, body, idempotency_key or f"mittr-{uuid.uuid4()}")

    async def _call(self, method: str, path: str, body: bytes | None, key: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._key}", "Stripe-Version": API_VERSION,
                   "User-Agent": "mittr-billing"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if key is not None:
            headers["Idempotency-Key"] = key
        url = self._base + path
        failure = "no attempt made"
        for attempt in range(self._retries + 1):
            if attempt:
                delay = min(MAX_BACKOFF_S, self._backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            try:
                async with self._http().request(method, url, data=body, headers=headers) as resp:
                    raw = await resp.read()
                    status, should_retry = resp.status, resp.headers.get("Stripe-Should-Retry")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                log.warning("stripe call failed", extra={"path": path.split("?")[0], "attempt": attempt + 1,
                                                         "error": failure})
                continue
            if 200 <= status < 300:
                out: dict[str, Any] = orjson.loads(raw)
                return out
            message, code = _error_message(status, raw)
            if not _retryable(status, should_retry):
                raise StripeError(message, status, code)
            failure = f"HTTP {status}: {message}"
            log.warning("stripe call failed", extra={"path": path.split("?")[0], "attempt": attempt + 1,
                                                     "status": status})
        raise StripeUnavailable(f"{method} {path.split('?')[0]} failed after {self._retries + 1} attempts ({failure})")


def object_path(kind: str, object_id: str) -> str:
    """`/v1/<kind>/<id>`, the id escaped (ids come from Stripe, but a path is no place to trust them)."""
    return f"/v1/{kind}/{quote(object_id, safe='')}"
