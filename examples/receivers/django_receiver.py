"""A Django receiver for Mittr deliveries: a csrf-exempt view that verifies `request.body`.

In a project, put `webhooks` in a views module and route it in urls.py; this file configures a
minimal settings object only so that it runs (and is tested) on its own.
"""

from __future__ import annotations

import os

from django.conf import settings

if not settings.configured:
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="example-only",  # noqa: S106
                       MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"])

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from mittr_client import VerificationError, verify

SECRET = os.environ.get("MITTR_SIGNING_SECRET", "")
received: list[tuple[str | None, object]] = []   # use your database in production: delivery is at least once


@csrf_exempt   # the signature, not a CSRF token, proves where the request came from
@require_POST
def webhooks(request: HttpRequest) -> HttpResponse:
    try:
        payload = verify(SECRET, request.body, request.headers)
    except VerificationError:
        return HttpResponse(status=401)
    received.append((request.headers.get("X-Mittr-Event-ID"), payload))
    return HttpResponse(status=204)


urlpatterns = [path("webhooks", webhooks)]
