"""Process-wide state of one API worker: settings, the pool, and the services built on it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from blacksheep import Request

from api.csrf import SAFE_METHODS, check_origin
from api.http import header
from control.errors import NotFound, Unauthorized
from control.services.keys import KeyAuthenticator
from control.services.principal import Principal
from control.services.sessions import COOKIE as SESSION_COOKIE
from control.services.sessions import SessionAuthenticator
from control.services.sub_accounts import SubAccountService
from control.settings import Settings
from control.store.queries import q

S = TypeVar("S")


@dataclass
class ApiContext:
    settings: Settings
    pool: asyncpg.Pool
    partitions: int
    auth: KeyAuthenticator
    max_body: int
    sessions: SessionAuthenticator
    _services: dict[type, Any] = field(default_factory=dict)

    def service(self, cls: type[S]) -> S:
        """One instance per worker of any service built as `cls(pool, partitions, settings)`."""
        found = self._services.get(cls)
        if found is None:
            make: Any = cls
            found = self._services[cls] = make(self.pool, self.partitions, self.settings)
        return found  # type: ignore[no-any-return]

    async def close_services(self) -> None:
        """Let services that hold background work finish it (`aclose`), before the pool closes."""
        for service in list(self._services.values()):
            close = getattr(service, "aclose", None)
            if close is not None:
                await close()

    async def principal(self, request: Request) -> Principal:
        """The caller behind `X-API-Key`, or else the `mittr_session` cookie (then a write must come
        from our own origin: CSRF), scoped to `X-Project-ID` and to `X-Sub-Account-ID` when given."""
        raw_key = header(request, b"x-api-key")
        if raw_key is not None:
            who = await self.auth.authenticate(raw_key)
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if not cookie:
                raise Unauthorized("missing or invalid API key or session")
            who = await self.sessions.authenticate(cookie)
            if request.method not in SAFE_METHODS:
                check_origin(request, self.settings.section("auth")["public_url"])
        who = await self.in_project(who.with_ip(request.client_ip), header(request, b"x-project-id"))
        raw_sub_account = header(request, b"x-sub-account-id")
        if raw_sub_account is None:
            return who
        return await self.service(SubAccountService).scope(who, raw_sub_account,
                                                           writing=request.method not in SAFE_METHODS)

    async def in_project(self, who: Principal, raw_project: str | None) -> Principal:
        """`who` scoped to the project `raw_project` names (none given: as it is); a malformed id,
        another workspace's project or, for a project-bound key, another project answer 404."""
        if raw_project is None:
            return who
        try:
            project_id = uuid.UUID(raw_project)
        except ValueError as exc:
            raise NotFound("project not found") from exc
        if who.project_id is not None and who.project_id != project_id:
            raise NotFound("project not found")
        if await self.pool.fetchval(q("project_of_client"), project_id, who.client_id) is None:
            raise NotFound("project not found")
        return who.with_project(project_id)


_CURRENT: dict[str, ApiContext] = {}


def ctx() -> ApiContext:
    return _CURRENT["ctx"]


def clear_ctx(value: ApiContext) -> None:
    """Forget `value` if it is the current context (another app may have replaced it since)."""
    if _CURRENT.get("ctx") is value:
        del _CURRENT["ctx"]


def set_ctx(value: ApiContext | None) -> ApiContext | None:
    old = _CURRENT.pop("ctx", None)
    if value is not None:
        _CURRENT["ctx"] = value
    return old
