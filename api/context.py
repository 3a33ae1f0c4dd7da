"""Process-wide state of one API worker: settings, the pool and the services built on it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from blacksheep import Request

from api.http import header
from control.errors import NotFound
from control.services.endpoints import EndpointService
from control.services.events import EventService
from control.services.keys import KeyAuthenticator
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q


@dataclass
class ApiContext:
    settings: Settings
    pool: asyncpg.Pool
    auth: KeyAuthenticator
    endpoints: EndpointService
    events: EventService
    max_body: int

    async def principal(self, request: Request) -> Principal:
        who = await self.auth.authenticate(header(request, b"x-api-key"))
        raw_project = header(request, b"x-project-id")
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
