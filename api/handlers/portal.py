"""The sub-account runtime API (/sub-account-api/*), called by the embedded portal with the session
token from the exchange (`Authorization: Bearer mtp_...`). Every call goes through the same services
as the main API with a Principal carrying the sub-account, so validation, the SSRF policy and limits
are the main API's, and another sub-account's ids answer 404."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.handlers.endpoints import ENDPOINT_BODY
from api.handlers.events import EVENT, EVENT_ATTEMPTS, EVENT_CREATED, EVENT_SUMMARY, STATUS
from api.http import header, json_response, query_one, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, Authed, limited, route_id
from control.errors import BadRequest
from control.services.endpoints import EndpointService
from control.services.events import EventService
from control.services.lifecycle import LifecycleService
from control.services.portal import PortalAuthenticator, bearer, session_info
from control.services.portal_ui import test_event
from control.services.principal import Principal
from control.validate import limit_param, need_object

PREFIX = "/sub-account-api"
TAG = "sub-account-api"
AUTH_HEADER = (("Authorization", True),)
UNAUTHORIZED = {401: "Missing, expired or revoked portal session (SESSION_EXPIRED)"}
# What a sub-account's customer may set on its endpoints: plain HTTP push. Storage and broker
# destinations, mTLS, transformations and delivery tuning stay the workspace's to decide.
PORTAL_ENDPOINT_FIELDS = ("url", "eventTypes", "description", "filter", "customHeaders", "signingSecret")
PORTAL_ENDPOINT_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["url", "eventTypes"],
    "properties": {k: ENDPOINT_BODY["properties"][k] for k in PORTAL_ENDPOINT_FIELDS}}
_STR: dict[str, Any] = {"type": "string"}
SESSION_INFO = ROUTES.component("PortalSessionInfo", {
    "type": "object", "required": ["sessionId", "subAccount", "ttlSeconds", "expiresAt"],
    "properties": {"sessionId": _STR, "returnURL": nullable(_STR), "ttlSeconds": {"type": "integer"},
                   "expiresAt": _STR,
                   "subAccount": {"type": "object", "required": ["id", "name", "subID"],
                                  "properties": {"id": _STR, "name": _STR, "subID": _STR}}}})


def portal() -> PortalAuthenticator:
    return ctx().service(PortalAuthenticator)


def session_authed(fn: Authed) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate the portal session (sliding its expiry), then run `fn` under the API's rate
    limit and error handling. No API-key permission: the session admits exactly these routes."""
    async def handler(request: Request) -> Response:
        who, _ = await portal().authenticate(bearer(header(request, b"authorization")), request.client_ip)
        return await limited(request, who, fn, None)
    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


@ROUTES.add("POST", f"{PREFIX}/auth/exchange", "Exchange a one-time portal token for a session token", TAG, None,
            body={"type": "object", "required": ["token"], "additionalProperties": False,
                  "properties": {"token": _STR}},
            response={"allOf": [SESSION_INFO, {"type": "object", "required": ["token"],
                                               "properties": {"token": _STR}}]},
            responses={401: "Invalid, used or expired exchange token"})
async def exchange(request: Request) -> Response:
    body = need_object(await read_json(request, ctx().max_body))
    unknown = sorted(set(body) - {"token"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    return json_response(await portal().exchange(body.get("token"), request.client_ip))


@ROUTES.add("GET", f"{PREFIX}/session", "The current portal session", TAG, None, headers=AUTH_HEADER,
            response=SESSION_INFO, responses=UNAUTHORIZED)
async def current_session(request: Request) -> Response:
    _, row = await portal().authenticate(bearer(header(request, b"authorization")), request.client_ip)
    return json_response(session_info(row))


def endpoints() -> EndpointService:
    return ctx().service(EndpointService)


def events() -> EventService:
    return ctx().service(EventService)


@ROUTES.add("GET", f"{PREFIX}/endpoints", "The sub-account's endpoints", TAG, None, query=PAGE,
            headers=AUTH_HEADER, responses=UNAUTHORIZED)
@session_authed
async def list_endpoints(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                                query_one(request, "cursor")))


@ROUTES.add("POST", f"{PREFIX}/endpoints", "Create an endpoint for the sub-account", TAG, None, 201,
            body=PORTAL_ENDPOINT_BODY, headers=AUTH_HEADER, responses=UNAUTHORIZED)
@session_authed
async def create_endpoint(request: Request, who: Principal) -> Response:
    body = portal_fields(await read_json(request, ctx().max_body))
    return json_response(await endpoints().create(who, body), 201)


@ROUTES.add("GET", f"{PREFIX}/endpoints/{{id}}", "One of the sub-account's endpoints", TAG, None,
            headers=AUTH_HEADER, responses=UNAUTHORIZED)
@session_authed
async def get_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().get(who, route_id(request)))


