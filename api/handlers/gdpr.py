"""GDPR: export everything of the workspace as one streamed JSON document; erase everything."""

from __future__ import annotations

from blacksheep import Request, Response, StreamedContent

from api.context import ctx
from api.http import JSON, json_response, query_one, read_json
from api.routing import ROUTES, authed
from control.services.gdpr import GdprService
from control.services.principal import Principal

ERASE_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "confirm": {"type": "string", "format": "uuid", "description": "this workspace's id"}}}
ERASED = {"type": "object", "required": ["workspaceId", "erased"], "properties": {
    "workspaceId": {"type": "string", "format": "uuid"},
    "erased": {"type": "object", "additionalProperties": {"type": "integer"}}}}


def gdpr() -> GdprService:
    return ctx().service(GdprService)


@ROUTES.add("GET", "/api/v1/gdpr/export",
            "Export all of the workspace's data as one JSON document (streamed; no secrets or hashes)",
            "gdpr", "gdpr:read")
@authed()
async def export(request: Request, who: Principal) -> Response:
    chunks = await gdpr().export(who)
    disposition = f'attachment; filename="mittr-export-{who.client_id}.json"'.encode()
    return Response(200, [(b"Content-Disposition", disposition), (b"Cache-Control", b"no-store")],
                    StreamedContent(JSON, chunks))


@ROUTES.add("DELETE", "/api/v1/gdpr/data",
            "Erase all of the workspace's data for good, then the workspace (confirm with its id: body "
            "{\"confirm\": \"<id>\"} or ?confirm=<id>); answers when done", "gdpr", "gdpr:write",
            body=ERASE_BODY, query=(("confirm", {"type": "string", "format": "uuid"}),), response=ERASED)
@authed()
async def erase(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body, optional=True) if request.has_body() else None
    return json_response(await gdpr().erase(who, body, query_one(request, "confirm")))
