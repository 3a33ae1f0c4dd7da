"""The audit log: who changed what, when and from where (admins only)."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response, query_one
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed
from control.services.audit import AuditLogService
from control.services.principal import Principal
from control.validate import limit_param

_TEXT = {"type": "string"}
AUDIT_ENTRY = ROUTES.component("AuditLogEntry", {
    "type": "object",
    "required": ["id", "actor", "action", "resource", "resourceId", "ip", "before", "after", "projectId",
                 "createdAt"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "actor": {"type": "object", "required": ["type", "id", "label"], "properties": {
            "type": {"type": "string", "enum": ["user", "api_key", "system"]},
            "id": nullable(_TEXT), "label": _TEXT}},
        "action": _TEXT, "resource": _TEXT, "resourceId": nullable(_TEXT), "ip": nullable(_TEXT),
        "before": {"nullable": True}, "after": {"nullable": True}, "projectId": nullable(_TEXT),
        "createdAt": _TEXT}})
FILTERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("resource", {"type": "string", "maxLength": 64}), ("action", {"type": "string", "maxLength": 64}))


@ROUTES.add("GET", "/api/v1/audit-logs",
            "List the audit log, newest first (filter by resource and action; under X-Project-ID that "
            "project's entries)", "audit-logs", "audit-logs:read", query=(*PAGE, *FILTERS),
            response=list_of(AUDIT_ENTRY))
@authed()
async def list_audit_logs(request: Request, who: Principal) -> Response:
    out = await ctx().service(AuditLogService).list(
        who, limit_param(query_one(request, "limit"), 50, 100), query_one(request, "cursor"),
        query_one(request, "resource"), query_one(request, "action"))
    return json_response(out)
