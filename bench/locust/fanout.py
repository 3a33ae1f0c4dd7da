"""Fan-out: at start, MITTR_FANOUT_ENDPOINTS endpoints (default 10) subscribe to one event type and
point at the sink; every create then makes one task per endpoint."""

from __future__ import annotations

import os
import uuid
from typing import Any

import orjson
from common import SINK_URL, fanout_event, headers
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import WorkerRunner

FANOUT = int(os.environ.get("MITTR_FANOUT_ENDPOINTS", "10"))
EVENT_TYPE = f"bench.fanout.{uuid.uuid4().hex[:8]}"


@events.test_start.add_listener
def make_endpoints(environment: Any, **_: Any) -> None:
    """Once, on the master (or the only process): the endpoints every user's events fan out to.
    Workers forked by --processes share EVENT_TYPE (imported before the fork) and skip this."""
    import urllib.request

    if isinstance(environment.runner, WorkerRunner):
        return
    for i in range(FANOUT):
        body = orjson.dumps({"url": f"{SINK_URL}?endpoint={i}", "eventTypes": [EVENT_TYPE],
                             "description": f"locust fan-out {i}", "maxRetries": 5, "timeoutMs": 30000})
        req = urllib.request.Request(f"{environment.host}/api/v1/endpoints", data=body, method="POST",
                                     headers=headers())
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201, resp.read()


class FanOut(FastHttpUser):
    @task
    def create(self) -> None:
        with self.client.post("/api/v1/events", data=fanout_event(EVENT_TYPE), headers=headers(idempotent=True),
                              name="POST /api/v1/events (fan-out)", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
