"""The HTTP edge of a shard: one keep-alive aiohttp session, an SSRF-guarded connector, and the
classification of what came back into the attempt's outcome."""

from __future__ import annotations

import contextvars
import os
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from control.policy.signing import sign_v1
from engine.policy.ssrf import AddressPolicy

USER_AGENT = "Mittr-Webhooks/0.1"
_POLICY: contextvars.ContextVar[AddressPolicy] = contextvars.ContextVar("mittr_address_policy")


def delivery_headers(headers: dict[str, str], secret: str, body: bytes, event_id: uuid.UUID, attempt: int,
                     now_s: int) -> dict[str, str]:
    """Add the signed Mittr headers to `headers` (the endpoint's and event's own) and return it.
    Pure, so the per-delivery cost can be measured on its own (bench/)."""
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = USER_AGENT
    headers["X-Mittr-Signature"] = sign_v1(secret.encode(), body)
    headers["X-Mittr-Timestamp"] = str(now_s)
    headers["X-Mittr-Event-ID"] = str(event_id)
    headers["X-Mittr-Attempt"] = str(attempt)
    return headers


class AddressRefused(OSError):
    """Every address the host resolved to is refused by the SSRF policy."""


class GuardedConnector(aiohttp.TCPConnector):
    """Checks every resolved address (IP literals and DNS cache hits included) at connect time,
    so DNS rebinding cannot slip an internal address past a check made earlier."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        hosts = await super()._resolve_host(host, port, traces=traces)
        policy = _POLICY.get(None)
        if policy is None:
            raise AddressRefused("no address policy in force")
        allowed = []
        reasons = []
        for h in hosts:
            reason = policy.refusal(h["host"])
            if reason is None:
                allowed.append(h)
            else:
                reasons.append(reason)
        if not allowed:
            raise AddressRefused("; ".join(reasons[:3]) or f"{host} resolved to no address")
        return allowed


@dataclass(slots=True)
class SendResult:
    status_code: int | None
    response_body: str
    error: str
    category: str | None        # None on success; timeout/4xx/5xx/3xx/dns/tls/refused/blocked/other
    outcome: str                # success | failure | timeout
    permanent: bool             # no retry can help (SSRF refusal, 410 Gone)
    retry_after: str | None
    sent_ns: int                # perf_counter_ns when the request was handed over
    done_ns: int                # perf_counter_ns when the response (or error) was complete


def category_for_status(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return "3xx"


def _root_os_error(exc: BaseException) -> BaseException | None:
    seen = exc
    for _ in range(5):
        inner = getattr(seen, "os_error", None) or seen.__cause__
        if inner is None:
            return seen
        seen = inner
    return seen


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """System trust store, plus an extra CA bundle when configured (engine.ca_file)."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(ca_file)
    return ctx


class Sender:
    def __init__(self, max_connections: int, body_limit: int, tls: ssl.SSLContext | None = None) -> None:
        self.body_limit = body_limit
        self.tls = tls or tls_context()
        connector = GuardedConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=30,
                                     keepalive_timeout=30, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        self._ssl_cache: dict[str, ssl.SSLContext] = {}

    async def close(self) -> None:
        await self.session.close()

    async def send(self, url: str, body: bytes, headers: dict[str, str], timeout_ms: int,
                   policy: AddressPolicy, ssl_context: ssl.SSLContext | None = None) -> SendResult:
        _POLICY.set(policy)
        timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        sent = time.perf_counter_ns()
        try:
            async with self.session.post(url, data=body, headers=headers, timeout=timeout,
                                         allow_redirects=False,
                                         ssl=ssl_context if ssl_context is not None else self.tls) as resp:
                raw = await resp.content.read(self.body_limit)
                done = time.perf_counter_ns()
                status = resp.status
                category = category_for_status(status)
                return SendResult(
                    status, raw.decode("utf-8", "replace"), "" if category is None else f"HTTP {status}",
                    category, "success" if category is None else "failure", status == 410,
                    resp.headers.get("Retry-After"), sent, done)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return SendResult(None, "", f"timed out after {timeout_ms} ms", "timeout", "timeout", False,
                              None, sent, time.perf_counter_ns())
        except aiohttp.ClientConnectorError as exc:
            done = time.perf_counter_ns()
            root = _root_os_error(exc)
            if isinstance(root, AddressRefused):
                return SendResult(None, "", f"blocked: {root}", "blocked", "failure", True, None, sent, done)
            if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
                return SendResult(None, "", f"TLS error: {exc}", "tls", "failure", False, None, sent, done)
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                return SendResult(None, "", f"DNS error: {exc}", "dns", "failure", False, None, sent, done)
            return SendResult(None, "", f"connection failed: {exc}", "refused", "failure", False, None,
                              sent, done)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return SendResult(None, "", f"{type(exc).__name__}: {exc}", "other", "failure", False, None,
                              sent, time.perf_counter_ns())


class Senders:
    """The default session, plus one per endpoint CIDR policy: keep-alive connections are pooled
    by host, so an endpoint with its own allow/block list must never reuse a connection that was
    vetted under another policy."""

    def __init__(self, max_connections: int, body_limit: int, ca_file: str = "") -> None:
        self._max = max_connections
        self._body_limit = body_limit
        self._ca_file = ca_file
        self._base_tls = tls_context(ca_file)
        self.default = Sender(max_connections, body_limit, self._base_tls)
        self._by_policy: dict[AddressPolicy, Sender] = {}
        self._tls: dict[tuple[str, int], ssl.SSLContext] = {}

    def for_policy(self, policy: AddressPolicy) -> Sender:
        if not policy.allowed and not policy.blocked:
            return self.default
        sender = self._by_policy.get(policy)
        if sender is None:
            sender = self._by_policy[policy] = Sender(max(8, self._max // 8), self._body_limit, self._base_tls)
        return sender

    def client_tls(self, cfg: Any) -> ssl.SSLContext:
        """A TLS context presenting the endpoint's client certificate, built once per version."""
        key = (str(cfg.id), cfg.version)
        ctx = self._tls.get(key)
        if ctx is None:
            ctx = tls_context(self._ca_file)
            with tempfile.TemporaryDirectory(prefix="mittr-mtls-") as tmp:
                cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
                for path, text in ((cert_path, cfg.mtls_cert), (key_path, cfg.mtls_key)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as fh:
                        fh.write(text)
                ctx.load_cert_chain(cert_path, key_path)
            self._tls[key] = ctx
        return ctx

    async def close(self) -> None:
        await self.default.close()
        for sender in self._by_policy.values():
            await sender.close()
