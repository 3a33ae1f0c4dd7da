"""Batch creates: POST /api/v1/events/batch with 100 direct events (MITTR_BATCH_SIZE to change)."""

from __future__ import annotations

import os

from common import batch_body, headers
from locust import task
from locust.contrib.fasthttp import FastHttpUser

BATCH_SIZE = int(os.environ.get("MITTR_BATCH_SIZE", "100"))


class BatchCreates(FastHttpUser):
    @task
    def create_batch(self) -> None:
        with self.client.post("/api/v1/events/batch", data=batch_body(BATCH_SIZE), headers=headers(),
                              name="POST /api/v1/events/batch", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
