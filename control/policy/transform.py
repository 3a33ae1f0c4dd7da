"""Endpoint transformations: a user's JavaScript `handler(webhook)` run in a sandboxed QuickJS.

Engine: quickjs-ng (`import _quickjs`), run in a child process (control/policy/js_sandbox.py)
that keeps each endpoint version's context compiled in an LRU. A call is bounded three ways:
- CPU: the engine's interrupt handler ends a script at the limit; since it is never polled inside a
  native call (a loop over `JSON.stringify` ran 18 s against a 50 ms limit), the caller also
  watches the child's CPU clock and kills it at KILL_FACTOR times the limit, or at WALL_FACTOR
  times it in wall time when the child is starved, so no call blocks its caller much longer;
- memory and stack, by the engine, and the sizes of the webhook handed in and of the answer;
- per tenant: a TimeBudget of milliseconds per second (`tenant_ms_per_s`), so one tenant's heavy
  scripts cannot take over the caller's event loop; a tenant over it gets `throttled_ms` back and
  nothing runs.

`apply` never raises: any failure is a TransformResult with `error` set. A runner is used by one
thread at a time (a lock makes a shared one safe, e.g. the API's checker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import orjson

from control.policy import js_sandbox
from control.policy.js_sandbox import (
    MAX_ARRAY_LENGTH,
    MAX_ERROR_LENGTH,
    OP_APPLY,
    OP_CHECK,
    OP_FORGET,
    REQUEST,
    RESPONSE,
    ST_BAD_CODE,
    ST_OK,
    ST_READY,
    time_message,
)
from control.policy.time_budget import TimeBudget
from control.validate import RESERVED_HEADERS

__all__ = ["MAX_ARRAY_LENGTH", "TransformError", "TransformResult", "TransformRunner", "check_transformation"]

MAX_INPUT_BYTES = 2 * 2**20       # the webhook as JSON: payloads are at most api.max_body_bytes (1 MiB)
MAX_OUTPUT_BYTES = 2 * 2**20      # the handler's answer as JSON
KILL_FACTOR = 1.5                 # CPU time, in limits, after which the sandbox process is killed
WALL_FACTOR = 10                  # the same in wall time, for a starved sandbox (at least 200 ms)
STARTUP_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


class TransformError(ValueError):
    """A transformation that cannot be used (does not compile, or defines no `handler`)."""


@dataclass(frozen=True)
class TransformResult:
    """What a handler decided. On success payload/headers/url are all set (payload as the exact
    bytes to send); when cancelled, failed or throttled they are None. `throttled_ms` is set, and
    nothing ran, when the tenant's time budget is spent: retry after that many ms, not a failure.
    `elapsed_ms` is how long the call held its caller (what the tenant is charged), `cpu_ms` the
    CPU time the sandbox spent on it (None if it did not run)."""

    payload: bytes | None
    headers: dict[str, str] | None
    url: str | None
    cancelled: bool
    error: str | None
    throttled_ms: int | None = None
    elapsed_ms: float = 0.0
    cpu_ms: float | None = None


def _failed(error: str) -> TransformResult:
    return TransformResult(None, None, None, False, error[:MAX_ERROR_LENGTH])


class _Overrun(Exception):
    """The sandbox process was killed for running past KILL_FACTOR times the limit."""


class _Lost(Exception):
    """The sandbox process could not start or ended unexpectedly."""


def _cpu_ns(pid: int) -> int | None:
    """A process's CPU time so far (Linux: the scheduler's ns count); None where unknown."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class _Worker:
    """One sandbox process and its pipes; `cpu_ns` is its CPU clock at its last answer."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603 - our own argv
                                     bufsize=0, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd_in, self.fd_out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self.fd_in, False)
        os.set_blocking(self.fd_out, False)
        self.ready = False
        self.cpu_ns = 0          # its CPU clock at its last answer
        self.used_ns = 0         # CPU it spent on the last exchange
        self.contexts = 0
        self._buffer = bytearray()
        self._poller = select.poll()
        self._poller.register(self.fd_out, select.POLLIN)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):   # a killed process is gone in ms
            self.proc.wait(1.0)

    def exchange(self, frame: bytes, cpu_limit_ns: int | None, wall_limit_ns: int) -> tuple[int, bytes]:
        """Send `frame` (may be empty) and read one answer. Raises _Overrun once the process has
        used `cpu_limit_ns` of CPU on it or `wall_limit_ns` has passed, _Lost if it ended."""
        started = time.perf_counter_ns()
        pending = memoryview(frame)
        if pending:
            pending = pending[self._send(pending):]
        if pending:   # more than the pipe holds: the rest goes as the sandbox reads
            self._poller.register(self.fd_in, select.POLLOUT)
        # CPU time never runs ahead of wall time: no need to read the clock before that much passed
        look_ns = wall_limit_ns if cpu_limit_ns is None else min(cpu_limit_ns, wall_limit_ns)
        while (answer := self._take()) is None:
            waited = time.perf_counter_ns() - started
            if waited >= look_ns:
                now_ns = _cpu_ns(self.proc.pid)
                self.used_ns = waited if now_ns is None else now_ns - self.cpu_ns
                if waited >= wall_limit_ns or (cpu_limit_ns is not None and self.used_ns >= cpu_limit_ns):
                    raise _Overrun
                assert cpu_limit_ns is not None   # else look_ns is the wall limit
                look_ns = min(waited + max(cpu_limit_ns // 8, 1_000_000), wall_limit_ns)
            for fd, _event in self._poller.poll(max(1, -(-(look_ns - waited) // 1_000_000))):
                if fd == self.fd_in:
                    pending = pending[self._send(pending):]
                    if not pending:
                        self._poller.unregister(self.fd_in)
                else:
                    self._receive()
        return answer

    def _send(self, data: memoryview) -> int:
        try:
            return os.write(self.fd_in, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise _Lost from exc

    def _receive(self) -> None:
        try:
            chunk = os.read(self.fd_out, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            raise _Lost
        self._buffer += chunk

    def _take(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < RESPONSE.size:
            return None
        status, cpu_ns, contexts, size = RESPONSE.unpack_from(self._buffer)
        if len(self._buffer) < RESPONSE.size + size:
            return None
        body = bytes(self._buffer[RESPONSE.size:RESPONSE.size + size])
        del self._buffer[:RESPONSE.size + size]
        self.used_ns, self.cpu_ns, self.contexts = cpu_ns - self.cpu_ns, cpu_ns, contexts
        return status, body


class TransformRunner:
    """Runs endpoints' handlers in a sandbox process, each key's code compiled once there."""

    def __init__(self, time_limit_ms: int = 50, memory_limit_bytes: int = 32 * 2**20,
                 max_contexts: int = 1000, *, tenant_ms_per_s: float = 200,
                 max_input_bytes: int = MAX_INPUT_BYTES, max_output_bytes: int = MAX_OUTPUT_BYTES,
                 clock_ms: Callable[[], float] = lambda: time.monotonic() * 1000) -> None:
        self.time_limit_ms = time_limit_ms
        self.memory_limit_bytes = memory_limit_bytes
        self.max_contexts = max_contexts
        self.max_input_bytes = max_input_bytes
        self.budget = TimeBudget(tenant_ms_per_s)
        self._clock_ms = clock_ms
        self._argv = [sys.executable, "-I", js_sandbox.__file__, str(time_limit_ms),
                      str(memory_limit_bytes), str(max_contexts), str(max_output_bytes)]
        self._worker = _spawn(self._argv)       # starts now, so it is ready by first use
        self._spare: _Worker | None = None      # kept once a worker had to be killed, started ahead
        self._outbox = bytearray()              # forget requests, sent ahead of the next call
        self._used_ns: int | None = None        # sandbox CPU spent on the last call
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Contexts the sandbox keeps (as of its last answer)."""
        return self._worker.contexts if self._worker is not None else 0

    def close(self) -> None:
        """End the sandbox processes (they also end on their own when this process does)."""
        with self._lock:
            for worker in (self._worker, self._spare):
                if worker is not None:
                    worker.kill()
            self._worker = self._spare = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def forget(self, key: str) -> None:
        """Drop a key's context (its endpoint changed or went away)."""
        data = key.encode()
        with self._lock:
            self._outbox += REQUEST.pack(OP_FORGET, len(data), 0, 0) + data

    def apply(self, key: str, code: str, webhook: dict[str, object], *,
              tenant: str | None = None) -> TransformResult:
        """Run `code`'s handler on `webhook` ({payload, headers, url, eventType, eventId}).

        `payload` may be the stored JSON bytes wrapped in `orjson.Fragment`: they go to the engine as
        they are. `headers` are the delivery's own headers; Mittr's signature headers are added after,
        over the result. With a `tenant`, the call is refused (throttled_ms set) while that tenant's
        time budget is spent, and its duration is charged to it."""
        if tenant is not None:
            wait = self.budget.retry_after_ms(tenant, self._clock_ms())
            if wait:
                return TransformResult(None, None, None, False, None, throttled_ms=wait)
        started = time.perf_counter()
        with self._lock:
            self._used_ns = None
            result = self._apply(key, code, webhook)
            cpu_ms = None if self._used_ns is None else self._used_ns / 1e6
        elapsed_ms = (time.perf_counter() - started) * 1000
        if tenant is not None:
            self.budget.charge(tenant, self._clock_ms(), elapsed_ms)
        return replace(result, elapsed_ms=elapsed_ms, cpu_ms=cpu_ms)

    def _apply(self, key: str, code: str, webhook: dict[str, object]) -> TransformResult:
        if not isinstance(code, str):
            return _failed("transformation does not compile: must be JavaScript defining function handler(webhook)")
        try:
            text = orjson.dumps(webhook)
        except TypeError as exc:   # webhook not JSON-serialisable
            return _failed(f"transformation failed: {exc}")
        if len(text) > self.max_input_bytes:
            return _failed(f"transformation failed: the webhook is larger than the {self.max_input_bytes} bytes "
                           "a transformation accepts")
        try:
            status, body = self._call(OP_APPLY, key, code, text)
        except _Overrun:
            return _failed(f"transformation failed: {time_message(self.time_limit_ms)}")
        except _Lost:
            return _failed("transformation failed: the sandbox process ended unexpectedly")
        if status == ST_BAD_CODE:
            return _failed(f"transformation does not compile: {body.decode()}")
        if status != ST_OK:
            return _failed(f"transformation failed: {body.decode()}")
        return _result(webhook, orjson.loads(body))

    def check(self, code: str) -> None:
        """Compile `code` (its top level runs, within the same limits) and require a `handler`
        function; raises TransformError saying why not."""
        if not isinstance(code, str):
            raise TransformError("must be JavaScript defining function handler(webhook)")
        with self._lock:
            try:
                status, body = self._call(OP_CHECK, "", code, b"")
            except _Overrun:
                raise TransformError(time_message(self.time_limit_ms)) from None
            except _Lost:
                raise TransformError("the sandbox process ended unexpectedly") from None
        if status != ST_OK:
            raise TransformError(body.decode())

    def _call(self, op: int, key: str, code: str, text: bytes) -> tuple[int, bytes]:
        key_b, code_b = key.encode(), code.encode()
        frame = bytes(self._outbox) + REQUEST.pack(op, len(key_b), len(code_b), len(text)) + key_b + code_b + text
        self._outbox.clear()
        worker = self._ready_worker()
        limit_ns = self.time_limit_ms * 1_000_000
        try:
            return worker.exchange(frame, int(KILL_FACTOR * limit_ns), max(WALL_FACTOR * limit_ns, 200_000_000))
        except (_Overrun, _Lost):
            self._replace()
            raise
        finally:
            self._used_ns = worker.used_ns

    def _ready_worker(self) -> _Worker:
        if self._worker is None:
            self._worker, self._spare = self._spare or _spawn(self._argv), None
        worker = self._worker
        if worker is None:
            raise _Lost
        if not worker.ready:
            try:
                status, _ = worker.exchange(b"", None, int(STARTUP_TIMEOUT_S * 1e9))
            except (_Overrun, _Lost):
                self._replace()
                raise _Lost from None
            if status != ST_READY:
                self._replace()
                raise _Lost
            worker.ready = True
        return worker

    def _replace(self) -> None:
        """Kill the current sandbox; the spare takes over, and a new spare starts in the background
        so the next call rarely waits for a process to start."""
        if self._worker is not None:
            self._worker.kill()
        self._worker, self._spare = self._spare, _spawn(self._argv)


