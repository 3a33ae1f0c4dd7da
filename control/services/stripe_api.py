"""Stripe's API for the billing provider, through the official `stripe` SDK's async methods.

The SDK's default HTTP client is synchronous (requests) and would block the API worker's event loop
for the length of every call, so the client is built with the SDK's `AIOHTTPClient` (aiohttp is what
the server already uses; the SDK's httpx client hands httpx a str body, which httpx deprecates) and
only the `*_async` methods are called. What the SDK does for us, and Mittr relies on:

- `Authorization: Bearer <key>` and a pinned `Stripe-Version` (API_VERSION, the version this SDK
  release is generated for), so the objects read back always have the shape the code was written
  for, whatever the account's default version;
- Stripe's form encoding (`items[0][price]=...`) and escaping of the ids in paths;
- an `Idempotency-Key` on every POST (a fresh one unless the caller names the operation), the same
  one on each retry, so a retried call never acts twice;
- bounded retries (`max_network_retries`) with backoff on what Stripe says may be retried: network
  errors, 409, 5xx, and whatever carries `Stripe-Should-Retry: true` (`false` stops retrying).

What is Mittr's: a timeout per attempt, answers as plain dicts (the mirror code reads Stripe's JSON
shapes), and the errors as Mittr's API errors (`answer`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import aiohttp
import stripe

from control.errors import ApiError

API_VERSION = "2026-10-28.endive"     # pinned: the version stripe 16.x (pyproject) is generated for

log = logging.getLogger("mittr.billing.stripe")


class StripeError(ApiError):
    """Stripe refused the call (its message is passed on: it names the field or the state)."""
    status, code = 502, "PAYMENT_PROVIDER_ERROR"

    def __init__(self, message: str, http_status: int = 0, stripe_code: str | None = None) -> None:
        super().__init__(f"Stripe: {message}")
        self.http_status, self.stripe_code = http_status, stripe_code


class StripeUnavailable(StripeError):
    """Stripe could not be reached, or kept failing, within the retries."""
    status, code = 503, "PAYMENT_PROVIDER_UNAVAILABLE"


def _unavailable(exc: stripe.StripeError) -> bool:
    """A failure the SDK would have retried (so it failed on every attempt): unreachable, a 409, a
    429 or a 5xx, unless Stripe said not to retry it."""
    if isinstance(exc, stripe.APIConnectionError) or not exc.http_status:
        return True
    should_retry = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("stripe-should-retry")
    if should_retry is not None:
        return should_retry == "true"
    return exc.http_status in (409, 429) or exc.http_status >= 500


class StripeApi:
    """The SDK's client with Mittr's settings (`v1` is the SDK's service tree)."""

    def __init__(self, secret_key: str, api_base: str, timeout_s: float, max_retries: int) -> None:
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self.v1 = stripe.StripeClient(secret_key, stripe_version=API_VERSION,
                                      base_addresses={"api": api_base.rstrip("/")},
                                      max_network_retries=max_retries, http_client=self._http).v1

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated


async def answer(call: Awaitable[stripe.StripeObject]) -> dict[str, Any]:
    """Await one SDK call: Stripe's object as a plain dict, or StripeError (502, Stripe refused) /
    StripeUnavailable (503, it could not be reached or kept failing)."""
    try:
        obj = await call
    except stripe.StripeError as exc:
        if isinstance(exc, stripe.APIConnectionError):
            message = "could not be reached"
        else:
            message = exc.user_message or (exc.error.type if exc.error else None) or f"HTTP {exc.http_status}"
        log.warning("stripe call failed", extra={"status": exc.http_status, "error": message})
        if _unavailable(exc):
            raise StripeUnavailable(f"{message} (after the retries)", exc.http_status or 0, exc.code) from exc
        raise StripeError(message, exc.http_status or 0, exc.code) from exc
    return obj.to_dict()
