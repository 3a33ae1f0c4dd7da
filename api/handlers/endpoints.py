"""Endpoints: create, list, get, update, delete, pause, resume, and their configuration versions."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, query_one, read_json
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.endpoint_versions import EndpointVersionService
from control.services.endpoints import EndpointService
from control.services.principal import Principal
from control.validate import limit_param

_BATCHING: dict[str, Any] = {
    "gzip": {"type": "boolean", "description": "write .ndjson.gz (default false)"},
    "batchMaxRecords": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "default 500"},
    "batchWindowMs": {"type": "integer", "minimum": 0, "maximum": 60000,
                      "description": "how long a batch collects records (default 200)"},
    "prefix": {"type": "string", "description": "key prefix: prefix/yyyy/mm/dd/hh/<batch-id>.ndjson[.gz]"}}
STORAGE_CONFIG: dict[str, Any] = {"oneOf": [
    {"type": "object", "required": ["type", "directory"], "additionalProperties": False,
     "description": "Files under the server's engine.storage_root, fsynced before they count as delivered",
     "properties": {"type": {"const": "filesystem"}, "directory": {"type": "string"}, **_BATCHING}},
    {"type": "object", "required": ["type", "bucket", "accessKeyId", "secretAccessKey"], "additionalProperties": False,
     "description": "Any S3-compatible store; secretAccessKey is sealed at rest and never shown (omit it in "
                    "a PATCH to keep it)",
     "properties": {"type": {"const": "s3"}, "bucket": {"type": "string"}, "region": {"type": "string"},
                    "endpointUrl": {"type": "string"}, "accessKeyId": {"type": "string"},
                    "secretAccessKey": {"type": "string", "writeOnly": True}, **_BATCHING}}]}
_BROKER_URL: dict[str, Any] = {"type": "string", "description": "connection URL; sealed at rest, shown with its "
                                                                "password masked (omit it in a PATCH to keep it)"}
BROKER_CONFIG: dict[str, Any] = {"oneOf": [
    {"type": "object", "required": ["type", "url", "routingKey"], "additionalProperties": False,
     "description": "RabbitMQ (amqp://, amqps://): persistent messages, publisher confirms",
     "properties": {"type": {"const": "rabbitmq"}, "url": _BROKER_URL, "exchange": {"type": "string"},
                    "routingKey": {"type": "string"}}},
    {"type": "object", "required": ["type", "url", "subject"], "additionalProperties": False,
     "description": "NATS JetStream (nats://, tls://): a stream must capture the subject; counted on its ack",
     "properties": {"type": {"const": "nats"}, "url": _BROKER_URL, "subject": {"type": "string"}}},
    {"type": "object", "required": ["type", "url", "stream"], "additionalProperties": False,
     "description": "Redis Streams (redis://, rediss://): XADD with an approximate MAXLEN",
     "properties": {"type": {"const": "redis"}, "url": _BROKER_URL, "stream": {"type": "string"},
                    "maxLen": {"type": "integer", "minimum": 1, "description": "default 100000"}}}]}

ENDPOINT_BODY: dict[str, Any] = {"type": "object", "properties": {
    "url": {"type": "string"}, "eventTypes": {"type": "array", "items": {"type": "string"}},
    "description": {"type": "string"}, "filter": {"type": "array", "items": {"type": "object"}},
    "transformation": {"type": "string"}, "fifo": {"type": "boolean"},
    "fifoPartitionKey": {"type": "string"}, "maxRetries": {"type": "integer"},
    "retryBackoffMs": {"type": "integer"}, "retryBackoffMax": {"type": "integer"},
    "retryBackoffMult": {"type": "number"}, "timeoutMs": {"type": "integer"},
    "rateLimitPerSec": {"type": "integer"}, "circuitThreshold": {"type": "integer"},
    "circuitResetMs": {"type": "integer"}, "customHeaders": {"type": "object"},
    "allowedCidrs": {"type": "array", "items": {"type": "string"}},
    "blockedCidrs": {"type": "array", "items": {"type": "string"}},
    "deliveryMode": {"type": "string", "enum": ["push", "poll", "storage", "broker"],
                     "description": "push: HTTP POST to url; poll: fetched by the consumer; storage: NDJSON "
                                    "objects per storageConfig; broker: messages per brokerConfig"},
    "storageConfig": STORAGE_CONFIG, "brokerConfig": BROKER_CONFIG, "signingSecret": {"type": "string"},
    "mtlsCert": {"type": "string"}, "mtlsKey": {"type": "string"}}}

# control/services/endpoint_versions.version_number: a positive 32-bit integer.
VERSION: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "example": 1}


def endpoints() -> EndpointService:
    return ctx().service(EndpointService)


@ROUTES.add("POST", "/api/v1/endpoints", "Create an endpoint", "endpoints", "endpoints:write", 201,
            body={**ENDPOINT_BODY, "required": ["eventTypes"]})    # url too, unless storage or broker
@authed()
async def create_endpoint(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await endpoints().create(who, body), 201)


@ROUTES.add("GET", "/api/v1/endpoints", "List endpoints", "endpoints", "endpoints:read", query=PAGE)
@authed()
async def list_endpoints(request: Request, who: Principal) -> Response:
    out = await endpoints().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                 query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/endpoints/{id}", "Get an endpoint", "endpoints", "endpoints:read")
@authed()
async def get_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().get(who, route_id(request)))


@ROUTES.add("PATCH", "/api/v1/endpoints/{id}", "Update an endpoint", "endpoints", "endpoints:write",
            body=ENDPOINT_BODY)
@authed()
async def update_endpoint(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await endpoints().update(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/endpoints/{id}", "Delete an endpoint (its pending deliveries end dead)",
            "endpoints", "endpoints:write", 204)
@authed()
async def delete_endpoint(request: Request, who: Principal) -> Response:
    await endpoints().delete(who, route_id(request))
    return empty_response(204)


@ROUTES.add("POST", "/api/v1/endpoints/{id}/pause", "Pause delivery (events stay queued)", "endpoints",
            "endpoints:write")
@authed()
async def pause_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().set_status(who, route_id(request), "paused"))


@ROUTES.add("POST", "/api/v1/endpoints/{id}/resume", "Resume delivery", "endpoints", "endpoints:write")
@authed()
async def resume_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await endpoints().set_status(who, route_id(request), "active"))


def versions() -> EndpointVersionService:
    return ctx().service(EndpointVersionService)


# `/versions/diff` is declared before `/versions/{n}`; BlackSheep also tries routes with fewer
# parameters first, and `n` must be an integer anyway.
@ROUTES.add("GET", "/api/v1/endpoints/{id}/versions/diff", "Field-level diff of two versions", "endpoints",
            "endpoints:read", query=(("v1", VERSION, True), ("v2", VERSION, True)))
@authed()
async def diff_endpoint_versions(request: Request, who: Principal) -> Response:
    out = await versions().diff(who, route_id(request), query_one(request, "v1"), query_one(request, "v2"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/endpoints/{id}/versions", "Configuration history, newest first", "endpoints",
            "endpoints:read", query=PAGE)
@authed()
async def list_endpoint_versions(request: Request, who: Principal) -> Response:
    out = await versions().list(who, route_id(request), limit_param(query_one(request, "limit"), 20, 100),
                                query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/endpoints/{id}/versions/{n}", "One version's configuration", "endpoints",
            "endpoints:read", path_params={"n": VERSION})
@authed()
async def get_endpoint_version(request: Request, who: Principal) -> Response:
    return json_response(await versions().get(who, route_id(request), route_id(request, "n")))


@ROUTES.add("POST", "/api/v1/endpoints/{id}/versions/{n}/rollback",
            "Restore a version's configuration (makes a new version)", "endpoints", "endpoints:write",
            path_params={"n": VERSION})
@authed()
async def rollback_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await versions().rollback(who, route_id(request), route_id(request, "n")))
