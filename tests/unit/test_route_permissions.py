"""Every route declares its permission once, from access.FAMILIES, and its handler enforces exactly
that one: the route table is walked, and the binding between ROUTES.add and @authed is tried."""

from __future__ import annotations

import pytest
from blacksheep import Request, Response

import api.app  # noqa: F401 - registers every route
from api.handlers.stats import STATS_WS_PATH
from api.routes import PERMISSION_ATTR, Permission, Route, RouteError, RouteTable, openapi_document
from api.routing import ROUTES, authed
from control.policy.access import FAMILIES, parse_permission
from control.services.principal import Principal

# /api/v1 routes that authenticate on their own (the stats WebSocket takes ?key=); all others need a permission.
SELF_AUTHENTICATED = {STATS_WS_PATH}
# Path segments whose permission family has another name.
FAMILY_OF_SEGMENT = {"me": "account", "entitlements": "account", "egress-ips": "account",
                     "inbound-endpoints": "inbound", "inbound-presets": "inbound"}
API = [r for r in ROUTES.routes if r.path.startswith("/api/v1/")]


def rid(r: Route) -> str:
    return f"{r.method} {r.path}"


@pytest.mark.parametrize("route", ROUTES.routes, ids=rid)
def test_every_permission_is_a_known_family(route: Route) -> None:
    scope = route.scope
    if scope is None:
        return
    family, action = parse_permission(scope)      # raises on a family not in access.FAMILIES
    assert family in FAMILIES and action in ("read", "write")


@pytest.mark.parametrize("route", API, ids=rid)
def test_api_routes_need_the_permission_of_their_family(route: Route) -> None:
    path, scope, method = route.path, route.scope, route.method
    if path in SELF_AUTHENTICATED:
        assert scope is None
        return
    assert scope is not None, f"{method} {path}: every /api/v1 route needs a permission"
    segment = path.split("/")[3]
    family, action = parse_permission(scope)
    assert family == FAMILY_OF_SEGMENT.get(segment, segment), f"{method} {path} declares {scope!r}"
    assert action == ("read" if method == "GET" else "write"), f"{method} {path} declares {scope!r}"


@pytest.mark.parametrize("route", ROUTES.routes, ids=rid)
def test_the_handler_enforces_the_declared_permission(route: Route) -> None:
    held = getattr(route.handler, PERMISSION_ATTR, None)
    if route.scope is None:
        assert held is None
    else:
        assert held == Permission(route.scope)


def test_the_openapi_document_names_each_permission() -> None:
    doc = openapi_document(ROUTES, "test")
    for r in ROUTES.routes:
        op = doc["paths"][r.path][r.method.lower()]
        if r.scope is None:
            assert op["security"] == [] and "x-permission" not in op
        else:
            assert op["x-permission"] == r.scope and f"`{r.scope}`" in op["description"]


async def _handler(request: Request, who: Principal) -> Response:
    raise AssertionError("not called")


def test_authed_without_argument_takes_the_routes_permission() -> None:
    table = RouteTable()
    handler = table.add("GET", "/x", "x", "x", "events:read")(authed()(_handler))
    assert getattr(handler, PERMISSION_ATTR) == Permission("events:read")


def test_the_old_two_decorator_form_still_works_when_both_agree() -> None:
    table = RouteTable()
    handler = table.add("GET", "/x", "x", "x", "events:read")(authed("events:read")(_handler))
    assert getattr(handler, PERMISSION_ATTR) == Permission("events:read")


def test_route_and_authed_cannot_disagree() -> None:
    with pytest.raises(RouteError, match="events:write"):
        RouteTable().add("POST", "/x", "x", "x", "events:write")(authed("events:read")(_handler))


def test_a_declared_permission_needs_an_authed_handler() -> None:
    async def bare(request: Request) -> Response:
        raise AssertionError("not called")

    with pytest.raises(RouteError, match="not @authed"):
        RouteTable().add("GET", "/x", "x", "x", "events:read")(bare)


def test_a_public_route_is_not_authed() -> None:
    with pytest.raises(RouteError, match="public"):
        RouteTable().add("GET", "/x", "x", "x", None)(authed()(_handler))


def test_one_handler_cannot_serve_two_permissions() -> None:
    table = RouteTable()
    handler = authed()(_handler)
    table.add("GET", "/x", "x", "x", "events:read")(handler)
    with pytest.raises(RouteError):
        table.add("POST", "/x", "x", "x", "events:write")(handler)


async def test_an_unregistered_authed_handler_fails_closed() -> None:
    handler = authed()(_handler)
    with pytest.raises(RuntimeError, match="without a ROUTES"):
        await handler(Request("GET", b"/x", []))
