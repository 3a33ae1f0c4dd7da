"""The BlackSheep application factory. Routes live in api/handlers/*, declared once in ROUTES."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from blacksheep import Application, Content, Request, Response
from blacksheep.server.routing import Router

import api.handlers  # noqa: F401 - registers every route
from api.context import ApiContext, clear_ctx, ctx, set_ctx
from api.dashboard import PAGES as DASHBOARD_PAGES
from api.docs_page import DOCS_HTML
from api.handlers.billing import with_plan_ids
from api.handlers.billing_pages import PAGES as BILLING_PAGES
from api.handlers.scim import FALLBACK as SCIM_FALLBACK
from api.handlers.scim import scim_openapi
from api.handlers.system import VERSION
from api.http import error_response, json_response
from api.observability import install as install_observability
from api.portal_ui import PAGES as PORTAL_PAGES
from api.routes import openapi_document
from api.routing import ROUTES
from control.errors import ApiError, NotFound, Unavailable
from control.services.account import catalogue
from control.services.alerting import AlertingService
from control.services.billing import BillingService
from control.services.gdpr import GdprService
from control.services.keys import KeyAuthenticator
from control.services.plan_limits import sync_catalogue
from control.services.sessions import SessionAuthenticator
from control.settings import Settings, load_settings
from control.store.db import DATABASE_DOWN, close_pool, create_pool, partitions_of

log = logging.getLogger("mittr.api")
DOCS_PAGE = DOCS_HTML.encode()


async def _not_found(request: Request) -> Response:
    return error_response(NotFound(f"no route for {request.method} {request.path}"))


def _add_pages(app: Application,
               pages: Iterable[tuple[str, str, Callable[[Request], Awaitable[Response]]]]) -> None:
    for method, path, page in pages:
        app.router.add(method, path, page)


def create_app(settings: Settings | None = None) -> Application:
    settings = settings or load_settings()
    app = Application(router=Router())
    openapi = scim_openapi(with_plan_ids(openapi_document(ROUTES, VERSION), [p.id for p in catalogue(settings).plans]))

    for r in ROUTES.routes:
        app.router.add(r.method, r.path, r.handler)
    _add_pages(app, SCIM_FALLBACK)      # SCIM's own 404/405 under /scim/v2 (not API routes)

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi)

    async def docs(request: Request) -> Response:
        return Response(200, [(b"Cache-Control", b"no-cache")], Content(b"text/html; charset=utf-8", DOCS_PAGE))

    app.router.add("GET", "/openapi.json", openapi_json)
    app.router.add("GET", "/docs", docs)
    # Not API routes: the local billing provider's pages, the dashboard's and the portal's files.
    _add_pages(app, [*BILLING_PAGES, *DASHBOARD_PAGES, *PORTAL_PAGES])
    app.router.fallback = _not_found
    install_observability(app)   # request ids and logs, the stats WebSocket, /metrics

    async def on_api_error(application: Application, request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    async def on_error(application: Application, request: Request, exc: Exception) -> Response:
        if isinstance(exc, DATABASE_DOWN):
            # Nothing was accepted; the client may retry with the same idempotency key.
            log.warning("database unavailable", extra={"path": request.path, "error": str(exc)})
            return error_response(Unavailable())
        log.exception("unhandled error", extra={"path": request.path})
        return json_response({"error": "internal server error", "code": "INTERNAL"}, 500)

    app.exceptions_handlers[ApiError] = on_api_error
    app.exceptions_handlers[Exception] = on_error

    started: list[ApiContext] = []   # this app's own context: in tests several apps share a process

    async def start(application: Application) -> None:
        db = settings.database
        pool = await create_pool(settings.database_url, db["pool_min"], db["pool_max"],
                                 float(db["idle_in_transaction_timeout_s"]))
        try:
            parts = await partitions_of(pool)
            await sync_catalogue(pool, catalogue(settings))   # the plans' event quotas, as ingest reads them
        except BaseException:
            await pool.close()          # a failed start leaves no pool reconnecting behind it
            raise
        context = ApiContext(settings, pool, parts, KeyAuthenticator(pool), int(settings.api["max_body_bytes"]),
                             SessionAuthenticator(pool, float(settings.section("auth")["session_ttl_hours"]) * 3600))
        started.append(context)
        set_ctx(context)
        ctx().service(GdprService).resume()   # finish erasures a stop or crash interrupted
        ctx().service(AlertingService).start()   # the alert evaluator (one at a time cluster-wide)
        ctx().service(BillingService).start()    # the period rollover (one at a time cluster-wide)

    async def stop(application: Application) -> None:
        """Close this app's own context, whichever is current (closing the current one instead left a
        second app's pool open, reconnecting to its dropped database until the process ended)."""
        while started:
            context = started.pop()
            clear_ctx(context)
            await context.close_services()
            await close_pool(context.pool, 10)

    app.on_start += start
    app.on_stop += stop
    return app
