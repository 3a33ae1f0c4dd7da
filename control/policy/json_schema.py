"""Tenant JSON Schemas, bounded: nothing is ever retrieved and every check has a cost ceiling.

The `jsonschema` library is used with four changes. References resolve only inside the schema:
its registry refuses to retrieve anything, so even a schema stored before these rules cannot make
the server fetch a URL or read a `file:`. `pattern`, `patternProperties` and `additionalProperties`
match with RE2 (control.policy.regex) instead of backtracking `re`. `uniqueItems` hashes instead of
comparing every pair. And every keyword evaluation spends from a step budget (more for a bigger
keyword value, a `$ref`, a long regex subject, each error kept), so a schema whose references fan
out exponentially, or a payload that makes a check costly, is stopped instead of holding the
worker; errors count too because `anyOf` keeps all of its branches' errors in memory.

`check_document` refuses up front what the runtime could not run safely, naming the spot.
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import NoSuchResource

from control.policy import regex

MAX_SCHEMA_BYTES = 65536
MAX_SCHEMA_DEPTH = 64
MAX_STEPS = 200_000        # for one payload: about a second of a worker thread, at most
INLINE_STEPS = 500         # what a check may spend on the event loop before it moves off it
PROBE_STEPS = 20_000       # the trial run on `{}` when a schema is stored
# Weights, measured so that a step stays within a few microseconds whatever the schema does.
REF_STEPS = 4              # a reference lookup, on top of the keyword's own step
ERROR_STEPS = 20           # each error produced (anyOf/oneOf keep their branches' errors)
CHARS_PER_STEP = 4         # a regex match spends one more step per this many characters of subject

_REFS = ("$ref", "$dynamicRef", "$recursiveRef")
_DATA = frozenset({"const", "enum", "default", "examples"})    # values, not schemas


class SchemaRefused(ValueError):
    """A schema that is not accepted; `path` is where (`.properties.a.$ref`), message why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class TooCostly(Exception):
    """A check ran out of steps."""


