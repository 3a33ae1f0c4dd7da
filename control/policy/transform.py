"""Endpoint transformations: a user's JavaScript `handler(webhook)` run in a sandboxed QuickJS.

Engine: quickjs-ng (the maintained QuickJS fork, `import _quickjs`). Each endpoint version gets its
own context, compiled once and kept in an LRU; a delivery then costs one JSON hand-over and one
direct call of the compiled `handler`. Each context has a CPU-time limit per call (QuickJS's
interrupt handler, polled by the interpreter and, in quickjs-ng, by the regexp engine), a memory
limit and a stack limit. The few array built-ins that loop natively without polling (sort, join,
reverse, ... over a huge sparse array) are wrapped to refuse arrays longer than MAX_ARRAY_LENGTH, so
a handler cannot escape the time limit through them. The sandbox has no I/O: no `std`/`os` modules,
no timers, no `require`, no network.

`apply` never raises and never leaves a half-used context behind: any failure is a TransformResult
with `error` set, and the context that failed is dropped so the next call starts clean. A runner is
not thread-safe: use one per thread (a shard's event loop thread).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import _quickjs
import orjson

from control.validate import RESERVED_HEADERS

MAX_ARRAY_LENGTH = 1 << 18
MAX_ERROR_LENGTH = 500
STACK_LIMIT_BYTES = 512 * 1024
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")

# Runs first in every context. Wraps built-ins whose native loops do not poll the interrupt
# handler (measured: ~20-40 ns per element, so a 2**32-long sparse array would run for minutes).
_PRELUDE = """
(() => {
  const limit = MAX_ARRAY_LENGTH;
  const tooLong = (name) => {
    throw new RangeError(name + ": arrays longer than " + limit + " elements are not allowed");
  };
  const guard = (proto, names) => {
    for (const name of names) {
      const original = proto[name];
      if (typeof original !== "function") continue;
      const wrapped = {[name](...args) {
        if (this != null && this.length > limit) tooLong(name);
        for (const arg of args) if (arg != null && typeof arg === "object" && arg.length > limit) tooLong(name);
        return original.apply(this, args);
      }}[name];
      Object.defineProperty(proto, name, {value: wrapped, writable: true, configurable: true});
    }
  };
  const natives = ["join", "toString", "toLocaleString", "reverse", "sort", "copyWithin", "fill",
                   "flat", "flatMap", "splice", "toReversed", "toSorted", "toSpliced", "with",
                   "indexOf", "lastIndexOf", "includes", "slice", "concat"];
  guard(Array.prototype, natives);
  guard(Object.getPrototypeOf(Uint8Array.prototype), natives);
})();
""".replace("MAX_ARRAY_LENGTH", str(MAX_ARRAY_LENGTH))


class TransformError(ValueError):
    """A transformation that cannot be used (does not compile, or defines no `handler`)."""


@dataclass(frozen=True)
class TransformResult:
    """What a handler decided. On success payload/headers/url are all set (payload as the exact
    bytes to send); when cancelled or failed they are None."""

    payload: bytes | None
    headers: dict[str, str] | None
    url: str | None
    cancelled: bool
    error: str | None


def _failed(error: str) -> TransformResult:
    return TransformResult(None, None, None, False, error[:MAX_ERROR_LENGTH])


@dataclass
class _Compiled:
    code: str
    context: Any
    handler: Any


class TransformRunner:
    """Compiles each key's code once into its own context and calls its handler per delivery."""

    def __init__(self, time_limit_ms: int = 50, memory_limit_bytes: int = 32 * 2**20,
                 max_contexts: int = 1000) -> None:
        self.time_limit_ms = time_limit_ms
        self.memory_limit_bytes = memory_limit_bytes
        self.max_contexts = max_contexts
        self._compiled: OrderedDict[str, _Compiled] = OrderedDict()

    def __len__(self) -> int:
        return len(self._compiled)

    def compile(self, code: str) -> _Compiled:
        """A fresh context with limits, the prelude and `code` evaluated; raises TransformError."""
        if not isinstance(code, str) or not code.strip():
            raise TransformError("must be JavaScript defining function handler(webhook)")
        context = _quickjs.Context()
        context.set_time_limit(self.time_limit_ms / 1000)
        context.set_memory_limit(self.memory_limit_bytes)
        context.set_max_stack_size(STACK_LIMIT_BYTES)
        context.eval(_PRELUDE)
        try:
            context.eval(code)
            kind = context.eval("typeof handler")
        except _quickjs.JSException as exc:
            raise TransformError(self._describe(exc)) from None
        if kind != "function":
            raise TransformError("must define function handler(webhook)")
        return _Compiled(code, context, context.eval("handler"))

    def _get(self, key: str, code: str) -> _Compiled:
        found = self._compiled.get(key)
        if found is not None and (found.code is code or found.code == code):
            self._compiled.move_to_end(key)
            return found
        compiled = self.compile(code)
        self._compiled[key] = compiled
        self._compiled.move_to_end(key)
        while len(self._compiled) > self.max_contexts:
            self._compiled.popitem(last=False)
        return compiled

    def forget(self, key: str) -> None:
        """Drop a key's context (its endpoint changed or went away)."""
        self._compiled.pop(key, None)

    def apply(self, key: str, code: str, webhook: dict[str, object]) -> TransformResult:
        """Run `code`'s handler on `webhook` ({payload, headers, url, eventType, eventId}).

        `payload` may be the stored JSON bytes wrapped in `orjson.Fragment`, which skips parsing
        them in Python: they go to the engine as they are. `headers` are the delivery's own headers
        (custom and event headers); Mittr's signature headers are added after, over the result."""
        try:
            compiled = self._get(key, code)
        except TransformError as exc:
            return _failed(f"transformation does not compile: {exc}")
        try:
            arg = compiled.context.parse_json(orjson.dumps(webhook).decode())
            out = compiled.handler(arg)
            text = out.json() if isinstance(out, _quickjs.Object) else None
        except _quickjs.JSException as exc:
            self.forget(key)
            return _failed(f"transformation failed: {self._describe(exc)}")
        except (TypeError, ValueError, OverflowError) as exc:   # webhook not JSON-serialisable
            self.forget(key)
            return _failed(f"transformation failed: {exc}")
        return _result(webhook, orjson.loads(text) if text is not None else None)

    def _describe(self, exc: Exception) -> str:
        """The first line of a JS error, with the limits' interrupts said plainly."""
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else ""
        if first == "InternalError: interrupted":
            return f"exceeded the {self.time_limit_ms} ms CPU time limit"
        if first in ("InternalError: out of memory", "null", ""):
            return f"exceeded the {self.memory_limit_bytes // 2**20} MiB memory limit"
        return first


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


_CHECKER = TransformRunner(max_contexts=0)


def check_transformation(code: str) -> None:
    """Compile `code` and require a `handler` function; raises TransformError saying why not."""
    _CHECKER.compile(code)
