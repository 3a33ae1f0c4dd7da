"""Mixed traffic: creates, reads of what was created, its deliveries, and filtered lists (4:3:2:1)."""

from __future__ import annotations

import random

from common import direct_event, headers
from locust import task
from locust.contrib.fasthttp import FastHttpUser


class MixedTraffic(FastHttpUser):
    def on_start(self) -> None:
        self.created: list[str] = []

    @task(4)
    def create(self) -> None:
        with self.client.post("/api/v1/events", data=direct_event(), headers=headers(idempotent=True),
                              name="POST /api/v1/events", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
                return
            self.created.append(resp.json()["id"])
            del self.created[:-200]

    @task(3)
    def read(self) -> None:
        if self.created:
            self.client.get(f"/api/v1/events/{random.choice(self.created)}", headers=headers(),
                            name="GET /api/v1/events/{id}")

    @task(2)
    def deliveries(self) -> None:
        if self.created:
            self.client.get(f"/api/v1/events/{random.choice(self.created)}/deliveries", headers=headers(),
                            name="GET /api/v1/events/{id}/deliveries")

    @task(1)
    def list_events(self) -> None:
        status = random.choice(("queued", "delivered", "failed"))
        self.client.get(f"/api/v1/events?status={status}&limit=10", headers=headers(),
                        name="GET /api/v1/events?status=")
