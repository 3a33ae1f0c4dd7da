"""Endpoints: create, list, get, update, delete, pause, resume, and their configuration versions."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.handlers.events import HEADERS_SCHEMA, URL_SCHEMA
from api.http import empty_response, json_response, query_one, read_json
from api.routes import nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.endpoint_versions import EndpointVersionService
from control.services.endpoints import DAY_MS, DELIVERY_MODES, EndpointService
from control.services.principal import Principal
from control.validate import limit_param

# control/policy/destinations._relative_path: relative, no backslash or NUL, no empty, . or .. segments.
_REL_PATH: dict[str, Any] = {"type": "string", "maxLength": 512, "pattern": "^(?!/)[^\\\\\\x00]*$",
                             "not": {"pattern": "(^|/)\\.{1,2}(/|$)|//"}}
_BATCHING: dict[str, Any] = {
    "gzip": {"type": "boolean", "description": "write .ndjson.gz (default false)"},
    "batchMaxRecords": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "default 500"},
    "batchWindowMs": {"type": "integer", "minimum": 0, "maximum": 60000,
                      "description": "how long a batch collects records (default 200)"},
    "prefix": {**_REL_PATH, "description": "key prefix: prefix/yyyy/mm/dd/hh/<batch-id>.ndjson[.gz]"}}
_HTTP_URL = {"type": "string", "maxLength": 2048, "pattern": "^https?://[^/?#@:]+"}
STORAGE_CONFIG: dict[str, Any] = {"oneOf": [
    {"type": "object", "required": ["type", "directory"], "additionalProperties": False,
     "description": "Files under the server's engine.storage_root, fsynced before they count as delivered "
                    "(refused when engine.storage_root is not set)",
     "properties": {"type": {"type": "string", "enum": ["filesystem"]},
                    "directory": {**_REL_PATH, "description": "relative to engine.storage_root"}, **_BATCHING}},
    {"type": "object", "required": ["type", "bucket", "accessKeyId", "secretAccessKey"], "additionalProperties": False,
     "description": "Any S3-compatible store; secretAccessKey is sealed at rest and never shown (omit it in "
                    "a PATCH to keep it)",
     "properties": {"type": {"type": "string", "enum": ["s3"]},
                    "bucket": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"},
                    "region": {"type": "string", "maxLength": 64, "pattern": "^[a-z0-9-]+$", "default": "us-east-1"},
                    "endpointUrl": _HTTP_URL, "accessKeyId": {"type": "string", "maxLength": 256},
                    "secretAccessKey": {"type": "string", "maxLength": 256, "writeOnly": True}, **_BATCHING}}]}
_BROKER_NAME = {"type": "string", "maxLength": 255, "pattern": "^[A-Za-z0-9._/-]*$"}


def _broker_url(*schemes: str) -> dict[str, Any]:
    return {"type": "string", "maxLength": 2048, "pattern": f"^({'|'.join(schemes)})://[^/?#]*[^/?#@:]",
            "description": "connection URL; sealed at rest, shown with its password masked (omit it in a PATCH "
                           "to keep it)"}


BROKER_CONFIG: dict[str, Any] = {"oneOf": [
    {"type": "object", "required": ["type", "url", "routingKey"], "additionalProperties": False,
     "description": "RabbitMQ (amqp://, amqps://): persistent messages, publisher confirms",
     "properties": {"type": {"type": "string", "enum": ["rabbitmq"]}, "url": _broker_url("amqp", "amqps"),
                    "exchange": _BROKER_NAME, "routingKey": {"type": "string", "maxLength": 255}}},
    {"type": "object", "required": ["type", "url", "subject"], "additionalProperties": False,
     "description": "NATS JetStream (nats://, tls://): a stream must capture the subject; counted on its ack",
     "properties": {"type": {"type": "string", "enum": ["nats"]}, "url": _broker_url("nats", "tls"),
                    "subject": {"type": "string", "maxLength": 255, "pattern": "^[A-Za-z0-9_.-]+$"}}},
    {"type": "object", "required": ["type", "url", "stream"], "additionalProperties": False,
     "description": "Redis Streams (redis://, rediss://): XADD with an approximate MAXLEN",
     "properties": {"type": {"type": "string", "enum": ["redis"]}, "url": _broker_url("redis", "rediss"),
                    "stream": {"type": "string", "maxLength": 255, "pattern": "^\\S+$"},
                    "maxLen": {"type": "integer", "minimum": 1, "maximum": 100_000_000,
                               "description": "default 100000"}}}]}

# What control/services/endpoints.py (FIELDS, _check_whole, _destination) enforces, stated for
# clients. Optional fields also take null (the default, or in a PATCH: back to the default).
_NON_BLANK = "\\S"
JSONPATH: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 512,
    "pattern": "^\\$(\\.[A-Za-z_][A-Za-z0-9_-]*|\\[-?[0-9]+\\]"
               "|\\[('([^'\\\\]|\\\\[\\\\'\"ntr/])*'|\"([^\"\\\\]|\\\\[\\\\'\"ntr/])*\")\\])*$",
    "description": "a JSONPath from the event's root: $, .name, [index], ['quoted name']",
    "example": "$.data.orderId"}
_IPV4 = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (f"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}"
         f"|({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}"
         f"|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))")
CIDRS: dict[str, Any] = nullable({
    "type": "array", "maxItems": 100, "example": ["34.120.0.0/16"],
    "description": "CIDR blocks (an address alone is its /32 or /128); with private networks refused "
                   "(engine.allow_private_networks), an allowedCidrs entry inside a refused range is refused",
    "items": {"type": "string", "maxLength": 64, "anyOf": [
        {"pattern": f"^{_IPV4}(/(3[0-2]|[12]?[0-9]))?$"},
        {"pattern": f"^{_IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$"}]}})
_ORDERED = ["gt", "gte", "lt", "lte"]
_ANY_OPERATOR = ["eq", "ne", "contains", *_ORDERED, "in", "nin", "regex", "exists"]
# The branches only tie `value` to the operator; field and operator are stated once.
FILTER_CONDITION: dict[str, Any] = {
    "type": "object", "required": ["field", "operator"],
    "properties": {"field": JSONPATH, "operator": {"type": "string", "enum": _ANY_OPERATOR}, "value": {}},
    "oneOf": [
        {"required": ["value"], "properties": {"operator": {"enum": ["eq", "ne", "contains"]}}},
        {"required": ["value"], "properties": {"operator": {"enum": _ORDERED},
                                               "value": {"oneOf": [{"type": "number"}, {"type": "string"}]}}},
        {"required": ["value"], "properties": {"operator": {"enum": ["in", "nin"]},
                                               "value": {"type": "array", "items": {}}}},
        {"required": ["value"], "properties": {"operator": {"enum": ["regex"]}, "value": {
            "type": "string", "description": "a regular expression (linear-time subset)"}}},
        {"properties": {"operator": {"enum": ["exists"]}, "value": {"type": "boolean", "default": True}}}],
    "example": {"field": "$.data.amount", "operator": "gte", "value": 10000}}
_ENDPOINT_FIELDS: dict[str, Any] = {
    "url": {**URL_SCHEMA, "example": "https://api.example.com/webhooks"},
    "eventTypes": {"type": "array", "minItems": 1, "maxItems": 100, "example": ["order.created", "payment.*"],
                   "items": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": _NON_BLANK},
                   "description": "event types to receive; * is a wildcard"},
    "description": nullable({"type": "string", "maxLength": 2000, "example": "Production order notifications"}),
    "filter": nullable({"type": "array", "maxItems": 32, "items": FILTER_CONDITION,
                        "description": "every condition must hold (at most 16384 bytes of JSON)"}),
    "transformation": nullable({"type": "string", "maxLength": 65536,
                                "description": "JavaScript defining handler(webhook); refused if it does not compile"}),
    "fifo": nullable({"type": "boolean", "default": False}),
    "fifoPartitionKey": nullable(JSONPATH),
    "maxRetries": nullable({"type": "integer", "minimum": 1, "maximum": 25, "default": 5}),
    "retryBackoffMs": nullable({"type": "integer", "minimum": 0, "maximum": DAY_MS, "default": 1000}),
    "retryBackoffMax": nullable({"type": "integer", "minimum": 0, "maximum": 7 * DAY_MS, "default": DAY_MS,
                                 "description": "not less than retryBackoffMs"}),
    "retryBackoffMult": nullable({"type": "number", "minimum": 1.0, "maximum": 100.0, "default": 2.0}),
    "timeoutMs": nullable({"type": "integer", "minimum": 100, "maximum": 300_000, "default": 30_000}),
    "rateLimitPerSec": nullable({"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0,
                                 "description": "0 = unlimited; capped by the plan"}),
    "circuitThreshold": nullable({"type": "integer", "minimum": 0, "maximum": 10_000, "default": 5}),
    "circuitResetMs": nullable({"type": "integer", "minimum": 100, "maximum": DAY_MS, "default": 300_000}),
    "customHeaders": nullable(HEADERS_SCHEMA),
    "allowedCidrs": CIDRS, "blockedCidrs": CIDRS,
    "deliveryMode": nullable({"type": "string", "enum": list(DELIVERY_MODES), "default": "push",
                              "description": "push: HTTP POST to url; poll: fetched by the consumer; storage: "
                                             "NDJSON objects per storageConfig; broker: messages per brokerConfig"}),
    "storageConfig": nullable({**STORAGE_CONFIG, "description": "only with deliveryMode storage"}),
    "brokerConfig": nullable({**BROKER_CONFIG, "description": "only with deliveryMode broker"}),
    "signingSecret": nullable({"type": "string", "minLength": 8, "maxLength": 256, "pattern": _NON_BLANK,
                               "writeOnly": True,
                               "description": "omitted (or null in a PATCH): one is generated and returned once; "
                                              "with standardWebhooks it must be a whsec_ base64 key"}),
    "mtlsCert": nullable({"type": "string", "maxLength": 65536, "writeOnly": True,
                          "description": "PEM client certificate; given together with mtlsKey"}),
    "mtlsKey": nullable({"type": "string", "maxLength": 65536, "writeOnly": True,
                         "description": "PEM private key matching mtlsCert"}),
    "standardWebhooks": nullable({"type": "boolean", "default": False,
                                  "description": "also sign with the Standard Webhooks headers"}),
}
ENDPOINT_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": _ENDPOINT_FIELDS}
# Create: eventTypes always; url for push and poll; storage and broker name their own destination.
CREATE_ENDPOINT_BODY: dict[str, Any] = {
    **ENDPOINT_BODY, "required": ["eventTypes"],
    "properties": {**_ENDPOINT_FIELDS, "eventTypes": _ENDPOINT_FIELDS["eventTypes"]},
    "oneOf": [
        {"title": "PushOrPoll", "required": ["url"],
         "properties": {"deliveryMode": nullable({"type": "string", "enum": ["push", "poll"]}),
                        "storageConfig": {"nullable": True, "enum": [None]},
                        "brokerConfig": {"nullable": True, "enum": [None]}}},
        # storageConfig / brokerConfig themselves are described once, in properties.
        {"title": "Storage", "required": ["deliveryMode", "storageConfig"],
         "properties": {"deliveryMode": {"type": "string", "enum": ["storage"]}, "storageConfig": {"type": "object"},
                        "brokerConfig": {"nullable": True, "enum": [None]}}},
        {"title": "Broker", "required": ["deliveryMode", "brokerConfig"],
         "properties": {"deliveryMode": {"type": "string", "enum": ["broker"]}, "brokerConfig": {"type": "object"},
                        "storageConfig": {"nullable": True, "enum": [None]}}}],
    "example": {"url": "https://api.example.com/webhooks", "eventTypes": ["order.created", "payment.*"],
                "description": "Production order notifications", "maxRetries": 5, "timeoutMs": 30000,
                "rateLimitPerSec": 100, "customHeaders": {"Authorization": "Bearer your-token", "X-Source": "mittr"}}}

# control/services/endpoint_versions.version_number: a positive 32-bit integer.
VERSION: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "example": 1}


def endpoints() -> EndpointService:
    return ctx().service(EndpointService)


@ROUTES.add("POST", "/api/v1/endpoints", "Create an endpoint", "endpoints", "endpoints:write", 201,
            body=CREATE_ENDPOINT_BODY)
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
