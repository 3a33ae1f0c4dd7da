"""Events: create (one or a batch), list, get, edit, replay, batch retry, and the attempts of one event."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import header, json_response, query_one, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.waiting import PENDING_STATUSES, REASONS
from control.services.batch import MAX_BATCH, BatchService
from control.services.events import EVENT_STATUSES, MAX_ATTEMPTS_CAP, MAX_DELAY_SECONDS, EventService
from control.services.lifecycle import RETRY_LIMIT_MAX, LifecycleService
from control.services.principal import Principal
from control.validate import RESERVED_HEADERS, limit_param

# What control/validate.py enforces (headers_field, url_field, reachable_url), stated for clients.
# Names go in patternProperties (not only propertyNames, which generators such as schemathesis's may
# not honour), with additionalProperties false: a name outside the token grammar is refused.
HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object", "maxProperties": 50,
    "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$", "not": {"enum": sorted(RESERVED_HEADERS)}},
    "patternProperties": {"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$": {
        "type": "string", "maxLength": 8192, "pattern": "^[^\\r\\n\\x00]*$"}},
    "additionalProperties": False,
    "description": "extra request headers; names Mittr sets itself (in any case) are refused",
    "example": {"X-Tenant": "acme"}}
URL_SCHEMA: dict[str, Any] = {
    "type": "string", "maxLength": 2048,
    "pattern": "^https?://[A-Za-z][A-Za-z0-9-]*(\\.[A-Za-z0-9-]+)*"
               "(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/\\S*)?$",
    "description": "an http(s) URL without credentials; literal internal addresses and localhost are "
                   "refused (engine.allow_private_networks), names are checked when delivering",
    "example": "https://api.customer.com/webhooks"}
IDEMPOTENCY_KEY: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "\\S",
                                   "description": "unique per workspace; a repeat answers 409 CONFLICT",
                                   "example": "order-123-created"}
_EVENT_COMMON: dict[str, Any] = {
    "payload": {"type": "object", "example": {"orderId": "ord_4a8f", "amount": 9900, "currency": "USD"}},
    "headers": HEADERS_SCHEMA,
    "maxAttempts": {"type": "integer", "minimum": 1,
                    "description": f"values above {MAX_ATTEMPTS_CAP} are clamped to {MAX_ATTEMPTS_CAP}"},
    "priority": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
    "delaySeconds": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_SECONDS, "default": 0}}
EVENT_BODY: dict[str, Any] = {"oneOf": [
    {"title": "DirectEvent", "type": "object", "required": ["destination", "payload"],
     "additionalProperties": False, "properties": {"destination": URL_SCHEMA, **_EVENT_COMMON}},
    {"title": "TypedEvent", "type": "object", "required": ["eventType", "payload"], "additionalProperties": False,
     "properties": {"eventType": {"type": "string", "minLength": 1, "maxLength": 256, "example": "order.created"},
                    **_EVENT_COMMON}}],
    "description": "either destination (direct delivery) or eventType (fan-out to subscribed endpoints)"}
BATCH_BODY: dict[str, Any] = {
    "type": "object", "required": ["events"], "additionalProperties": False,
    "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {
        "type": "object", "required": ["idempotencyKey", "destination", "payload"], "additionalProperties": False,
        "properties": {"idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 255},
                       "destination": URL_SCHEMA, "payload": {"type": "object"},
                       "headers": HEADERS_SCHEMA, "maxAttempts": {"type": "integer", "minimum": 1}}}}}}
EDIT_BODY: dict[str, Any] = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "anyOf": [{"required": [name]} for name in ("destination", "payload", "headers", "replay")],
    "example": {"destination": "https://new-url.example.com/webhooks",
                "payload": {"orderId": "ord_4a8f", "amount": 9900, "corrected": True}, "replay": True},
    "properties": {"destination": URL_SCHEMA, "payload": {"type": "object"}, "headers": HEADERS_SCHEMA,
                   "replay": {"type": "boolean"}}}
RETRY_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"eventIds": {"type": "array", "minItems": 1, "maxItems": RETRY_LIMIT_MAX,
                                "items": {"type": "string", "format": "uuid"}},
                   "status": {"type": "string", "enum": ["failed", "dead"]},
                   "endpointId": {"type": "string", "format": "uuid"},
                   "limit": {"type": "integer", "minimum": 1, "maximum": RETRY_LIMIT_MAX}}}

STATUS = {"type": "string", "enum": list(EVENT_STATUSES)}
TIME = {"type": "string", "format": "date-time"}
ATTEMPT = ROUTES.component("DeliveryAttempt", {
    "type": "object",
    "required": ["id", "eventId", "endpointId", "attemptNumber", "statusCode", "responseBody", "error",
                 "errorCategory", "outcome", "durationMs", "processingOverheadUs", "attemptedAt"],
    "properties": {
        "id": {"type": "string"}, "eventId": {"type": "string"}, "endpointId": nullable({"type": "string"}),
        "attemptNumber": {"type": "integer"}, "statusCode": nullable({"type": "integer"}),
        "responseBody": {"type": "string", "description": "the receiver's answer, truncated to "
                                                          "engine.response_body_limit bytes (default 4096)"},
        "error": {"type": "string"}, "errorCategory": nullable({"type": "string"}),
        "outcome": {"type": "string", "enum": ["success", "failure", "timeout"]},
        "durationMs": {"type": "integer"}, "processingOverheadUs": {"type": "integer"}, "attemptedAt": TIME}})
PENDING = ROUTES.component("PendingDelivery", {
    "type": "object",
    "required": ["endpointId", "destination", "status", "attempts", "nextAttemptAt", "waitingReason"],
    "properties": {
        "endpointId": nullable({"type": "string"}),
        "destination": nullable({"type": "string", "description": "direct events only"}),
        "status": {"type": "string", "enum": list(PENDING_STATUSES)}, "attempts": {"type": "integer"},
        "nextAttemptAt": nullable({**TIME, "description": "earliest start of the next attempt (in the past: "
                                                          "due now); null while in flight or paused"}),
        "waitingReason": {"type": "string", "enum": list(REASONS), "description": (
            "in_flight: an attempt is under way; endpoint_paused: until the endpoint is resumed; "
            "circuit_open: the endpoint's breaker is open or probing; retry_scheduled: a retry's backoff; "
            "delayed: delaySeconds; awaiting_poll: for the poll-mode endpoint's consumer; rate_limited: "
            "for a token of the endpoint's rateLimitPerSec; queued: due, for a shard to send it")}}})
PENDING_LIST: dict[str, Any] = {"type": "array", "items": PENDING,
                                "description": "the deliveries not yet delivered nor dead, and why each waits"}
_SUMMARY_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "idempotencyKey": {"type": "string"}, "destination": nullable({"type": "string"}),
    "eventType": nullable({"type": "string"}), "status": STATUS, "attempts": {"type": "integer"},
    "maxAttempts": {"type": "integer", "maximum": MAX_ATTEMPTS_CAP}, "priority": {"type": "integer"},
    "createdAt": TIME,
    "subAccountId": nullable({"type": "string", "description": "the sub-account the event belongs to "
                              "(X-Sub-Account-ID, or a portal session's); null for the workspace's own"})}
EVENT_SUMMARY = ROUTES.component("EventSummary", {
    "type": "object", "required": list(_SUMMARY_PROPS),
    "properties": {**_SUMMARY_PROPS, "deliveredAt": nullable(TIME)}})
EVENT_CREATED = ROUTES.component("EventCreated", {
    "type": "object", "required": list(_SUMMARY_PROPS),
    "properties": {**_SUMMARY_PROPS, "delaySeconds": {"type": "integer"}}})
EVENT = ROUTES.component("Event", {
    "type": "object", "required": [*_SUMMARY_PROPS, "payload", "headers", "deliveryAttempts", "pending"],
    "properties": {**_SUMMARY_PROPS, "deliveredAt": nullable(TIME), "updatedAt": TIME,
                   "delaySeconds": {"type": "integer"}, "payload": {"type": "object"}, "headers": HEADERS_SCHEMA,
                   "deliveryAttempts": {"type": "array", "items": ATTEMPT}, "pending": PENDING_LIST}})
BATCH_CREATED: dict[str, Any] = {
    "type": "object", "required": ["events", "count"],
    "properties": {"count": {"type": "integer"}, "events": {"type": "array", "items": {
        "type": "object", "required": ["id", "status", "createdAt"],
        "properties": {"id": {"type": "string"}, "status": STATUS, "createdAt": TIME}}}}}
RETRIED: dict[str, Any] = {
    "type": "object", "required": ["retried", "eventIds"],
    "properties": {"retried": {"type": "integer"}, "eventIds": {"type": "array", "items": {"type": "string"}}}}
EVENT_ATTEMPTS: dict[str, Any] = {
    "type": "object", "required": ["deliveries", "count", "pending"],
    "properties": {"deliveries": {"type": "array", "items": ATTEMPT}, "count": {"type": "integer"},
                   "pending": PENDING_LIST}}


def events() -> EventService:
    return ctx().service(EventService)


def lifecycle() -> LifecycleService:
    return ctx().service(LifecycleService)


@ROUTES.add("POST", "/api/v1/events", "Create an event for delivery", "events", "events:write", 201,
            body=EVENT_BODY, headers=(("X-Idempotency-Key", True, IDEMPOTENCY_KEY),), response=EVENT_CREATED,
            responses={402: "Monthly message quota exceeded", 409: "Duplicate idempotency key"})
@authed()
async def create_event(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    out = await events().create(who, body, header(request, b"x-idempotency-key"))
    return json_response(out, 201)


@ROUTES.add("POST", "/api/v1/events/batch", f"Create up to {MAX_BATCH} direct-delivery events at once",
            "events", "events:write", 201, body=BATCH_BODY, response=BATCH_CREATED,
            responses={400: "VALIDATION_ERROR or BATCH_TOO_LARGE; nothing stored",
                       402: "Monthly message quota exceeded; nothing stored",
                       409: "DUPLICATE_EVENT: an idempotency key exists or repeats; nothing stored"})
@authed()
async def create_batch(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await ctx().service(BatchService).create(who, body), 201)


@ROUTES.add("POST", "/api/v1/events/batch/retry", "Re-queue failed/dead events by ids, status or endpoint",
            "events", "events:write", body=RETRY_BODY, response=RETRIED)
@authed()
async def retry_batch(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await lifecycle().retry(who, body))


@ROUTES.add("GET", "/api/v1/events", "List events", "events", "events:read",
            query=(("status", STATUS), *PAGE), response=list_of(EVENT_SUMMARY))
@authed()
async def list_events(request: Request, who: Principal) -> Response:
    out = await events().list(who, query_one(request, "status"),
                              limit_param(query_one(request, "limit"), 20, 100), query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/events/{id}", "Get an event with its delivery attempts", "events", "events:read",
            response=EVENT)
@authed()
async def get_event(request: Request, who: Principal) -> Response:
    return json_response(await events().get(who, route_id(request)))


@ROUTES.add("PATCH", "/api/v1/events/{id}", "Edit a failed/dead event; optionally replay it", "events",
            "events:write", body=EDIT_BODY, response=EVENT,
            responses={409: "INVALID_STATE: the event is not failed or dead"})
@authed()
async def edit_event(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await lifecycle().edit(who, route_id(request), body))


@ROUTES.add("POST", "/api/v1/events/{id}/replay", "Re-queue a failed/dead event with reset attempts", "events",
            "events:write", response=EVENT, responses={409: "INVALID_STATE: the event is not failed or dead"})
@authed()
async def replay_event(request: Request, who: Principal) -> Response:
    return json_response(await lifecycle().replay(who, route_id(request)))


@ROUTES.add("GET", "/api/v1/events/{id}/deliveries", "Every attempt for an event, and its pending deliveries",
            "deliveries", "events:read", response=EVENT_ATTEMPTS)
@authed()
async def event_deliveries(request: Request, who: Principal) -> Response:
    return json_response(await events().deliveries(who, route_id(request)))
