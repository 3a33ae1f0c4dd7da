"""Projects: list, create, update, delete (X-Project-ID then scopes every other family to one)."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, query_one, read_json
from api.routes import list_of
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.principal import Principal
from control.services.projects import ENVIRONMENTS, NAME_MAX, ProjectService, parse_force
from control.validate import limit_param

PROJECT_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": r"\S"},
    "environment": {"type": "string", "enum": list(ENVIRONMENTS)}}}
PROJECT = ROUTES.component("Project", {
    "type": "object", "required": ["id", "name", "environment", "createdAt", "updatedAt"],
    "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
                   "environment": {"type": "string", "enum": list(ENVIRONMENTS)},
                   "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}}})


def projects() -> ProjectService:
    return ctx().service(ProjectService)


@ROUTES.add("GET", "/api/v1/projects", "List projects (under X-Project-ID: that one only)", "projects",
            "projects:read", query=PAGE, response=list_of(PROJECT))
@authed("projects:read")
async def list_projects(request: Request, who: Principal) -> Response:
    out = await projects().list(who, limit_param(query_one(request, "limit"), 20, 100), query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("POST", "/api/v1/projects", "Create a project", "projects", "projects:write", 201,
            body={**PROJECT_BODY, "required": ["name"]}, response=PROJECT)
@authed("projects:write")
async def create_project(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await projects().create(who, body), 201)


@ROUTES.add("GET", "/api/v1/projects/{id}", "Get a project", "projects", "projects:read", response=PROJECT)
@authed("projects:read")
async def get_project(request: Request, who: Principal) -> Response:
    return json_response(await projects().get(who, route_id(request)))


@ROUTES.add("PATCH", "/api/v1/projects/{id}", "Rename a project or change its environment", "projects",
            "projects:write", body=PROJECT_BODY, response=PROJECT)
@authed("projects:write")
async def update_project(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await projects().update(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/projects/{id}",
            "Delete a project; refused while it has endpoints or undelivered events unless force=true, "
            "which deletes its endpoints (their pending deliveries end dead), event types and bound API keys",
            "projects", "projects:write", 204, query=(("force", {"type": "boolean"}),),
            responses={409: "INVALID_STATE: the project still has endpoints or undelivered events"})
@authed("projects:write")
async def delete_project(request: Request, who: Principal) -> Response:
    await projects().delete(who, route_id(request), parse_force(query_one(request, "force")))
    return empty_response(204)
