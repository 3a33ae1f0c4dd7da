"""Who may do what: scopes for API keys, roles for people. Pure, so the whole table is testable.

A route declares one permission, `<family>:read` or `<family>:write` (one family per route family).
An API key carries scopes: `*` (everything), `<family>:*`, or single permissions; `write` implies
`read` of the same family. A person acts through a role in the workspace:

- `viewer` reads everything a workspace member may read, and writes nothing;
- `editor` reads and writes the delivery resources (events, endpoints, event types, poll, ...) but
  does not manage the team, API keys, billing, GDPR or the audit log;
- `admin` does everything.

A key that a person made acts with the key's scopes; a session made from a key (POST /auth/session)
acts with that key's scopes too.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["admin", "editor", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "editor", "viewer")

# One family per route family; the README lists what each covers.
FAMILIES: tuple[str, ...] = (
    "events", "endpoints", "event-types", "deliveries", "poll", "stats", "analytics", "metrics",
    "projects", "account", "team", "api-keys", "audit-logs", "gdpr", "usage", "billing",
    "sub-accounts", "inbound", "alerting", "connectors", "scim", "sso",
)
# Families only admins manage (read and write).
ADMIN_ONLY: frozenset[str] = frozenset({"team", "api-keys", "audit-logs", "gdpr", "billing", "scim", "sso"})
# Families whose reads every member needs (the team list, who am I, the plan's limits).
MEMBER_READABLE: frozenset[str] = frozenset({"team", "billing"})
ALL_SCOPES: tuple[str, ...] = ("*", *(f"{f}:{a}" for f in FAMILIES for a in ("read", "write", "*")))


def parse_permission(permission: str) -> tuple[str, str]:
    family, _, action = permission.partition(":")
    if family not in FAMILIES or action not in ("read", "write"):
        raise ValueError(f"unknown permission {permission!r}")
    return family, action


def valid_scope(scope: str) -> bool:
    return scope in ALL_SCOPES


def scopes_allow(scopes: frozenset[str], permission: str) -> bool:
    """An API key's scopes against a route's permission; an empty set is a full-access key."""
    if not scopes or "*" in scopes or permission in scopes:
        return True
    family, action = parse_permission(permission)
    if f"{family}:*" in scopes:
        return True
    return action == "read" and f"{family}:write" in scopes


def role_allows(role: Role, permission: str) -> bool:
    family, action = parse_permission(permission)
    if role == "admin":
        return True
    if family in ADMIN_ONLY:
        return action == "read" and family in MEMBER_READABLE
    return action == "read" or role == "editor"
