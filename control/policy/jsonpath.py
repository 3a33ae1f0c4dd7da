"""A deliberately tiny JSONPath subset for filters and FIFO keys.

Only ``$``, ``.name``, ``['name']`` and ``[index]`` are supported: no wildcards, slices,
recursion or script expressions, so evaluating user-supplied paths is cheap and safe.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MAX_PATH_LENGTH = 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"-?\d+")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "/": "/"}

Step = str | int


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A parsed path: a sequence of object keys (str) and array indexes (int)."""

    expr: str
    steps: tuple[Step, ...]

    def get(self, doc: object) -> tuple[bool, object]:
        """(found, value) of the path in ``doc``; (False, None) when any step is missing."""
        value = doc
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(value, dict) or step not in value:
                    return False, None
                value = value[step]
            else:
                if not isinstance(value, list) or not -len(value) <= step < len(value):
                    return False, None
                value = value[step]
        return True, value


def _error(expr: str, pos: int, problem: str) -> ValueError:
    return ValueError(f"invalid JSONPath {expr!r} at position {pos}: {problem}")


def _quoted(expr: str, pos: int) -> tuple[str, int]:
    """Parse a quoted name starting at ``pos`` (the quote); return (name, position after)."""
    quote = expr[pos]
    out: list[str] = []
    i = pos + 1
    while i < len(expr):
        ch = expr[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(expr) or expr[i + 1] not in _ESCAPES:
                raise _error(expr, i, "invalid escape in quoted name")
            out.append(_ESCAPES[expr[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise _error(expr, pos, "unterminated quoted name")


def _parse(expr: str) -> tuple[Step, ...]:
    if not expr.startswith("$"):
        raise _error(expr, 0, "a path must start with '$'")
    steps: list[Step] = []
    i = 1
    while i < len(expr):
        ch = expr[i]
        if ch == ".":
            match = _NAME.match(expr, i + 1)
            if match is None:
                raise _error(expr, i + 1, "expected a name after '.' (use ['...'] for other keys)")
            steps.append(match.group())
            i = match.end()
        elif ch == "[":
            if i + 1 < len(expr) and expr[i + 1] in "'\"":
                name, i = _quoted(expr, i + 1)
                steps.append(name)
            else:
                match = _INDEX.match(expr, i + 1)
                if match is None:
                    raise _error(expr, i + 1, "expected a quoted name or an integer index after '['")
                steps.append(int(match.group()))
                i = match.end()
            if i >= len(expr) or expr[i] != "]":
                raise _error(expr, i, "expected ']'")
            i += 1
        else:
            raise _error(expr, i, f"unexpected character {ch!r} (expected '.' or '[')")
    return tuple(steps)


def compile_path(expr: str) -> CompiledPath:
    """Parse ``expr`` once (cached); raises ValueError describing bad syntax."""
    if not isinstance(expr, str):
        raise ValueError(f"a JSONPath must be a string, got {type(expr).__name__}")
    if len(expr) > MAX_PATH_LENGTH:
        raise ValueError(f"JSONPath longer than {MAX_PATH_LENGTH} characters")
    return _compile(expr)


@functools.lru_cache(maxsize=4096)
def _compile(expr: str) -> CompiledPath:
    return CompiledPath(expr, _parse(expr.strip()))
