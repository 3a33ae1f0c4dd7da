"""Tenant regular expressions, run by RE2 so that matching is linear in the subject.

Python's `re` backtracks: `^(a+)+$` against a few dozen characters runs for hours, and inside
the API's event loop that stalls every request of the worker. RE2 has no backtracking (so no
backreferences or lookaround: such patterns are refused, saying so) and bounds its memory per
pattern. A pattern is at most MAX_PATTERN_LENGTH characters and only subjects of at most
MAX_SUBJECT_LENGTH characters are matched, so one match costs at most a few milliseconds.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

MAX_PATTERN_LENGTH = 512
MAX_SUBJECT_LENGTH = 8192
MEMORY_LIMIT = 512 * 1024     # RE2's max_mem per compiled pattern (program and DFA cache)
CACHE_SIZE = 128               # compiled patterns kept per process (re2 keeps up to 128 more itself)

_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9k]")
_HINTS = (
    ("invalid perl operator: (?=", "lookahead is not supported"),
    ("invalid perl operator: (?!", "lookahead is not supported"),
    ("invalid perl operator: (?<=", "lookbehind is not supported"),
    ("invalid perl operator: (?<!", "lookbehind is not supported"),
    ("pattern too large", f"it needs more than the {MEMORY_LIMIT // 1024} KiB a pattern may use"),
)


class RegexError(ValueError):
    """A pattern RE2 will not run; the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MEMORY_LIMIT
    options.log_errors = False      # RE2 would print every refused tenant pattern to stderr
    options.never_capture = True    # only "does it match" is asked: no submatch work
    return options


_OPTIONS = _options()


def _reason(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if _BACKREFERENCE.search(text):
        return f"{text} (backreferences are not supported)"
    for marker, hint in _HINTS:
        if marker in text:
            return f"{text} ({hint})"
    return text


@functools.lru_cache(maxsize=CACHE_SIZE)
def compiled(pattern: str) -> Any:
    """The RE2 program for `pattern`; RegexError if it is too long or RE2 cannot run it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(f"regex longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise RegexError(f"invalid regex (RE2 syntax): {_reason(exc)}") from None


def check(pattern: str) -> None:
    """RegexError unless `pattern` compiles (and warms the cache for the matches to come)."""
    compiled(pattern)


def searchable(subject: str) -> bool:
    """Whether `subject` is short enough to be matched at all."""
    return len(subject) <= MAX_SUBJECT_LENGTH


def search(pattern: str, subject: str) -> bool:
    """`pattern` found anywhere in `subject`; False for a subject too long to match.

    RE2 releases the GIL while it scans, so a worker thread running this leaves the event loop
    free. Never raises for any subject (lone surrogates are passed through as bytes)."""
    if not searchable(subject):
        return False
    return compiled(pattern).search(subject.encode("utf-8", "surrogatepass")) is not None
