"""Route handlers, one module per family of the API guide. Importing a module registers its routes."""

from api.handlers import (
    account,
    analytics,
    api_keys,
    audit,
    auth,
    deliveries,
    endpoint_security,
    endpoints,
    event_types,
    events,
    gdpr,
    metrics,
    poll,
    projects,
    stats,
    system,
)

__all__ = [
    "account",
    "analytics",
    "api_keys",
    "audit",
    "auth",
    "deliveries",
    "endpoint_security",
    "endpoints",
    "event_types",
    "events",
    "gdpr",
    "metrics",
    "poll",
    "projects",
    "stats",
    "system",
]
