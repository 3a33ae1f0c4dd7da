"""Who is calling: the tenant and the rights of the API key (or session) behind a request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from control.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: uuid.UUID
    key_id: uuid.UUID | None
    scopes: frozenset[str]            # empty = every scope
    rate_limit: int | None
    project_id: uuid.UUID | None = None

    def require(self, scope: str) -> None:
        """Scopes look like `events:write`; `events:*` and `*` grant a family or everything."""
        if not self.scopes or scope in self.scopes or "*" in self.scopes:
            return
        family = scope.split(":", 1)[0]
        if f"{family}:*" in self.scopes:
            return
        if scope.endswith(":read") and f"{family}:write" in self.scopes:
            return
        raise Forbidden(f"this API key lacks the {scope!r} scope")

    def with_project(self, project_id: uuid.UUID | None) -> Principal:
        return Principal(self.client_id, self.key_id, self.scopes, self.rate_limit, project_id)
