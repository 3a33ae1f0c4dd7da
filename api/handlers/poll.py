"""Pull delivery: long-poll a poll-mode endpoint for its events, then acknowledge them."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response, query_one, read_json
from api.routes import nullable
from api.routing import ROUTES, authed
from control.services.poll import MAX_ACK_IDS, MAX_LIMIT, MAX_TIMEOUT_S, PollService
from control.services.principal import Principal

ACK_BODY: dict[str, Any] = {"type": "object", "required": ["endpoint_id", "event_ids"], "additionalProperties": False,
                            "properties": {
    "endpoint_id": {"type": "string", "format": "uuid"},
    "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "minItems": 1,
                  "maxItems": MAX_ACK_IDS}}}

POLLED = ROUTES.component("PolledEvent", {
    "type": "object", "required": ["id", "eventType", "payload", "headers", "createdAt", "attempts"],
    "properties": {"id": {"type": "string", "description": "the event id (acknowledge with it)"},
                   "eventType": nullable({"type": "string"}), "payload": {"type": "object"},
                   "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                   "createdAt": {"type": "string", "format": "date-time"},
                   "attempts": {"type": "integer", "description": "attempts recorded before (0 unless the "
                                                                  "endpoint used to push)"}}})
POLLED_LIST: dict[str, Any] = {"type": "object", "required": ["data", "count"], "properties": {
    "data": {"type": "array", "items": POLLED}, "count": {"type": "integer"}}}
ACKED: dict[str, Any] = {"type": "object", "required": ["acknowledged"], "properties": {
    "acknowledged": {"type": "integer", "description": "deliveries that became delivered by this call"}}}


def polls() -> PollService:
    return ctx().service(PollService)


@ROUTES.add("GET", "/api/v1/poll", "Long-poll a poll-mode endpoint for events (blocks up to `timeout` s)",
            "polling", "poll:read",
            query=(("endpoint_id", {"type": "string", "format": "uuid"}, True),
                   ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}),
                   ("timeout", {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT_S, "default": 30})),
            response=POLLED_LIST,
            responses={400: "Bad parameter", 409: "INVALID_STATE: the endpoint is not in poll mode"})
@authed()
async def poll_events(request: Request, who: Principal) -> Response:
    out = await polls().poll(who, query_one(request, "endpoint_id"), query_one(request, "limit"),
                             query_one(request, "timeout"))
    return json_response(out)


@ROUTES.add("POST", "/api/v1/poll/ack", "Acknowledge polled events (they become delivered)", "polling",
            "poll:write", body=ACK_BODY, response=ACKED,
            responses={400: "Bad body", 409: "INVALID_STATE: the endpoint is not in poll mode"})
@authed()
async def ack_events(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await polls().ack(who, body))
