"""JSONPath subset and subscription filters."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy import filters, regex
from control.policy.filters import FilterError, compile_filter
from control.policy.jsonpath import compile_path

DOC: dict[str, Any] = {
    "type": "invoice.paid",
    "data": {
        "customerId": "cus_42",
        "amount": 12_500,
        "ratio": 0.5,
        "paid": True,
        "note": None,
        "tags": ["vip", "eu", 3],
        "items": [{"id": "it_1", "qty": 2}, {"id": "it_2", "qty": 1}],
        "x-y": "dash",
        "it's": "quote",
    },
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("$", (True, DOC)),
        ("$.data.customerId", (True, "cus_42")),
        ("$.data.items[0].id", (True, "it_1")),
        ("$.data.items[-1].qty", (True, 1)),
        ("$['data']['x-y']", (True, "dash")),
        ('$["data"]["x-y"]', (True, "dash")),
        ("$.data['it\\'s']", (True, "quote")),
        ("$.data.x-y", (True, "dash")),
        ("$.data.note", (True, None)),
        ("  $.type  ", (True, "invoice.paid")),
        ("$.data.missing", (False, None)),
        ("$.data.items[2]", (False, None)),
        ("$.data.items[-3]", (False, None)),
        ("$.data.customerId.length", (False, None)),
        ("$.data.items.id", (False, None)),
        ("$.data[0]", (False, None)),
        ("$.type[0]", (False, None)),  # strings are not indexable
    ],
)
def test_path_get(expr: str, expected: tuple[bool, object]) -> None:
    assert compile_path(expr).get(DOC) == expected


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "must start with '$'"),
        ("data.x", "must start with '$'"),
        ("$.", "expected a name"),
        ("$..x", "expected a name"),
        ("$.1abc", "expected a name"),
        ("$[", "expected a quoted name or an integer"),
        ("$[*]", "expected a quoted name or an integer"),
        ("$[0", "expected ']'"),
        ("$['x'", "expected ']'"),
        ("$['x]", "unterminated"),
        ("$['\\q']", "invalid escape"),
        ("$x", "unexpected character 'x'"),
        ("$.a b", "unexpected character ' '"),
        ("$" + ".a" * 600, "longer than"),
    ],
)
def test_path_syntax_errors(expr: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="JSONPath") as info:
        compile_path(expr)
    assert fragment in str(info.value)


def test_paths_are_cached() -> None:
    assert compile_path("$.data.amount") is compile_path("$.data.amount")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(doc=_json, keys=st.lists(st.one_of(st.text(max_size=6), st.integers(-5, 5)), max_size=4))
def test_bracket_path_matches_direct_lookup(doc: object, keys: list[str | int]) -> None:
    def quote(k: str) -> str:
        return '"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'

    expr = "$" + "".join(f"[{quote(k)}]" if isinstance(k, str) else f"[{k}]" for k in keys)
    value: object = doc
    found = True
    for k in keys:
        if isinstance(k, str) and isinstance(value, dict) and k in value:
            value = value[k]
        elif isinstance(k, int) and isinstance(value, list) and -len(value) <= k < len(value):
            value = value[k]
        else:
            found, value = False, None
            break
    assert compile_path(expr).get(doc) == (found, value)


def cond(field: str, operator: str, value: object = ...) -> dict[str, object]:
    out: dict[str, object] = {"field": field, "operator": operator}
    if value is not ...:
        out["value"] = value
    return out


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (cond("$.type", "eq", "invoice.paid"), True),
        (cond("$.type", "eq", "invoice.void"), False),
        (cond("$.data.amount", "eq", 12_500.0), True),
        (cond("$.data.paid", "eq", 1), False),  # JSON true is not the number 1
        (cond("$.data.tags", "eq", ["vip", "eu", 3]), True),
        (cond("$.type", "ne", "x"), True),
        (cond("$.data.missing", "ne", "x"), True),  # absent is "not equal"
        (cond("$.data.amount", "gte", 10_000), True),
        (cond("$.data.amount", "gt", 12_500), False),
        (cond("$.data.amount", "lt", 12_500.5), True),
        (cond("$.data.ratio", "lte", 0.5), True),
        (cond("$.data.customerId", "gt", "cus_1"), True),  # strings compare lexicographically
        (cond("$.data.customerId", "gt", 5), False),  # incomparable -> False, never raises
        (cond("$.data.paid", "gt", 0), False),  # booleans are not numbers
        (cond("$.data.note", "lt", 1), False),
        (cond("$.data.missing", "gte", 0), False),
        (cond("$.type", "in", ["invoice.paid", "invoice.void"]), True),
        (cond("$.type", "in", []), False),
        (cond("$.data.paid", "in", [1]), False),
        (cond("$.type", "nin", ["a", "b"]), True),
        (cond("$.data.missing", "nin", ["a"]), True),
        (cond("$.type", "contains", "paid"), True),
        (cond("$.data.tags", "contains", "eu"), True),
        (cond("$.data.tags", "contains", 3), True),
        (cond("$.data.tags", "contains", "us"), False),
        (cond("$.data.amount", "contains", 1), False),
        (cond("$.type", "contains", 1), False),
        (cond("$.data.customerId", "exists"), True),
        (cond("$.data.note", "exists", True), True),  # present with a null value
        (cond("$.data.missing", "exists"), False),
        (cond("$.data.missing", "exists", False), True),
        (cond("$.type", "regex", r"^invoice\.(paid|void)$"), True),
        (cond("$.type", "regex", "paid"), True),  # search, not full match
        (cond("$.data.amount", "regex", "125"), False),  # only strings match
        (cond("$.data.missing", "regex", ".*"), False),
    ],
)
def test_operators(condition: dict[str, object], expected: bool) -> None:
    assert compile_filter([condition]).matches(DOC) is expected


def test_all_conditions_must_hold() -> None:
    f = compile_filter([cond("$.type", "eq", "invoice.paid"), cond("$.data.amount", "gte", 10_000)])
    assert f.matches(DOC)
    assert not f.matches({**DOC, "type": "invoice.void"})
    assert not f.matches({"type": "invoice.paid", "data": {"amount": "12500"}})


def test_empty_filter_matches_anything() -> None:
    f = compile_filter([])
    for doc in (DOC, None, 3, [], "x"):
        assert f.matches(doc)


@settings(max_examples=200, deadline=None)
@given(doc=_json, operator=st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "contains"]), value=_json)
def test_matching_never_raises(doc: object, operator: str, value: object) -> None:
    ordered = operator in ("gt", "gte", "lt", "lte")
    if ordered and (isinstance(value, bool) or not isinstance(value, int | float | str)):
        value = 1
    f = compile_filter([cond("$.a", operator, value), cond("$[0]", operator, value)])
    assert f.matches({"a": doc}) in (True, False)
    assert f.matches(doc) in (True, False)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"field": "$.a"}, "filter: expected a list of conditions, got dict"),
        (None, "filter: expected a list of conditions, got NoneType"),
        (["x"], "filter[0]: expected an object, got str"),
        ([{"operator": "eq", "value": 1}], "filter[0].field: missing"),
        ([{"field": 5, "operator": "eq", "value": 1}], "filter[0].field: expected a JSONPath string"),
        ([cond("$.a", "eq", 1), cond("$..a", "eq", 1)], "filter[1].field: invalid JSONPath"),
        ([cond("$.a", "eq", 1), cond("$.a", "foo", 1)], "filter[1].operator: unknown operator 'foo'"),
        ([{"field": "$.a", "value": 1}], "filter[0].operator: missing"),
        ([cond("$.a", "eq")], "filter[0].value: missing"),
        ([cond("$.a", "in", "abc")], "filter[0].value: 'in' needs a list"),
        ([cond("$.a", "nin", {"a": 1})], "filter[0].value: 'nin' needs a list"),
        ([cond("$.a", "gt", [1])], "filter[0].value: 'gt' needs a number or a string"),
        ([cond("$.a", "lte", True)], "filter[0].value: 'lte' needs a number or a string"),
        ([cond("$.a", "exists", "yes")], "filter[0].value: 'exists' needs true or false"),
        ([cond("$.a", "regex", 5)], "filter[0].value: 'regex' needs a string"),
        ([cond("$.a", "regex", "(unclosed")], "filter[0].value: invalid regex"),
        ([cond("$.a", "regex", "a" * 513)], "filter[0].value: regex longer than 512 characters"),
    ],
)
def test_invalid_specs(spec: object, message: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(spec)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_regex_at_length_limit_is_accepted() -> None:
    assert compile_filter([cond("$.a", "regex", "a" * 512)]).matches({"a": "a" * 600})


def test_a_catastrophic_regex_matches_in_linear_time() -> None:
    f = compile_filter([cond("$.s", "regex", "^(a+)+$")])
    started = time.perf_counter()
    # 28 characters keep Python's backtracking `re` busy for seconds (48 hung it for good)
    assert not f.matches({"s": "a" * 28 + "!"})
    assert not f.matches({"s": "a" * 48 + "!"})
    assert f.matches({"s": "a" * 48})
    assert time.perf_counter() - started < 1.0


def test_regex_subjects_over_the_cap_do_not_match() -> None:
    f = compile_filter([cond("$.s", "regex", "^a")])
    assert f.matches({"s": "a" * regex.MAX_SUBJECT_LENGTH})
    assert not f.matches({"s": "a" * (regex.MAX_SUBJECT_LENGTH + 1)})


@pytest.mark.parametrize(("pattern", "why"), [
    ("(x)\\1", "backreferences are not supported"),
    ("x(?=y)", "lookahead is not supported"),
    ("(?<=x)y", "lookbehind is not supported"),
])
def test_regexes_re2_cannot_run_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter([cond("$.a", "eq", 1), cond("$.a", "regex", pattern)])
    assert str(info.value).startswith("filter[1].value: invalid regex (RE2 syntax): ") and why in str(info.value)


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_filter_cost_is_bounded() -> None:
    compile_filter([cond("$.a", "eq", 1)] * filters.MAX_CONDITIONS)
    with pytest.raises(FilterError, match=f"^filter: at most {filters.MAX_CONDITIONS} conditions"):
        compile_filter([cond("$.a", "eq", 1)] * (filters.MAX_CONDITIONS + 1))
    with pytest.raises(FilterError, match=f"^filter: larger than {filters.MAX_FILTER_BYTES} bytes"):
        compile_filter([cond("$.a", "in", ["x" * 1000] * 20)])
    compile_filter([cond("$.a", "eq", _nested(filters.MAX_VALUE_DEPTH))])
    for deep in (_nested(filters.MAX_VALUE_DEPTH + 1), _nested(5000)):
        with pytest.raises(FilterError, match=f"^filter\\[0\\].value: nested deeper than {filters.MAX_VALUE_DEPTH}"):
            compile_filter([cond("$.a", "eq", deep)])


def test_filters_say_whether_they_hold_a_regex() -> None:
    assert compile_filter([cond("$.a", "regex", "x")]).uses_regex
    assert not compile_filter([cond("$.a", "eq", "x")]).uses_regex