def json_path(parts: Any) -> str:
    """`.name` for object keys, `[i]` for array indexes."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


# --- what is refused up front -------------------------------------------------------------------


@dataclass
class _Seen:
    pattern_properties: str | None = None
    unevaluated_properties: str | None = None


def check_document(schema: dict[str, Any]) -> None:
    """SchemaRefused for a schema too big or deep, with a non-local `$ref`, a `$schema` below the
    top (it would switch to the library's own keywords), a regex RE2 cannot run, or
    `unevaluatedProperties` together with `patternProperties` (the library matches those with `re`).

    `$schema`, `patternProperties` and `unevaluatedProperties` are looked for everywhere, values
    included: a `$ref` may point anywhere in the document, and whatever it points at is run as a
    schema."""
    try:
        size = len(orjson.dumps(schema))
    except orjson.JSONEncodeError:      # orjson refuses nesting deeper than 254 levels
        raise SchemaRefused("", f"nested deeper than {MAX_SCHEMA_DEPTH} levels") from None
    if size > MAX_SCHEMA_BYTES:
        raise SchemaRefused("", f"larger than {MAX_SCHEMA_BYTES} bytes of JSON")
    seen = _Seen()
    _walk(schema, [], 1, False, seen)
    if seen.pattern_properties is not None and seen.unevaluated_properties is not None:
        raise SchemaRefused(seen.unevaluated_properties,
                            "unevaluatedProperties cannot be combined with patternProperties "
                            f"(found at {seen.pattern_properties or 'the top'})")


def _walk(node: Any, path: list[str | int], depth: int, in_data: bool, seen: _Seen) -> None:
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaRefused(json_path(path), f"nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, [*path, i], depth + 1, in_data, seen)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        where = [*path, key]
        if key == "$schema" and isinstance(value, str) and path:
            raise SchemaRefused(json_path(where), "only allowed at the top of the schema")
        if key == "patternProperties" and isinstance(value, dict):
            seen.pattern_properties = seen.pattern_properties or json_path(where)
        if key == "unevaluatedProperties":
            seen.unevaluated_properties = seen.unevaluated_properties or json_path(where)
        if not in_data:
            _check_keyword(key, value, where)
        _walk(value, where, depth + 1, in_data or key in _DATA, seen)


def _check_keyword(key: str, value: Any, where: list[str | int]) -> None:
    if key in _REFS and isinstance(value, str) and not value.startswith("#"):
        raise SchemaRefused(json_path(where), f"must be a local reference (#/...), got {value!r}; "
                                              "remote references are never fetched")
    patterns: list[tuple[str, list[str | int]]] = []
    if key == "pattern" and isinstance(value, str):
        patterns.append((value, where))
    elif key == "patternProperties" and isinstance(value, dict):
        patterns += [(name, [*where, name]) for name in value]
    for pattern, at in patterns:
        try:
            regex.check(pattern)
        except regex.RegexError as exc:
            raise SchemaRefused(json_path(at), str(exc)) from None


# --- cost accounting ----------------------------------------------------------------------------


@dataclass
class _Budget:
    left: int


_BUDGET: ContextVar[_Budget | None] = ContextVar("mittr_schema_budget", default=None)


def _spend(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.left -= steps
        if budget.left < 0:
            raise TooCostly


def _counted(name: str, keyword: Any) -> Any:
    """`keyword`, spending 1 step (plus the size of a list or object value: `enum`, `required`,
    `properties` scan it) per evaluation and ERROR_STEPS per error."""
    fixed = 1 + (REF_STEPS if name in _REFS else 0)

    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        _spend(fixed + (len(value) if isinstance(value, list | dict) else 0))
        for error in keyword(validator, value, instance, schema) or ():
            _spend(ERROR_STEPS)
            yield error
    return run


def _matches(pattern: str, subject: str) -> bool:
    _spend(1 + len(subject) // CHARS_PER_STEP)
    return regex.search(pattern, subject)


# --- the keywords that match regexes, on RE2 ----------------------------------------------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    if not regex.searchable(instance):
        yield ValidationError(f"a string longer than {regex.MAX_SUBJECT_LENGTH} characters "
                              f"is not matched against {pattern!r}")
    elif not _matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any,
                        schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [key for key in instance
              if key not in declared and not any(_matches(p, key) for p in patterns)]
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif extra is False and extras:
        names = ", ".join(repr(key) for key in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{names} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    _spend(len(instance))
    if len({_hashable(item) for item in instance}) < len(instance):
        yield ValidationError(f"{reprlib.repr(instance)} has non-unique elements")


def _hashable(value: Any) -> Any:
    """A key equal for JSON-equal values: 1 and 1.0 are one number, true is not 1, key order
    does not matter."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, list):
        return ("array", tuple(_hashable(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, _hashable(item)) for key, item in value.items()))
    return (type(value) is str, value)    # numbers hash by value across int and float


_REPLACED = {"pattern": _pattern, "patternProperties": _pattern_properties,
             "additionalProperties": _additional_properties, "uniqueItems": _unique_items}


# --- validators ---------------------------------------------------------------------------------


def _refuse_retrieval(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


# Only the schema itself (and the bundled meta-schemas jsonschema always adds) can be referenced.
NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


@functools.cache
def _guarded(base: Any) -> Any:
    keywords = {name: _counted(name, _REPLACED.get(name, fn)) for name, fn in base.VALIDATORS.items()}
    return validators.extend(base, keywords)


@functools.cache
def _meta_formats(base: Any) -> FormatChecker:
    """The formats the meta-schema asserts on a schema, with `regex` meaning "RE2 can run it"."""
    meta = validators.validator_for(base.META_SCHEMA, default=base)
    checker = FormatChecker(formats=())
    checker.checkers = dict(meta.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=regex.RegexError)(_compiles)
    return checker


def _compiles(instance: object) -> bool:
    if isinstance(instance, str):
        regex.check(instance)
    return True


def dialect(schema: dict[str, Any]) -> Any:
    """The library's validator for the schema's `$schema` (2020-12 without one)."""
    if "$schema" not in schema:
        return validators.Draft202012Validator
    found: Any = validators.validator_for(schema, default=None)
    if found is None:
        raise SchemaRefused(".$schema", f"unknown dialect {schema['$schema']!r}")
    return found


def check_against_meta_schema(base: Any, schema: dict[str, Any]) -> None:
    """SchemaError from the library when the schema breaks its dialect's meta-schema."""
    base.check_schema(schema, format_checker=_meta_formats(base))


def build(base: Any, schema: dict[str, Any]) -> Validator:
    """A validator that resolves nothing outside `schema`, asserts no `format`, uses RE2 and counts."""
    validator: Validator = _guarded(base)(schema, registry=NO_RETRIEVAL, format_checker=None)
    return validator


def best_error(validator: Validator, instance: Any, steps: int) -> ValidationError | None:
    """The most relevant error for `instance`, spending at most `steps`; TooCostly past them."""
    token = _BUDGET.set(_Budget(steps))
    try:
        return best_match(validator.iter_errors(instance))
    finally:
        _BUDGET.reset(token)
