"""A shard's endpoint config applies the same SSRF settings the API validates with."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from engine.model import EndpointConfig


def row(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        id=uuid.uuid4(), url="http://127.0.0.1:9/x", status="active", deleted_at=None, version=1, timeout_ms=1000,
        custom_headers={}, signing_secret="s", retry_backoff_ms=1, retry_backoff_max=1, retry_backoff_mult=1.0,
        rate_limit_per_sec=0, circuit_threshold=0, circuit_reset_ms=1, circuit_state="closed",
        circuit_opened_at=None, fifo=False, fifo_partition_key=None, delivery_mode="push", allowed_cidrs=None,
        blocked_cidrs=["10.9.0.0/16"], mtls_cert=None, mtls_key=None, standard_webhooks=False,
        sw_ed25519_private=None, transformation=None, updated_at=datetime.now(UTC))
    base.update(over)
    return base


def test_metadata_stays_blocked_with_private_networks_unless_explicitly_allowed() -> None:
    private = EndpointConfig.from_row(row(), {"allow_private_networks": True})
    assert private.policy.refusal("127.0.0.1") is None
    assert private.policy.refusal("169.254.169.254") is not None
    assert private.policy.refusal("10.9.1.1") is not None, "the endpoint's own blocklist"
    both = EndpointConfig.from_row(row(), {"allow_private_networks": True, "allow_metadata_addresses": True})
    assert both.policy.refusal("169.254.169.254") is None
    default = EndpointConfig.from_row(row(), {})
    assert default.policy.refusal("127.0.0.1") is not None
