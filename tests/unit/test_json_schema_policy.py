"""Tenant JSON Schemas: what is refused up front, RE2 keywords that keep the library's meaning,
and a step budget that stops costly checks."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import validators
from referencing.exceptions import Unresolvable

from control.policy import json_schema, regex
from control.policy.json_schema import SchemaRefused, TooCostly


def refused(schema: dict[str, Any]) -> SchemaRefused:
    with pytest.raises(SchemaRefused) as info:
        json_schema.check_document(schema)
    return info.value


def checker(schema: dict[str, Any]) -> Any:
    json_schema.check_document(schema)
    base = json_schema.dialect(schema)
    json_schema.check_against_meta_schema(base, schema)
    return json_schema.build(base, schema)


def errors(schema: dict[str, Any], instance: Any, steps: int = json_schema.MAX_STEPS) -> str | None:
    error = json_schema.best_error(checker(schema), instance, steps)
    return None if error is None else error.message


@pytest.mark.parametrize(("schema", "path"), [
    ({"$ref": "https://schemas.example.com/x.json"}, ".$ref"),
    ({"properties": {"a": {"$ref": "file:///etc/passwd"}}}, ".properties.a.$ref"),
    ({"items": [{"$ref": "other.json#/a"}]}, ".items[0].$ref"),
    ({"$defs": {"x": {"$dynamicRef": "https://example.com/meta#meta"}}}, ".$defs.x.$dynamicRef"),
    ({"$recursiveRef": "//example.com/x"}, ".$recursiveRef"),
])
def test_references_must_be_local(schema: dict[str, Any], path: str) -> None:
    error = refused(schema)
    assert error.path == path and error.reason.startswith("must be a local reference (#/...)")


def test_local_references_anchors_and_look_alike_names_are_fine() -> None:
    json_schema.check_document({
        "$defs": {"a": {"$anchor": "amount", "type": "integer"}},
        "properties": {
            "x": {"$ref": "#/$defs/a"}, "y": {"$ref": "#amount"}, "z": {"$ref": "#"},
            # property names that happen to be keywords, and values that only look like schemas
            "$ref": {"type": "string"}, "$schema": {"type": "string"}, "pattern": {"type": "string"},
        },
        "examples": [{"$ref": "https://example.com/not-a-reference", "pattern": "(?=not a regex)"}],
    })


def test_what_the_runtime_could_not_bound_is_refused() -> None:
    assert refused({"properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#"}}}).path \
        == ".properties.a.$schema"
    # even inside a value: a $ref can point there and run it as a schema with the library's own keywords
    assert refused({"default": {"$schema": "http://json-schema.org/draft-07/schema#"}}).path == ".default.$schema"
    error = refused({"unevaluatedProperties": False, "allOf": [{"patternProperties": {"^a": {}}}]})
    assert error.path == ".unevaluatedProperties" and "patternProperties" in error.reason
    assert refused({"pattern": "(?=x)"}).path == ".pattern"
    assert refused({"patternProperties": {"^ok$": {}, "(a)\\1": {}}}).path == ".patternProperties.(a)\\1"
    assert "larger than" in refused({"description": "x" * json_schema.MAX_SCHEMA_BYTES}).reason
    deep: dict[str, Any] = {}
    for _ in range(json_schema.MAX_SCHEMA_DEPTH):
        deep = {"not": deep}
    assert refused(deep).reason == f"nested deeper than {json_schema.MAX_SCHEMA_DEPTH} levels"
    with pytest.raises(SchemaRefused, match="unknown dialect"):
        json_schema.dialect({"$schema": "https://example.com/dialect"})


def test_the_validator_reads_no_file(tmp_path: Path) -> None:
    # built without check_document, as from a schema stored before it existed: the registry still
    # refuses (the HTTP case, with a real server, is in tests/integration/test_event_types.py)
    target = tmp_path / "schema.json"
    target.write_text('{"type": "string"}')
    schema = {"properties": {"a": {"$ref": target.as_uri()}}}
    validator = json_schema.build(json_schema.dialect(schema), schema)
    with pytest.raises(Unresolvable), warnings.catch_warnings():
        # as in production, where the library's "remote retrieval is deprecated" is only a warning
        warnings.simplefilter("ignore", DeprecationWarning)
        json_schema.best_error(validator, {"a": 1}, json_schema.MAX_STEPS)


def test_pattern_keywords_run_on_re2() -> None:
    stalling = "a" * 28 + "!"        # seconds for Python's re, microseconds for RE2
    started = time.perf_counter()
    assert errors({"pattern": "^(a+)+$"}, stalling) == f"'{stalling}' does not match '^(a+)+$'"
    assert errors({"patternProperties": {"^(a+)+$": {"type": "integer"}}}, {stalling: "x"}) is None
    assert errors({"patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False},
                  {stalling: 1}) == f"'{stalling}' does not match any of the regexes: '^(a+)+$'"
    assert errors({"propertyNames": {"pattern": "^(a+)+$"}}, {stalling: 1}) is not None
    assert time.perf_counter() - started < 1.0


def test_re2_syntax_is_what_a_pattern_is_checked_against() -> None:
    checker({"pattern": r"^\p{Lu}"})            # Python's re would call this invalid
    assert errors({"pattern": r"^\p{Lu}"}, "Émile") is None
    long = "a" * (regex.MAX_SUBJECT_LENGTH + 1)
    assert errors({"pattern": "a"}, long) == \
        f"a string longer than {regex.MAX_SUBJECT_LENGTH} characters is not matched against 'a'"


def test_formats_are_annotations_only() -> None:
    # no format checker runs on payloads, so none can do I/O (idn-hostname, uri, email...)
    for fmt in ("hostname", "idn-hostname", "email", "uri", "ipv4", "regex"):
        assert errors({"format": fmt}, "not valid (?=") is None


def test_unique_items_hashes_with_json_equality() -> None:
    assert errors({"uniqueItems": True}, [1, 1.0]) is not None
    assert errors({"uniqueItems": True}, [{"a": 1, "b": [2]}, {"b": [2.0], "a": 1}]) is not None
    assert errors({"uniqueItems": True}, [1, True, "1", None, 0, False, [1], {"1": 1}]) is None
    started = time.perf_counter()
    assert errors({"uniqueItems": True}, [{"k": i} for i in range(20_000)]) is None  # pairwise: minutes
    assert time.perf_counter() - started < 2.0


def test_costly_checks_run_out_of_steps() -> None:
    levels = 30                  # 2**30 evaluations for the library on its own
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "string"}
    validator = checker({"$defs": defs, "$ref": "#/$defs/d0"})
    assert json_schema.best_error(validator, "fine", json_schema.INLINE_STEPS) is None
    started = time.perf_counter()
    with pytest.raises(TooCostly):
        json_schema.best_error(validator, 1, json_schema.MAX_STEPS)
    assert time.perf_counter() - started < 5.0
    with pytest.raises(TooCostly):   # a big enum scanned for every item
        json_schema.best_error(checker({"items": {"enum": list(range(1000))}}), [999] * 1000, 100_000)


# The replaced keywords keep the library's verdicts on patterns both engines read alike.
_keys = st.text(alphabet="abc1", max_size=4)
_schemas = st.fixed_dictionaries({}, optional={
    "properties": st.dictionaries(_keys, st.just({"type": "integer"}), max_size=2),
    "patternProperties": st.dictionaries(st.sampled_from(["^a", "b$", "c+", "^[ab]1$", "1"]),
                                         st.sampled_from([{"type": "integer"}, {"type": "string"}]), max_size=2),
    "additionalProperties": st.sampled_from([False, True, {"type": "string"}]),
    "uniqueItems": st.booleans(),
    "pattern": st.sampled_from(["^a", "b$", "^(a|b)+$", "1"]),
})
_instances = st.recursive(st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([1.0, 0.0]) | _keys,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
                          max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(schema=_schemas, instance=_instances)
def test_same_verdicts_as_the_library(schema: dict[str, Any], instance: Any) -> None:
    library = validators.Draft202012Validator(schema)
    assert (errors(schema, instance) is None) == library.is_valid(instance)
