"""What a shard holds in memory: claimed tasks, endpoint settings, and outcomes awaiting the writer."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from control.policy.jsonpath import compile_path
from control.policy.ssrf import AddressPolicy


@dataclass(slots=True)
class EndpointConfig:
    id: uuid.UUID
    url: str
    active: bool
    deleted: bool
    version: int
    timeout_ms: int
    custom_headers: dict[str, str]
    signing_secret: str
    retry_backoff_ms: int
    retry_backoff_max: int
    retry_backoff_mult: float
    rate_limit_per_sec: int
    circuit_threshold: int
    circuit_reset_ms: int
    circuit_state: str
    circuit_opened_at_ms: int | None
    fifo: bool
    fifo_partition_key: str | None
    delivery_mode: str
    policy: AddressPolicy
    mtls_cert: str | None
    mtls_key: str | None
    standard_webhooks: bool
    sw_ed25519_private: str | None
    transformation: str | None = None
    revision: datetime | None = None     # endpoints.updated_at when this config was read
    destination: dict[str, Any] | None = None   # storage / broker config, credentials opened

    @classmethod
    def from_row(cls, row: Any, engine_settings: Mapping[str, Any]) -> EndpointConfig:
        return cls(
            id=row["id"], url=row["url"], active=row["status"] == "active",
            deleted=row["deleted_at"] is not None, version=row["version"], timeout_ms=row["timeout_ms"],
            custom_headers=dict(row["custom_headers"] or {}), signing_secret=row["signing_secret"],
            retry_backoff_ms=row["retry_backoff_ms"], retry_backoff_max=row["retry_backoff_max"],
            retry_backoff_mult=row["retry_backoff_mult"], rate_limit_per_sec=row["rate_limit_per_sec"],
            circuit_threshold=row["circuit_threshold"], circuit_reset_ms=row["circuit_reset_ms"],
            circuit_state=row["circuit_state"],
            circuit_opened_at_ms=int(row["circuit_opened_at"].timestamp() * 1000) if row["circuit_opened_at"] else None,
            fifo=row["fifo"], fifo_partition_key=row["fifo_partition_key"],
            delivery_mode=row["delivery_mode"],
            policy=AddressPolicy.from_engine(engine_settings, row["allowed_cidrs"] or (), row["blocked_cidrs"] or ()),
            mtls_cert=row["mtls_cert"], mtls_key=row["mtls_key"], standard_webhooks=row["standard_webhooks"],
            sw_ed25519_private=row["sw_ed25519_private"], transformation=row["transformation"],
            revision=row["updated_at"],
        )


def fifo_key(path: str | None, payload: bytes) -> str:
    """The FIFO group of a delivery: `fifoPartitionKey` read from `{"data": payload}`; events
    without that field share one default group."""
    if not path:
        return ""
    try:
        found, value = compile_path(path).get({"data": orjson.loads(payload)})
    except (ValueError, orjson.JSONDecodeError):
        return ""
    if not found or value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def ed25519_key(stored: str | None) -> bytes | None:
    """The raw 32-byte ed25519 private key kept (base64) for Standard Webhooks `v1a` signatures."""
    if not stored:
        return None
    return base64.b64decode(stored)


@dataclass(slots=True)
class Task:
    id: uuid.UUID
    event_id: uuid.UUID
    client_id: uuid.UUID
    project_id: uuid.UUID | None
    endpoint_id: uuid.UUID | None
    partition: int
    seq: int
    attempts: int
    max_attempts: int
    priority: int
    due_ms: int
    destination: str | None
    event_type: str | None
    payload: bytes
    headers: dict[str, str]
    client_secret: str
    target: str
    fifo_key: str = ""
    in_flight: bool = False
    superseded: bool = False      # withdrawn while in flight: forget it once the attempt finishes
    newer: Task | None = None     # claimed again (replayed, edited) while in flight: applied after
    marked: bool = False          # shown as `delivering` in Postgres for the attempt in flight
    timer: Any = None

    @classmethod
    def from_claim(cls, row: Any, target: str) -> Task:
        return cls(
            id=row["id"], event_id=row["event_id"], client_id=row["client_id"], project_id=row["project_id"],
            endpoint_id=row["endpoint_id"], partition=row["partition"], seq=row["seq"],
            attempts=row["attempts"], max_attempts=row["max_attempts"], priority=row["priority"],
            due_ms=int(row["next_attempt_at"].timestamp() * 1000), destination=row["destination"],
            event_type=row["event_type"], payload=row["payload"], headers=dict(row["headers"] or {}),
            client_secret=row["client_secret"], target=target,
        )


@dataclass(slots=True)
class Outcome:
    """One finished attempt and the task state it leads to; the writer makes both durable together."""

    task: Task
    attempt_id: uuid.UUID
    attempt_number: int
    status_code: int | None
    response_body: str
    error: str
    error_category: str | None
    outcome: str
    duration_ms: int
    overhead_us: int
    attempted_at: datetime
    new_status: str
    next_attempt_at: datetime
    keep_claim: bool
    delivered_at: datetime | None
    attempts: int = 0             # the task's attempt count once recorded
    prior_attempts: int = 0       # the count Postgres holds before it is recorded (fences a retried write)
