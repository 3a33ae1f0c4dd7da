"""Stripe's webhooks for the Stripe billing provider (control/services/billing_stripe.py). Public:
the Stripe-Signature header is the credential. Answers 404 unless [billing] provider = "stripe"."""

from __future__ import annotations

import time

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response, read_body
from api.routing import ROUTES
from control.services.billing import BillingService
from control.services.billing_stripe import receive

WEBHOOK_PATH = "/billing/stripe/webhook"
_RECEIVED = ROUTES.component("StripeWebhookReceived", {
    "type": "object", "required": ["received"],
    "properties": {"received": {"type": "boolean"},
                   "duplicate": {"type": "boolean", "description": "this event id was handled already"},
                   "handled": {"type": "boolean", "description": "false: an event Mittr does not act on"}}})


@ROUTES.add("POST", WEBHOOK_PATH, "Receive Stripe's webhooks (public; verified by the Stripe-Signature header)",
            "billing", None, response=_RECEIVED,
            headers=(("Stripe-Signature", True),),
            responses={400: "Bad or missing signature, a timestamp outside five minutes, or not a Stripe event",
                       404: "The Stripe billing provider is not configured", 413: "Body too large",
                       502: "Stripe refused a read-back", 503: "Stripe could not be reached (Stripe retries)"})
async def stripe_webhook(request: Request) -> Response:
    c = ctx()
    body = await read_body(request, c.max_body)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
    url = request.url.value.decode("latin-1")
    return json_response(await receive(c.service(BillingService), body, headers, url, time.time()))
