"""The interfaces destinations implement, and how a store's or broker's errors become outcomes.

`Kind` is what the shard sees: one per delivery mode (HTTP push, and the batched stores and
brokers), each starting an attempt and reporting its SendResult through a callback. `Destination`
is one store or broker inside the batched kind: it opens a connection (or checks a directory),
sends a batch of messages and says, per message, either the broker's or the store's id for it or
the error; it is closed after any failure and opened again for the next batch.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from control.policy.ssrf import AddressPolicy
from engine.model import EndpointConfig, Task
from engine.request import Request
from engine.sender import AddressRefused, SendResult, category_for_status, screened

Sent = str | BaseException      # per message: its id at the destination, or why it failed
Done = Callable[[SendResult], None]


class Kind(Protocol):
    """One way attempts leave the engine. `start` runs in the shard's loop right after the request
    is built and must not block; it reports the attempt's outcome through `on_done` exactly once
    (failures of the destination included: raising is for the shard's own bugs)."""

    def start(self, cfg: EndpointConfig | None, task: Task, request: Request, attempted_at: datetime,
              on_done: Done) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Message:
    event_id: uuid.UUID
    event_type: str | None
    headers: dict[str, str]      # X-Mittr-* metadata and signature, the endpoint's and event's own
    body: bytes
    attempted_at: datetime


class Destination(Protocol):
    async def open(self) -> None: ...

    async def send(self, batch: list[Message]) -> list[Sent]: ...

    async def close(self) -> None: ...


class Rejected(Exception):
    """The destination answered, and said no (a nack, an error reply, an HTTP status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 8 and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def classify(exc: BaseException, sent_ns: int, done_ns: int) -> SendResult:
    """An error from a destination as an attempt's outcome, in the categories HTTP attempts use."""
    text = f"{type(exc).__name__}: {exc}"[:1000]
    chain = _chain(exc)
    status: int | None = None
    category, outcome, permanent = "other", "failure", False
    if any(isinstance(e, (TimeoutError, asyncio.TimeoutError)) for e in chain):
        category, outcome = "timeout", "timeout"
    elif any(isinstance(e, AddressRefused) for e in chain):
        category, permanent = "blocked", True
    elif any(isinstance(e, socket.gaierror) for e in chain):
        category = "dns"
    elif any(isinstance(e, ssl.SSLError) for e in chain):
        category = "tls"
    elif any(isinstance(e, (ConnectionRefusedError, ConnectionResetError)) for e in chain) or \
            any("connect" in type(e).__name__.lower() or "noservers" in type(e).__name__.lower() for e in chain):
        category = "refused"
    elif isinstance(exc, Rejected) and exc.status is not None:
        status = exc.status
        category = category_for_status(exc.status) or "other"
    return SendResult(status, "", text, category, outcome, permanent, None, sent_ns, done_ns)


def delivered(ident: str, sent_ns: int, done_ns: int) -> SendResult:
    return SendResult(None, ident, "", None, "success", False, None, sent_ns, done_ns)


async def screen_url(url: str, policy: AddressPolicy, default_port: int) -> None:
    """The SSRF policy HTTP deliveries obey, for a broker's or store's host: every address it
    resolves to is checked (AddressRefused when none is allowed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or default_port,
                                                         type=socket.SOCK_STREAM)
    screened(policy, host, [str(i[4][0]) for i in infos], lambda a: a)


def ndjson(batch: list[Message], compress: bool) -> bytes:
    """One record a line: event id, type, timestamp, headers and the payload as sent."""
    data = b"".join(orjson.dumps({
        "id": str(m.event_id), "type": m.event_type, "timestamp": m.attempted_at.isoformat(),
        "headers": m.headers, "payload": orjson.Fragment(m.body)}) + b"\n" for m in batch)
    return gzip.compress(data, 6) if compress else data


def config_str(cfg: dict[str, Any], key: str) -> str:
    return str(cfg.get(key) or "")
