"""The destination kinds behind one interface: which kind an endpoint's attempts go through, and
that the HTTP kind delivers through it (to a real receiver)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from control.policy.ssrf import AddressPolicy
from engine.destinations import Kinds
from engine.destinations.batched import Destinations
from engine.destinations.http import HttpKind
from engine.model import EndpointConfig, Task
from engine.request import Request
from engine.sender import Senders, SendResult
from tests.support.sink import Sink


def cfg(**over: Any) -> EndpointConfig:
    base: dict[str, Any] = dict(
        id=uuid.uuid4(), url="https://x.example.com", active=True, deleted=False, version=1, timeout_ms=1000,
        custom_headers={}, signing_secret="s" * 10, retry_backoff_ms=1000, retry_backoff_max=60000,
        retry_backoff_mult=2.0, rate_limit_per_sec=0, circuit_threshold=0, circuit_reset_ms=1000,
        circuit_state="closed", circuit_opened_at_ms=None, fifo=False, fifo_partition_key=None,
        delivery_mode="push", policy=AddressPolicy(), mtls_cert=None, mtls_key=None, standard_webhooks=False,
        sw_ed25519_private=None)
    base.update(over)
    return EndpointConfig(**base)


def task() -> Task:
    return Task(id=uuid.uuid4(), event_id=uuid.uuid4(), client_id=uuid.uuid4(), project_id=None, endpoint_id=None,
                partition=1, seq=1, attempts=0, max_attempts=3, priority=5, due_ms=0, destination=None,
                event_type="order.created", payload=b"{}", headers={}, client_secret="s" * 10, target="t")


async def test_each_mode_has_its_kind() -> None:
    kinds = Kinds(Senders(8, 1024), "")
    try:
        assert isinstance(kinds.of(None), HttpKind)             # a direct destination
        assert kinds.of(cfg()) is kinds.http
        batched = kinds.of(cfg(delivery_mode="storage"))
        assert isinstance(batched, Destinations) and kinds.of(cfg(delivery_mode="broker")) is batched
        with pytest.raises(ValueError, match="poll"):
            kinds.of(cfg(delivery_mode="poll"))                 # never claimed; refused if it were
    finally:
        await kinds.close()


async def test_http_kind_delivers_through_the_interface() -> None:
    sink = await Sink().start()
    kinds = Kinds(Senders(8, 1024), "")
    got: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
    try:
        endpoint = cfg(url=f"{sink.url}/hook")
        req = Request(f"{sink.url}/hook", b'{"a":1}', {"Content-Type": "application/json", "X-Mittr-Test": "1"},
                      2000, AddressPolicy(allow_private=True))
        kinds.of(endpoint).start(endpoint, task(), req, datetime.now(UTC), got.set_result)
        result = await asyncio.wait_for(got, 10)
        assert result.outcome == "success" and result.status_code == 200, result
        [received] = await sink.wait_for("/hook", 1)
        assert received.body == b'{"a":1}' and received.headers["X-Mittr-Test"] == "1"
    finally:
        await kinds.close()
        await sink.stop()


async def test_a_store_endpoint_without_its_config_fails_its_attempt() -> None:
    kinds = Kinds(Senders(8, 1024), "")
    results: list[SendResult] = []
    try:
        endpoint = cfg(delivery_mode="storage", destination=None)
        req = Request("file:///x", b"{}", {}, 1000, AddressPolicy())
        kinds.of(endpoint).start(endpoint, task(), req, datetime.now(UTC), results.append)
        assert [(r.outcome, r.permanent) for r in results] == [("failure", True)]
        assert "no destination configured" in results[0].error
    finally:
        await kinds.close()
