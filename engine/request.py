"""What one attempt sends: the endpoint's transformation applied, then the signed headers.

Everything here runs synchronously in the shard's loop between taking a task and writing its
request, so it is also what `processingOverheadUs` measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from control.policy.signing import standard_webhook_headers
from control.policy.ssrf import AddressPolicy
from control.policy.transform import TransformRunner
from engine.model import EndpointConfig, Task, ed25519_key
from engine.sender import SendResult, delivery_headers


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout_ms: int
    policy: AddressPolicy


@dataclass(frozen=True, slots=True)
class Deferred:
    """Not sent now, and no attempt made: try again after `ms` (the tenant's transformation
    budget for this second is spent)."""

    ms: int


class RequestBuilder:
    def __init__(self, transforms: TransformRunner, direct_policy: AddressPolicy, direct_timeout_ms: int) -> None:
        self.transforms = transforms
        self.direct_policy = direct_policy
        self.direct_timeout_ms = direct_timeout_ms

    def build(self, task: Task, cfg: EndpointConfig | None) -> Request | SendResult | Deferred:
        """The request to send; or the attempt's result when the transformation decided it (it threw,
        overran its limits, or cancelled the delivery); or Deferred."""
        body, url, base = task.payload, None, None
        if cfg is not None and cfg.transformation:
            shaped = self._transform(task, cfg)
            if not isinstance(shaped, tuple):
                return shaped
            body, base, url = shaped
        return self._signed(task, cfg, body, url, base)

    def _transform(self, task: Task, cfg: EndpointConfig) -> tuple[bytes, dict[str, str], str] | SendResult | Deferred:
        assert cfg.transformation is not None
        base_headers = {**cfg.custom_headers, **task.headers}
        webhook: dict[str, object] = {"payload": orjson.Fragment(task.payload), "headers": base_headers,
                                      "url": cfg.url, "eventType": task.event_type, "eventId": str(task.event_id)}
        result = self.transforms.apply(f"{cfg.id}:{cfg.version}", cfg.transformation, webhook,
                                       tenant=str(task.client_id))
        if result.throttled_ms is not None:
            return Deferred(result.throttled_ms)
        now = time.perf_counter_ns()
        if result.error is not None:
            return SendResult(None, "", result.error, "transform", "failure", False, None, now, now)
        if result.cancelled:
            return SendResult(None, "", "cancelled by transformation", "cancelled", "failure", True, None, now, now)
        return (result.payload if result.payload is not None else task.payload,
                result.headers if result.headers is not None else base_headers,
                result.url or cfg.url)

    def _signed(self, task: Task, cfg: EndpointConfig | None, body: bytes, url: str | None,
                base_headers: dict[str, str] | None) -> Request:
        if cfg is not None:
            secret, timeout, policy = cfg.signing_secret, cfg.timeout_ms, cfg.policy
            url = url or cfg.url
            headers = dict(base_headers) if base_headers is not None else {**cfg.custom_headers, **task.headers}
        else:
            assert task.destination is not None
            url, secret, policy = task.destination, task.client_secret, self.direct_policy
            timeout = self.direct_timeout_ms
            headers = dict(task.headers)
        now_s = int(time.time())
        delivery_headers(headers, secret, body, task.event_id, task.attempts + 1, now_s)
        if cfg is not None and cfg.standard_webhooks:
            headers.update(standard_webhook_headers(
                f"msg_{task.event_id.hex}", now_s, body, secret, ed25519_key(cfg.sw_ed25519_private)))
        return Request(url, body, headers, timeout, policy)
