"""The HTTP edge of a shard: one keep-alive aiohttp session, an SSRF-guarded connector, and the
classification of what came back into the attempt's outcome."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import os
import re
import socket
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult

from control.policy.signing import sign_v1
from control.policy.ssrf import AddressPolicy
from engine.http1 import DONE, NEED_DATA, MalformedResponse, ResponseParser

A = TypeVar("A")
log = logging.getLogger("mittr.engine.sender")
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


def screened(policy: AddressPolicy, host: str, candidates: list[A], address: Callable[[A], str]) -> list[A]:
    """The candidates whose address the policy allows; AddressRefused (naming why) when none is."""
    allowed, reasons = [], []
    for candidate in candidates:
        reason = policy.refusal(address(candidate))
        if reason is None:
            allowed.append(candidate)
        else:
            reasons.append(reason)
    if not allowed:
        raise AddressRefused("; ".join(reasons[:3]) or f"{host} resolved to no address")
    return allowed


class GuardedConnector(aiohttp.TCPConnector):
    """Checks every resolved address (IP literals and DNS cache hits included) at connect time,
    so DNS rebinding cannot slip an internal address past a check made earlier."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        hosts = await super()._resolve_host(host, port, traces=traces)
        policy = _POLICY.get(None)
        if policy is None:
            raise AddressRefused("no address policy in force")
        return screened(policy, host, hosts, lambda h: h["host"])


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


class _Exchange:
    """One request on the fast path: its future, the connection carrying it, and its deadline."""

    __slots__ = ("body_limit", "conn", "connecting", "fut", "on_done", "sent_ns", "timeout_ms", "timer")

    def __init__(self, fut: asyncio.Future[SendResult], timeout_ms: int, body_limit: int,
                 on_done: Callable[[SendResult], None] | None) -> None:
        self.fut, self.timeout_ms, self.body_limit, self.on_done = fut, timeout_ms, body_limit, on_done
        self.conn: _Conn | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.sent_ns = time.perf_counter_ns()

    def done(self, result: SendResult) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.fut.done():
            self.fut.set_result(result)
            if self.on_done is not None:
                try:
                    self.on_done(result)   # at once, in the protocol callback: no wait for a task wake-up
                except Exception:
                    log.exception("recording a delivery outcome failed")

    def fail(self, category: str, error: str, permanent: bool = False) -> None:
        outcome = "timeout" if category == "timeout" else "failure"
        self.done(SendResult(None, "", error, category, outcome, permanent, None, self.sent_ns,
                             time.perf_counter_ns()))

    def on_timeout(self) -> None:
        self.timer = None
        if self.fut.done():
            return
        self.fail("timeout", f"timed out after {self.timeout_ms} ms")
        if self.connecting is not None:
            self.connecting.cancel()
        if self.conn is not None:
            self.conn.abort()


