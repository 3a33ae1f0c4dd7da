"""Single event creates: POST /api/v1/events with a destination, a fresh idempotency key each."""

from __future__ import annotations

from common import direct_event, headers
from locust import task
from locust.contrib.fasthttp import FastHttpUser


class SingleCreates(FastHttpUser):
    @task
    def create(self) -> None:
        with self.client.post("/api/v1/events", data=direct_event(), headers=headers(idempotent=True),
                              name="POST /api/v1/events", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
