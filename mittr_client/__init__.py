"""Mittr's Python client and receiver helpers.

Installable on its own (`pip install ./clients/python`, needs only httpx); `verify` and friends
in `mittr_client.receiver` need nothing beyond the standard library."""

from __future__ import annotations

__version__ = "0.1.0"

from mittr_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MittrError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from mittr_client.models import ApiKey, DeliveryAttempt, Endpoint, Event, EventType, PolledEvent, Project
from mittr_client.receiver import VerificationError, verify, verify_standard
from mittr_client.retry import RetryPolicy


def __getattr__(name: str) -> object:
    """The clients import httpx; load them only when asked, so receivers need no httpx."""
    if name == "Client":
        from mittr_client.sync import Client
        return Client
    if name == "AsyncClient":
        from mittr_client.aio import AsyncClient
        return AsyncClient
    raise AttributeError(name)


__all__ = [
    "ApiKey", "AsyncClient", "BadRequest", "Client", "Conflict", "DeliveryAttempt", "Endpoint", "Event",
    "EventType", "Forbidden", "MittrError", "NotFound", "PolledEvent", "Project", "QuotaExceeded",
    "RateLimited", "RetryPolicy", "Unauthorized", "Unavailable", "VerificationError", "__version__",
    "verify", "verify_standard",
]