class _Conn(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection that parses responses as they arrive (engine/http1.py) and
    hands the outcome straight to its exchange. A response whose body outgrows the kept limit ends
    the attempt at once and closes the connection: nothing more of it is read."""

    def __init__(self, pool: list[tuple[float, _Conn]]) -> None:
        self.pool = pool
        self.transport: Any = None
        self.parser: ResponseParser | None = None
        self.exchange: _Exchange | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def request(self, data: bytes, exchange: _Exchange) -> None:
        self.exchange = exchange
        exchange.conn = self
        self.parser = ResponseParser(exchange.body_limit)
        self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex, self.exchange = self.exchange, None
        if ex is None:
            return
        parser = self.parser
        if parser is not None and parser.feed_eof():
            self._finish(ex, parser, DONE)      # the body ran until the close
        else:
            ex.fail("other", f"ServerDisconnectedError: {exc or 'server disconnected'}")

    def data_received(self, data: bytes) -> None:
        ex, parser = self.exchange, self.parser
        if ex is None or parser is None:    # nothing asked: a server talking out of turn is not reused
            self.abort()
            return
        try:
            state = parser.feed(data)
        except MalformedResponse as exc:
            self.exchange = None
            self.abort()
            ex.fail("other", f"malformed response: {exc}")
            return
        if state != NEED_DATA:
            self.exchange = None
            self._finish(ex, parser, state)

    def _finish(self, ex: _Exchange, parser: ResponseParser, state: int) -> None:
        status = parser.status
        category = category_for_status(status)
        ex.done(SendResult(status, parser.body.decode("utf-8", "replace"),
                           "" if category is None else f"HTTP {status}", category,
                           "success" if category is None else "failure", status == 410, parser.retry_after,
                           ex.sent_ns, time.perf_counter_ns()))
        if state == DONE and parser.keep_alive and not self.closed:
            self.pool.append((time.monotonic(), self))
        elif not self.closed:
            self.abort()     # cut short (ENOUGH), told to close, or stray bytes: never reused


_FORBIDDEN_HEADERS = frozenset(("host", "content-length", "transfer-encoding", "connection"))
_UNSAFE_NAME = re.compile("[\r\n\x00:]")
_UNSAFE_VALUE = re.compile("[\r\n\x00]")
IDLE_S = 30.0


class Sender:
    """Posts deliveries. Plain http/https URLs take the fast path: a keep-alive pool of asyncio
    protocol connections (the request is written synchronously when a connection is idle, and the
    response parsed in the protocol callback), because aiohttp's per-request CPU cost is what bounds
    a shard. Anything unusual (non-ASCII or userinfo URLs) goes through aiohttp. Both check every
    resolved address against the SSRF policy at connect time."""

    def __init__(self, max_connections: int, body_limit: int, tls: ssl.SSLContext | None = None) -> None:
        self.body_limit = body_limit
        self.tls = tls or tls_context()
        connector = GuardedConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=30,
                                     keepalive_timeout=30, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        self._pools: dict[tuple[str, str, int, int], list[tuple[float, _Conn]]] = {}
        self._urls: dict[str, tuple[str, str, int, str, bytes] | None] = {}
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._swept = time.monotonic()

    async def close(self) -> None:
        for pool in self._pools.values():
            for _, conn in pool:
                conn.abort()
        self._pools.clear()
        await self.session.close()

    async def send(self, url: str, body: bytes, headers: dict[str, str], timeout_ms: int,
                   policy: AddressPolicy, ssl_context: ssl.SSLContext | None = None) -> SendResult:
        return await self.start(url, body, headers, timeout_ms, policy, ssl_context)

    # -- fast path -----------------------------------------------------------------------------------
    def _target(self, url: str) -> tuple[str, str, int, str, bytes] | None:
        """(scheme, host, port, host header, request line) of a URL the fast path can take, cached."""
        found = self._urls.get(url, False)
        if found is not False:
            return found  # type: ignore[return-value]
        out = None
        if url.isascii() and not any(c in url for c in "\r\n\t @\\"):
            parts = urlsplit(url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme in ("http", "https") and parts.hostname and not parts.username:
                default = 443 if parts.scheme == "https" else 80
                port = port or default
                host = parts.hostname
                bracketed = f"[{host}]" if ":" in host else host
                host_header = bracketed if port == default else f"{bracketed}:{port}"
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                out = (parts.scheme, host, port, host_header, f"POST {path} HTTP/1.1\r\n".encode())
        if len(self._urls) > 10000:
            self._urls.clear()
        self._urls[url] = out
        return out

    def start(self, url: str, body: bytes, headers: dict[str, str], timeout_ms: int, policy: AddressPolicy,
              ssl_context: ssl.SSLContext | None = None,
              on_done: Callable[[SendResult], None] | None = None) -> asyncio.Future[SendResult]:
        """Hand the request to the socket now when a keep-alive connection is idle (else connect in
        the background). The future gives the result; `on_done`, when given, is called with it as
        soon as it is known (from the protocol callback on the fast path)."""
        loop = asyncio.get_running_loop()
        target = self._target(url)
        if target is None:
            task = loop.create_task(self._send_aiohttp(url, body, headers, timeout_ms, policy, ssl_context))
            if on_done is not None:
                task.add_done_callback(lambda t: None if t.cancelled() else on_done(t.result()))
            return task
        ex = _Exchange(loop.create_future(), timeout_ms, self.body_limit, on_done)
        scheme, host, port, host_header, line = target
        try:
            head = [line, b"Host: ", host_header.encode(), b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n"]
            for name, value in headers.items():
                if name.lower() in _FORBIDDEN_HEADERS:
                    continue
                if not name or _UNSAFE_NAME.search(name) or _UNSAFE_VALUE.search(value):
                    raise ValueError(f"invalid header {name!r}")
                head.append(f"{name}: {value}\r\n".encode("latin-1"))
        except (ValueError, UnicodeEncodeError) as exc:
            ex.fail("other", f"{type(exc).__name__}: {exc}")
            return ex.fut
        head.append(b"\r\n")
        head.append(body)
        data = b"".join(head)
        ctx = (ssl_context if ssl_context is not None else self.tls) if scheme == "https" else None
        key = (scheme, host, port, id(ctx))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = []
        ex.timer = loop.call_later(timeout_ms / 1000, ex.on_timeout)
        now = time.monotonic()
        if now - self._swept > 10:
            self._sweep(now)
        while pool:
            used, conn = pool.pop()
            if not conn.closed and not conn.transport.is_closing() and now - used < IDLE_S:
                conn.request(data, ex)
                ex.sent_ns = time.perf_counter_ns()   # written: from here on it is the network's time
                return ex.fut
            conn.abort()
        ex.sent_ns = time.perf_counter_ns()           # connecting is the network's time too
        ex.connecting = loop.create_task(self._connect(pool, host, port, ctx, policy, data, ex))
        return ex.fut

    def _sweep(self, now: float) -> None:
        self._swept = now
        for pool in self._pools.values():
            while pool and now - pool[0][0] >= IDLE_S:
                pool.pop(0)[1].abort()

    async def _addresses(self, host: str, port: int, policy: AddressPolicy) -> list[str]:
        try:
            ipaddress.ip_address(host)
            found = [host]
        except ValueError:
            cached = self._dns.get((host, port))
            if cached is not None and cached[0] > time.monotonic():
                found = cached[1]
            else:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
                found = list(dict.fromkeys(str(info[4][0]) for info in infos))
                self._dns[(host, port)] = (time.monotonic() + 30, found)
        return screened(policy, host, found, str)

    async def _connect(self, pool: list[tuple[float, _Conn]], host: str, port: int, ctx: ssl.SSLContext | None,
                       policy: AddressPolicy, data: bytes, ex: _Exchange) -> None:
        loop = asyncio.get_running_loop()
        try:
            addresses = await self._addresses(host, port, policy)
            last: Exception | None = None
            for address in addresses:
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Conn(pool), address, port, ssl=ctx, server_hostname=host if ctx else None)
                    break
                except ssl.SSLError:
                    raise
                except OSError as exc:
                    last = exc
            else:
                raise last or OSError(f"could not connect to {host}:{port}")
        except asyncio.CancelledError:
            return
        except AddressRefused as exc:
            ex.fail("blocked", f"blocked: {exc}", permanent=True)
            return
        except ssl.SSLError as exc:
            ex.fail("tls", f"TLS error: {exc}")
            return
        except socket.gaierror as exc:
            ex.fail("dns", f"DNS error: {exc}")
            return
        except OSError as exc:
            ex.fail("refused", f"connection failed: {exc}")
            return
        ex.connecting = None
        if ex.fut.done():          # timed out while connecting
            conn.abort()
            return
        conn.request(data, ex)

    # -- aiohttp path ------------------------------------------------------------------------------
    async def _send_aiohttp(self, url: str, body: bytes, headers: dict[str, str], timeout_ms: int,
                            policy: AddressPolicy, ssl_context: ssl.SSLContext | None = None) -> SendResult:
        _POLICY.set(policy)
        timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        sent = time.perf_counter_ns()
        try:
            async with self.session.post(url, data=body, headers=headers, timeout=timeout,
                                         allow_redirects=False,
                                         ssl=ssl_context if ssl_context is not None else self.tls) as resp:
                raw = await _read_prefix(resp.content, self.body_limit)
                done = time.perf_counter_ns()
                if not resp.content.at_eof():
                    resp.close()    # more body than is kept: the connection goes, never drained for reuse
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


async def _read_prefix(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The first `limit` body bytes (fewer only when the body is shorter): one read() returns just
    what has arrived so far."""
    parts: list[bytes] = []
    got = 0
    while got < limit:
        piece = await stream.read(limit - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


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
