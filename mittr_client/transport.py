"""What to do with one answer (or one failure to get one): pure, shared by both clients."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from mittr_client import __version__
from mittr_client.calls import Call
from mittr_client.errors import MittrError, error_from
from mittr_client.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8400"
DEFAULT_TIMEOUT = 30.0
POLL_GRACE = 15.0  # a long poll may be held `timeout` seconds before it answers


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Retry:
    delay: float


@dataclass(frozen=True)
class Fail:
    error: MittrError


@dataclass(frozen=True)
class Recover:
    """The create was stored by an earlier try whose answer was lost: read this event instead."""

    event_id: str


Verdict = Done[T] | Retry | Fail | Recover


def judge_answer(call: Call[T], attempt: int, status: int, text: str, retry_after: str | None,
                 policy: RetryPolicy, now: float | None = None) -> Verdict[T]:
    body: Any = None
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    if 200 <= status < 300:
        return Done(call.parse(body if body is not None else {}))
    wait = parse_retry_after(retry_after, time.time() if now is None else now)
    if status in RETRY_STATUSES:
        delay = policy.delay(attempt, wait)
        if delay is not None:
            return Retry(delay)
    if (status == 409 and call.recover_event and attempt > 1 and isinstance(body, dict)
            and isinstance(body.get("eventId"), str)):
        return Recover(body["eventId"])
    return Fail(error_from(status, body, wait))


def judge_failure(call: Call[Any], attempt: int, exc: httpx.TransportError, policy: RetryPolicy) -> Verdict[Any]:
    """A request that got no answer. It may have reached the server, so only calls that are safe to
    repeat go again, unless the connection was never made."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    if never_sent or call.idempotent:
        delay = policy.delay(attempt, None)
        if delay is not None:
            return Retry(delay)
    return Fail(error_from(0, {"error": f"{type(exc).__name__}: {exc}", "code": "UNREACHABLE"}))


def settings(base_url: str | None, api_key: str | None, project_id: str | None) -> tuple[str, dict[str, str]]:
    """Base URL and default headers, from arguments or MITTR_URL / MITTR_API_KEY / MITTR_PROJECT_ID."""
    url = (base_url or os.environ.get("MITTR_URL") or DEFAULT_URL).rstrip("/")
    key = api_key or os.environ.get("MITTR_API_KEY")
    project = project_id or os.environ.get("MITTR_PROJECT_ID")
    headers = {"User-Agent": f"mittr-client/{__version__}", "Accept": "application/json"}
    if key:
        headers["X-API-Key"] = key
    if project:
        headers["X-Project-ID"] = project
    return url, headers


def timeout_for(call: Call[Any], default: float) -> float:
    """A long poll is held up to its `timeout` before answering: wait that long and then some."""
    if call.path != "/api/v1/poll":
        return default
    held = call.params.get("timeout")
    return max(default, float(30 if held is None else held) + POLL_GRACE)
