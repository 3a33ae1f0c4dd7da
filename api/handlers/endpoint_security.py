"""mTLS client certificates and Standard Webhooks ed25519 keys of an endpoint."""

from __future__ import annotations

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, read_json
from api.routing import ROUTES, authed, route_id
from control.services.endpoint_security import EndpointSecurityService
from control.services.principal import Principal

# control/services/mtls.check_pair: a PEM certificate and the unencrypted PEM private key matching it.
MTLS_BODY = {"type": "object", "required": ["certPem", "keyPem"], "properties": {
    "certPem": {"type": "string", "maxLength": 65536, "pattern": "-----BEGIN CERTIFICATE-----",
                "example": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----"},
    "keyPem": {"type": "string", "maxLength": 65536, "pattern": "-----BEGIN ([A-Z]+ )?PRIVATE KEY-----",
               "description": "unencrypted; RSA, EC or Ed25519, matching certPem",
               "example": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----"}}}


def security() -> EndpointSecurityService:
    return ctx().service(EndpointSecurityService)


@ROUTES.add("POST", "/api/v1/endpoints/{id}/mtls", "Set the client certificate presented on delivery",
            "endpoints", "endpoints:write", body=MTLS_BODY)
@authed()
async def set_mtls(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await security().set_mtls(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/endpoints/{id}/mtls", "Remove the client certificate", "endpoints",
            "endpoints:write", 204)
@authed()
async def clear_mtls(request: Request, who: Principal) -> Response:
    await security().clear_mtls(who, route_id(request))
    return empty_response(204)


@ROUTES.add("POST", "/api/v1/endpoints/{id}/standard-webhooks/ed25519",
            "Generate (or rotate) the ed25519 key for Standard Webhooks v1a signatures", "endpoints",
            "endpoints:write")
@authed()
async def rotate_ed25519(request: Request, who: Principal) -> Response:
    return json_response(await security().rotate_ed25519(who, route_id(request)))
