"""Who is calling: the workspace, and the person or API key behind a request, with their rights.

Every authenticated request resolves to one Principal before any handler runs; whether it may call
a route is a pure function of the principal and the route's permission (control/policy/access.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from control.errors import Forbidden
from control.policy.access import Role, role_allows, scopes_allow


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: uuid.UUID
    key_id: uuid.UUID | None
    scopes: frozenset[str]            # an API key's scopes; empty = every scope
    rate_limit: int | None
    project_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None  # a person (session cookie), else None
    role: Role | None = None          # the person's role in this workspace
    session_id: uuid.UUID | None = None
    label: str = ""                   # e-mail or key prefix: how the audit log names the actor
    ip: str | None = None             # the caller's address, for the audit log
    sub_account_id: uuid.UUID | None = None  # a portal session, or X-Sub-Account-ID: only that one's rows

    @property
    def actor_type(self) -> str:
        if self.key_id is not None:
            return "api_key"
        return "user" if self.user_id is not None else "system"

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.key_id if self.key_id is not None else self.user_id

    def allows(self, permission: str) -> bool:
        if self.key_id is not None or self.role is None:
            return scopes_allow(self.scopes, permission)
        return role_allows(self.role, permission)

    def require(self, permission: str) -> None:
        """`events:write` and the like; a key needs the scope, a person the role."""
        if self.allows(permission):
            return
        if self.key_id is not None or self.role is None:
            raise Forbidden(f"this API key lacks the {permission!r} scope")
        raise Forbidden(f"the {self.role} role cannot do this ({permission!r})")

    def with_project(self, project_id: uuid.UUID | None) -> Principal:
        return replace(self, project_id=project_id)

    def with_ip(self, ip: str | None) -> Principal:
        return replace(self, ip=ip)

    def with_sub_account(self, sub_account_id: uuid.UUID | None) -> Principal:
        return replace(self, sub_account_id=sub_account_id)
