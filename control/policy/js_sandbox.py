"""The process that runs transformations: QuickJS contexts behind a pipe, so they can be killed.

QuickJS's interrupt handler (`set_time_limit`, checked against the process CPU clock) is polled by
the bytecode interpreter only every ~10,000 instructions, and never inside a native call: a loop
of a few hundred instructions that calls `JSON.stringify`, `'x'.repeat`, `String#indexOf`,
`Map#has` or spreads a big array over and over runs for seconds to minutes before the first poll
(measured up to 30 s for a 50 ms limit). The handler stays the first line (it ends most runaway
scripts at the limit, cleanly); this process boundary is the second: the parent
(control/policy/transform.py) waits for the answer with a deadline and kills this process when it
overruns, which no native call can escape.

Run as `python -I js_sandbox.py TIME_LIMIT_MS MEMORY_BYTES MAX_CONTEXTS MAX_OUTPUT_BYTES`; speaks
length-prefixed frames on stdin/stdout (REQUEST/RESPONSE below). It needs only the stdlib and
`_quickjs`, so it starts fast; importing it has no side effects, so the parent shares its frame
layouts and messages.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_ARRAY_LENGTH = 1 << 18
MAX_ERROR_LENGTH = 500
STACK_LIMIT_BYTES = 512 * 1024

REQUEST = struct.Struct("<BIII")    # op, then the byte lengths of key, code and input that follow
RESPONSE = struct.Struct("<BQII")   # status, process CPU ns after the request, contexts kept, body length
OP_APPLY, OP_CHECK, OP_FORGET = 1, 2, 3
ST_READY, ST_OK, ST_FAILED, ST_BAD_CODE = 0, 1, 2, 3

# Runs first in every context and evaluates to the function the worker calls per delivery: it
# parses the input and serialises the handler's answer inside the same timed, memory-limited call.
# It also wraps built-ins whose native loops never poll the interrupt handler (a 2**32-long sparse
# array would run for minutes), so they fail fast and cleanly instead of needing a kill.
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
  const parse = JSON.parse, stringify = JSON.stringify;
  return (text) => {
    const out = handler(parse(text));
    return out !== null && typeof out === "object" && !Array.isArray(out) ? stringify(out) : null;
  };
})()
""".replace("MAX_ARRAY_LENGTH", str(MAX_ARRAY_LENGTH))


def time_message(time_limit_ms: int) -> str:
    return f"exceeded the {time_limit_ms} ms CPU time limit"


def memory_message(memory_limit_bytes: int) -> str:
    return f"exceeded the {memory_limit_bytes // 2**20} MiB memory limit"


class CodeError(ValueError):
    """The code does not compile or defines no `handler` function."""


@dataclass
class _Compiled:
    code: str
    context: Any
    run: Any


class Sandbox:
    """The contexts of one process: each key's code compiled once into its own limited context."""

    def __init__(self, time_limit_ms: int, memory_limit_bytes: int, max_contexts: int,
                 max_output_bytes: int) -> None:
        # imported here, not at the top: the parent imports this module without needing the engine
        import _quickjs

        self._js = _quickjs
        self.time_limit_ms = time_limit_ms
        self.memory_limit_bytes = memory_limit_bytes
        self.max_contexts = max_contexts
        self.max_output_bytes = max_output_bytes
        self.compiled: OrderedDict[str, _Compiled] = OrderedDict()

    def compile(self, code: str) -> _Compiled:
        """A fresh context with limits, the prelude and `code` evaluated; raises CodeError."""
        if not code.strip():
            raise CodeError("must be JavaScript defining function handler(webhook)")
        context = self._js.Context()
        context.set_time_limit(self.time_limit_ms / 1000)
        context.set_memory_limit(self.memory_limit_bytes)
        context.set_max_stack_size(STACK_LIMIT_BYTES)
        run = context.eval(_PRELUDE)
        try:
            context.eval(code)
            kind = context.eval("typeof handler")
        except self._js.JSException as exc:
            raise CodeError(self.describe(exc)) from None
        if kind != "function":
            raise CodeError("must define function handler(webhook)")
        return _Compiled(code, context, run)

    def _get(self, key: str, code: str) -> _Compiled:
        found = self.compiled.get(key)
        if found is not None and found.code == code:
            self.compiled.move_to_end(key)
            return found
        compiled = self.compile(code)
        self.compiled[key] = compiled
        self.compiled.move_to_end(key)
        while len(self.compiled) > self.max_contexts:
            self.compiled.popitem(last=False)
        return compiled

    def apply(self, key: str, code: str, text: str) -> tuple[int, bytes]:
        """(ST_OK, the handler's answer as JSON, `null` when it returned no object),
        (ST_BAD_CODE, why it does not compile) or (ST_FAILED, why the call failed)."""
        try:
            compiled = self._get(key, code)
        except CodeError as exc:
            return ST_BAD_CODE, str(exc).encode()
        try:
            out = compiled.run(text)
        except self._js.JSException as exc:
            self.compiled.pop(key, None)   # a context that failed mid-call is not reused
            return ST_FAILED, self.describe(exc).encode()
        data = b"null" if out is None else out.encode()   # well-formed: lone surrogates are escaped
        if len(data) > self.max_output_bytes:
            return ST_FAILED, f"the returned webhook is larger than {self.max_output_bytes} bytes".encode()
        return ST_OK, data

    def describe(self, exc: Exception) -> str:
        """The first line of a JS error, with the limits' interrupts said plainly."""
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else ""
        if first == "InternalError: interrupted":
            return time_message(self.time_limit_ms)
        if first in ("InternalError: out of memory", "null", ""):
            return memory_message(self.memory_limit_bytes)
        return first[:MAX_ERROR_LENGTH]


def _read_exactly(fd: int, n: int) -> bytes:
    parts, missing = [], n
    while missing:
        chunk = os.read(fd, missing)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def _write(fd: int, status: int, contexts: int, body: bytes) -> None:
    frame = RESPONSE.pack(status, time.process_time_ns(), contexts, len(body)) + body
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view):]


def serve(sandbox: Sandbox, fd_in: int = 0, fd_out: int = 1) -> None:
    """Answer requests until the parent closes the pipe."""
    _write(fd_out, ST_READY, 0, b"")
    while True:
        try:
            op, key_len, code_len, text_len = REQUEST.unpack(_read_exactly(fd_in, REQUEST.size))
            body = _read_exactly(fd_in, key_len + code_len + text_len)
        except EOFError:
            return
        key = body[:key_len].decode()
        code = body[key_len:key_len + code_len].decode()
        if op == OP_FORGET:
            sandbox.compiled.pop(key, None)
            continue
        try:
            if op == OP_CHECK:
                sandbox.compile(code)
                status, answer = ST_OK, b""
            else:
                status, answer = sandbox.apply(key, code, body[key_len + code_len:].decode())
        except CodeError as exc:
            status, answer = ST_BAD_CODE, str(exc).encode()
        except Exception as exc:   # an engine surprise fails this call, not the process
            sandbox.compiled.pop(key, None)
            status, answer = ST_FAILED, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH].encode()
        _write(fd_out, status, len(sandbox.compiled), answer)


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when this process ends
    time_ms, memory, contexts, output = (int(arg) for arg in argv)
    serve(Sandbox(time_ms, memory, contexts, output))


if __name__ == "__main__":
    main(sys.argv[1:])
