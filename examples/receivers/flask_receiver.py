"""A Flask receiver for Mittr deliveries: verify the raw body, then de-duplicate on the event id."""

from __future__ import annotations

import os

from flask import Flask, abort, request

from mittr_client import VerificationError, verify

app = Flask(__name__)
SECRET = os.environ.get("MITTR_SIGNING_SECRET", "")
seen: set[str] = set()   # use your database in production: delivery is at least once


@app.post("/webhooks")
def webhooks() -> tuple[str, int]:
    try:
        payload = verify(SECRET, request.get_data(), request.headers)
    except VerificationError:
        abort(400)
    event_id = request.headers.get("X-Mittr-Event-ID") or request.headers.get("webhook-id", "")
    if event_id not in seen:
        seen.add(event_id)
        app.logger.info("event %s: %s", event_id, payload)
    return "", 204