def portal_fields(body: Any) -> dict[str, Any]:
    data = need_object(body)
    unknown = sorted(set(data) - set(PORTAL_ENDPOINT_FIELDS))
    if unknown:
        raise BadRequest(f"{unknown[0]}: not available in the portal")
    return data


# Beyond the guide's list, what the portal UI offers on an endpoint: edit, pause/resume, a test event.
@ROUTES.add("PATCH", f"{PREFIX}/endpoints/{{id}}", "Change one of the sub-account's endpoints "
            "(signingSecret null: a new secret, shown in this answer only)", TAG, None,
            body={**PORTAL_ENDPOINT_BODY, "required": []}, headers=AUTH_HEADER, responses=UNAUTHORIZED)
@session_authed
async def update_endpoint(request: Request, who: Principal) -> Response:
    body = portal_fields(await read_json(request, ctx().max_body))
    return json_response(await endpoints().update(who, route_id(request), body))


@ROUTES.add("POST", f"{PREFIX}/endpoints/{{id}}/pause", "Pause one of the sub-account's endpoints (events wait)",
            TAG, None, headers=AUTH_HEADER, responses=UNAUTHORIZED)
@session_authed
async def pause_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().set_status(who, route_id(request), "paused"))


@ROUTES.add("POST", f"{PREFIX}/endpoints/{{id}}/resume", "Resume one of the sub-account's endpoints", TAG, None,
            headers=AUTH_HEADER, responses=UNAUTHORIZED)
@session_authed
async def resume_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().set_status(who, route_id(request), "active"))


@ROUTES.add("POST", f"{PREFIX}/endpoints/{{id}}/test", "Send a `mittr.test` event to this endpoint only", TAG,
            None, 201, headers=AUTH_HEADER, response=EVENT_CREATED, responses=UNAUTHORIZED)
@session_authed
async def test_endpoint(request: Request, who: Principal) -> Response:
    endpoint = await endpoints().get(who, route_id(request))      # 404 unless it is this sub-account's
    return json_response(await events().ingest(who, test_event(endpoint["id"]), [uuid.UUID(endpoint["id"])]), 201)


@ROUTES.add("GET", f"{PREFIX}/events", "The sub-account's events", TAG, None, query=(("status", STATUS), *PAGE),
            headers=AUTH_HEADER, response=list_of(EVENT_SUMMARY), responses=UNAUTHORIZED)
@session_authed
async def list_events(request: Request, who: Principal) -> Response:
    return json_response(await events().list(who, query_one(request, "status"),
                                             limit_param(query_one(request, "limit"), 20, 100),
                                             query_one(request, "cursor")))


@ROUTES.add("GET", f"{PREFIX}/events/{{id}}", "One of the sub-account's events with its attempts", TAG, None,
            headers=AUTH_HEADER, response=EVENT, responses=UNAUTHORIZED)
@session_authed
async def get_event(request: Request, who: Principal) -> Response:
    return json_response(await events().get(who, route_id(request)))


@ROUTES.add("POST", f"{PREFIX}/events/{{id}}/retry", "Re-queue a failed/dead event of the sub-account", TAG, None,
            headers=AUTH_HEADER, response=EVENT,
            responses={**UNAUTHORIZED, 409: "INVALID_STATE: the event is not failed or dead"})
@session_authed
async def retry_event(request: Request, who: Principal) -> Response:
    return json_response(await ctx().service(LifecycleService).replay(who, route_id(request)))


@ROUTES.add("GET", f"{PREFIX}/events/{{id}}/deliveries", "An event's attempts and pending deliveries", TAG, None,
            headers=AUTH_HEADER, response=EVENT_ATTEMPTS, responses=UNAUTHORIZED)
@session_authed
async def event_deliveries(request: Request, who: Principal) -> Response:
    return json_response(await events().deliveries(who, route_id(request)))
