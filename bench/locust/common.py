"""Shared pieces of the locustfiles: the API key, the sink URL and the seed's request shapes.

Environment: MITTR_API_KEY (required), MITTR_SINK_URL (where deliveries go; default
http://127.0.0.1:9100/hook, e.g. `python -m bench.sink --ports 9100`), MITTR_PAYLOAD_BYTES (1024).
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

import orjson

API_KEY = os.environ.get("MITTR_API_KEY", "")
SINK_URL = os.environ.get("MITTR_SINK_URL", "http://127.0.0.1:9100/hook")
PAYLOAD_BYTES = int(os.environ.get("MITTR_PAYLOAD_BYTES", "1024"))
_RUN = uuid.uuid4().hex[:12]
_SEQ = itertools.count()
PAD = "x" * max(0, PAYLOAD_BYTES - 80)

if not API_KEY:
    raise SystemExit("set MITTR_API_KEY to an API key (mittr serve prints one on first start)")


def headers(idempotent: bool = False) -> dict[str, str]:
    h = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    if idempotent:
        h["X-Idempotency-Key"] = next_key()
    return h


def next_key() -> str:
    """Unique per request (and per locust process: each imports this module with its own run id)."""
    return f"locust-{_RUN}-{os.getpid()}-{next(_SEQ)}"


def order_payload() -> dict[str, Any]:
    return {"orderId": f"ord_{uuid.uuid4().hex[:8]}", "amount": 9900, "currency": "USD", "note": PAD}


def direct_event() -> bytes:
    """POST /api/v1/events with a `destination` (the seed's direct delivery)."""
    return orjson.dumps({"destination": SINK_URL, "payload": order_payload(),
                         "headers": {"X-Custom-Auth": "Bearer token123"}})


def batch_body(size: int = 100) -> bytes:
    """POST /api/v1/events/batch: `size` direct events, each with its own idempotencyKey."""
    return orjson.dumps({"events": [{"idempotencyKey": next_key(), "destination": SINK_URL,
                                     "payload": order_payload()} for _ in range(size)]})


def fanout_event(event_type: str) -> bytes:
    """POST /api/v1/events with an `eventType`: one task per subscribed endpoint."""
    return orjson.dumps({"eventType": event_type, "payload": order_payload()})