def _spawn(argv: list[str]) -> _Worker | None:
    try:
        return _Worker(argv)
    except OSError:
        log.exception("the transformation sandbox process could not be started")
        return None


def _result(webhook: dict[str, object], out: Any) -> TransformResult:
    if not isinstance(out, dict):
        return _failed("transformation failed: handler must return the webhook object")
    if out.get("cancel") is True:
        return TransformResult(None, None, None, True, None)
    if "payload" not in out:
        return _failed("transformation failed: the returned webhook has no payload")
    headers = out.get("headers", {})
    problem = _header_problem(headers)
    if problem is not None:
        return _failed(f"transformation failed: {problem}")
    url = out.get("url", webhook.get("url"))
    if url is None and webhook.get("url") is None:    # nothing to route: an inbound request's shaping
        return TransformResult(orjson.dumps(out["payload"]), headers, None, False, None)
    if not _is_http_url(url):
        return _failed(f"transformation failed: url {url!r} is not an http(s) URL")
    return TransformResult(orjson.dumps(out["payload"]), headers, str(url), False, None)


def _header_problem(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return "headers must be an object of strings"
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            return f"header name {name!r} is not valid"
        if name.lower() in RESERVED_HEADERS:
            return f"header {name!r} is set by Mittr and cannot be changed"
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            return f"header {name!r} must be a single-line string"
    return None


def _is_http_url(url: Any) -> bool:
    if not isinstance(url, str) or len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


_CHECKER: TransformRunner | None = None
_CHECKER_LOCK = threading.Lock()


def check_transformation(code: str) -> None:
    """Compile `code` under the default limits and require a `handler` function; raises
    TransformError saying why not. Its sandbox process starts on first use."""
    global _CHECKER
    with _CHECKER_LOCK:
        if _CHECKER is None:
            _CHECKER = TransformRunner(max_contexts=0)
    _CHECKER.check(code)
