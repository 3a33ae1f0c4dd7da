"""Subscription filters: decide whether an event goes to an endpoint.

A filter is a list of conditions ``{"field": <JSONPath>, "operator": ..., "value": ...}``
that must all hold. Specs come from API users, so they are validated up front with
messages naming the offending entry, matching never raises whatever the document, and its
cost is bounded: at most MAX_CONDITIONS conditions in MAX_FILTER_BYTES of JSON, values nested
at most MAX_VALUE_DEPTH deep (equality recurses into them), and regexes run by RE2 on bounded
subjects (control.policy.regex). Filters holding a regex are evaluated off the event loop by
the caller (`uses_regex`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from control.policy import regex
from control.policy.jsonpath import CompiledPath, compile_path

MAX_REGEX_LENGTH = regex.MAX_PATTERN_LENGTH
MAX_CONDITIONS = 32
MAX_FILTER_BYTES = 16384
MAX_VALUE_DEPTH = 16

_ORDERED = ("gt", "gte", "lt", "lte")
OPERATORS = frozenset({"eq", "ne", *_ORDERED, "in", "nin", "contains", "exists", "regex"})


class FilterError(ValueError):
    """An invalid filter specification (the message names the entry and the problem)."""


def json_equal(a: object, b: object) -> bool:
    """Equality with JSON semantics: booleans are not numbers, 1 == 1.0, deep for containers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _order(actual: object, expected: object) -> int | None:
    """-1/0/1 ordering of two numbers or two strings; None if they are not comparable."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return None
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        if actual != actual or expected != expected:  # NaN orders with nothing
            return None
        return (actual > expected) - (actual < expected)
    if isinstance(actual, str) and isinstance(expected, str):
        return (actual > expected) - (actual < expected)
    return None


_ORDER_OK: dict[str, Callable[[int], bool]] = {
    "gt": lambda o: o > 0,
    "gte": lambda o: o >= 0,
    "lt": lambda o: o < 0,
    "lte": lambda o: o <= 0,
}


def _compare(op: str, actual: object, expected: object) -> bool:
    order = _order(actual, expected)
    return order is not None and _ORDER_OK[op](order)


def _contains(actual: object, expected: object) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(json_equal(item, expected) for item in actual)
    return False


@dataclass(frozen=True, slots=True)
class Condition:
    """One validated condition."""

    path: CompiledPath
    operator: str
    value: object

    def matches(self, doc: object) -> bool:
        found, actual = self.path.get(doc)
        op = self.operator
        if op == "exists":
            return found is self.value
        if not found:
            return op in ("ne", "nin")  # a missing field is "not equal" / "not in" anything
        return _MATCHERS[op](self, actual)


def _in(cond: Condition, actual: object) -> bool:
    options = cond.value
    return isinstance(options, list) and any(json_equal(actual, option) for option in options)


def _regex(cond: Condition, actual: object) -> bool:
    # the pattern text, compiled through regex's bounded cache: cached filters don't pin RE2 memory
    return isinstance(actual, str) and isinstance(cond.value, str) and regex.search(cond.value, actual)


_MATCHERS: dict[str, Callable[[Condition, object], bool]] = {
    "eq": lambda c, v: json_equal(v, c.value),
    "ne": lambda c, v: not json_equal(v, c.value),
    "gt": lambda c, v: _compare("gt", v, c.value),
    "gte": lambda c, v: _compare("gte", v, c.value),
    "lt": lambda c, v: _compare("lt", v, c.value),
    "lte": lambda c, v: _compare("lte", v, c.value),
    "in": _in,
    "nin": lambda c, v: not _in(c, v),
    "contains": lambda c, v: _contains(v, c.value),
    "regex": _regex,
}


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A validated filter; an empty one matches everything."""

    conditions: tuple[Condition, ...]
    uses_regex: bool = False    # worth running off the event loop

    def matches(self, doc: object) -> bool:
        """True when every condition holds for ``doc``."""
        return all(cond.matches(doc) for cond in self.conditions)


def _compile_condition(index: int, entry: object) -> Condition:
    where = f"filter[{index}]"
    if not isinstance(entry, dict):
        raise FilterError(f"{where}: expected an object, got {type(entry).__name__}")
    if "field" not in entry:
        raise FilterError(f"{where}.field: missing")
    field = entry["field"]
    if not isinstance(field, str):
        raise FilterError(f"{where}.field: expected a JSONPath string")
    try:
        path = compile_path(field)
    except ValueError as exc:
        raise FilterError(f"{where}.field: {exc}") from None
    if "operator" not in entry:
        raise FilterError(f"{where}.operator: missing")
    op = entry["operator"]
    if not isinstance(op, str) or op not in OPERATORS:
        raise FilterError(f"{where}.operator: unknown operator {op!r}")
    if op == "exists":
        value = entry.get("value", True)
        if not isinstance(value, bool):
            raise FilterError(f"{where}.value: 'exists' needs true or false")
        return Condition(path, op, value)
    if "value" not in entry:
        raise FilterError(f"{where}.value: missing")
    value = entry["value"]
    if _deeper_than(value, MAX_VALUE_DEPTH):
        raise FilterError(f"{where}.value: nested deeper than {MAX_VALUE_DEPTH} levels")
    if op in ("in", "nin") and not isinstance(value, list):
        raise FilterError(f"{where}.value: {op!r} needs a list")
    if op in _ORDERED and not (_is_number(value) or isinstance(value, str)):
        raise FilterError(f"{where}.value: {op!r} needs a number or a string")
    if op == "regex":
        if not isinstance(value, str):
            raise FilterError(f"{where}.value: 'regex' needs a string")
        try:
            regex.check(value)
        except regex.RegexError as exc:
            raise FilterError(f"{where}.value: {exc}") from None
    return Condition(path, op, value)


def _deeper_than(value: object, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` levels (stops looking past the limit)."""
    if not isinstance(value, list | dict):
        return False
    if limit == 0:
        return True
    items = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(item, limit - 1) for item in items)


def compile_filter(spec: object) -> CompiledFilter:
    """Validate and compile a filter spec; raises FilterError naming the bad entry.

    Compiled filters are cached by the spec's JSON text, so fan-out compiles each distinct filter
    once per process instead of once per event (an endpoint's new version has new text). The spec
    must be JSON: orjson writes a non-finite float as null, so one would be read as null here, which
    only a caller's own objects can contain (request bodies and jsonb columns never do)."""
    if not isinstance(spec, list):
        raise FilterError(f"filter: expected a list of conditions, got {type(spec).__name__}")
    if len(spec) > MAX_CONDITIONS:
        raise FilterError(f"filter: at most {MAX_CONDITIONS} conditions (got {len(spec)})")
    try:
        text = orjson.dumps(spec)
    except TypeError:   # not JSON (a caller's own objects): compile without caching
        return _compile(spec)
    if len(text) > MAX_FILTER_BYTES:
        raise FilterError(f"filter: larger than {MAX_FILTER_BYTES} bytes of JSON")
    return _compile_text(text)


@functools.lru_cache(maxsize=4096)
def _compile_text(text: bytes) -> CompiledFilter:
    return _compile(orjson.loads(text))


def _compile(spec: list[object]) -> CompiledFilter:
    conditions = tuple(_compile_condition(i, entry) for i, entry in enumerate(spec))
    return CompiledFilter(conditions, any(c.operator == "regex" for c in conditions))
