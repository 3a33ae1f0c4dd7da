"""Endpoint filters through the real app: every operator includes and excludes endpoints at fan-out,
all conditions must hold, and invalid filters are refused at create and at update."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from control.policy import filters, regex
from tests.integration.conftest import Caller

BASE = {"orderId": "ord_123", "amount": 15000, "currency": "EUR", "tags": ["vip", "new"],
        "customer": {"email": "ann@example.com"}}


def idem() -> dict[str, str]:
    return {"X-Idempotency-Key": str(uuid.uuid4())}


async def endpoint(app_client: Caller, filt: list[dict[str, Any]] | None, event_type: str = "order.created") -> str:
    body: dict[str, Any] = {"url": "https://hooks.example.com/h", "eventTypes": [event_type]}
    if filt is not None:
        body["filter"] = filt
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", body)
    assert status == 201, ep
    return str(ep["id"])


async def targets(app_client: Caller, pool: Any, payload: dict[str, Any], headers: dict[str, str] | None = None,
                  event_type: str = "order.created") -> set[str]:
    """The endpoints an event fans out to (one task each)."""
    body: dict[str, Any] = {"eventType": event_type, "payload": payload}
    if headers:
        body["headers"] = headers
    status, ev, _ = await app_client.call("POST", "/api/v1/events", body, idem())
    assert status == 201, ev
    rows = await pool.fetch("SELECT endpoint_id FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    return {str(r["endpoint_id"]) for r in rows}


# (condition, a payload change that matches, a payload change that does not)
OPERATORS = [
    ({"field": "$.data.currency", "operator": "eq", "value": "EUR"}, {}, {"currency": "USD"}),
    ({"field": "$.data.amount", "operator": "eq", "value": 15000}, {}, {"amount": 15001}),
    ({"field": "$.data.currency", "operator": "ne", "value": "USD"}, {}, {"currency": "USD"}),
    ({"field": "$.data.amount", "operator": "gt", "value": 10000}, {}, {"amount": 10000}),
    ({"field": "$.data.amount", "operator": "gte", "value": 10000}, {"amount": 10000}, {"amount": 9999}),
    ({"field": "$.data.amount", "operator": "lt", "value": 100}, {"amount": 99.5}, {"amount": 100}),
    ({"field": "$.data.amount", "operator": "lte", "value": 100}, {"amount": 100}, {"amount": 101}),
    ({"field": "$.data.currency", "operator": "in", "value": ["EUR", "GBP"]}, {}, {"currency": "USD"}),
    ({"field": "$.data.currency", "operator": "nin", "value": ["USD", "JPY"]}, {}, {"currency": "JPY"}),
    ({"field": "$.data.tags", "operator": "contains", "value": "vip"}, {}, {"tags": ["new"]}),
    ({"field": "$.data.customer.email", "operator": "contains", "value": "@example.com"}, {},
     {"customer": {"email": "ann@example.org"}}),
    ({"field": "$.data.coupon", "operator": "exists", "value": True}, {"coupon": "X1"}, {}),
    ({"field": "$.data.coupon", "operator": "exists", "value": False}, {}, {"coupon": "X1"}),
    ({"field": "$.data.orderId", "operator": "regex", "value": "^ord_[0-9]+$"}, {}, {"orderId": "ord_x"}),
    ({"field": "$.data.tags[0]", "operator": "eq", "value": "vip"}, {}, {"tags": ["new", "vip"]}),
]


@pytest.mark.parametrize(("condition", "matching", "other"), OPERATORS,
                         ids=[f"{c['operator']}-{i}" for i, (c, _, _) in enumerate(OPERATORS)])
async def test_each_operator_includes_and_excludes(app_client: Caller, pool: Any, condition: dict[str, Any],
                                                   matching: dict[str, Any], other: dict[str, Any]) -> None:
    filtered = await endpoint(app_client, [condition])
    unfiltered = await endpoint(app_client, None)
    assert await targets(app_client, pool, {**BASE, **matching}) == {filtered, unfiltered}
    assert await targets(app_client, pool, {**BASE, **other}) == {unfiltered}


async def test_event_type_and_headers_are_filterable(app_client: Caller, pool: Any) -> None:
    by_header = await endpoint(app_client, [{"field": "$.headers.X-Region", "operator": "eq", "value": "eu"}],
                               "order.*")
    by_type = await endpoint(app_client, [{"field": "$.eventType", "operator": "regex", "value": "created$"}],
                             "order.*")
    assert await targets(app_client, pool, BASE, {"X-Region": "eu"}) == {by_header, by_type}
    assert await targets(app_client, pool, BASE, {"X-Region": "us"}, "order.updated") == set()
    assert await targets(app_client, pool, BASE, {"X-Region": "eu"}, "order.updated") == {by_header}


async def test_all_conditions_must_hold(app_client: Caller, pool: Any) -> None:
    both = await endpoint(app_client, [{"field": "$.data.amount", "operator": "gte", "value": 10000},
                                       {"field": "$.data.currency", "operator": "eq", "value": "EUR"}])
    assert await targets(app_client, pool, BASE) == {both}
    assert await targets(app_client, pool, {**BASE, "amount": 5}) == set()
    assert await targets(app_client, pool, {**BASE, "currency": "USD"}) == set()
    assert await targets(app_client, pool, {**BASE, "amount": 5, "currency": "USD"}) == set()


async def test_empty_filter_matches_everything_and_patch_takes_effect(app_client: Caller, pool: Any) -> None:
    ep = await endpoint(app_client, [])
    assert await targets(app_client, pool, BASE) == {ep}
    status, body, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep}", {
        "filter": [{"field": "$.data.amount", "operator": "lt", "value": 100}]})
    assert status == 200, body
    assert await targets(app_client, pool, BASE) == set()
    assert await targets(app_client, pool, {**BASE, "amount": 1}) == {ep}
    status, body, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep}", {"filter": None})
    assert status == 200 and body["filter"] is None
    assert await targets(app_client, pool, BASE) == {ep}


BAD_FILTERS = [
    ({"field": "$.a", "operator": "eq", "value": 1}, "filter: expected a list"),
    ([{"field": "$.a", "operator": "like", "value": 1}], "filter[0].operator: unknown operator 'like'"),
    ([{"operator": "eq", "value": 1}], "filter[0].field: missing"),
    ([{"field": "data.a", "operator": "eq", "value": 1}], "filter[0].field: invalid JSONPath"),
    ([{"field": "$.a", "operator": "eq"}], "filter[0].value: missing"),
    ([{"field": "$.a", "operator": "in", "value": "x"}], "filter[0].value: 'in' needs a list"),
    ([{"field": "$.a", "operator": "gt", "value": [1]}], "filter[0].value: 'gt' needs a number or a string"),
    ([{"field": "$.a", "operator": "regex", "value": "(["}], "filter[0].value: invalid regex"),
    ([{"field": "$.a", "operator": "exists", "value": "yes"}], "filter[0].value: 'exists' needs true or false"),
    ([{"field": "$.a", "operator": "eq", "value": 1}, "nope"], "filter[1]: expected an object"),
]


@pytest.mark.parametrize(("filt", "message"), BAD_FILTERS)
async def test_invalid_filters_are_refused_at_create_and_update(app_client: Caller, filt: Any,
                                                                message: str) -> None:
    body = {"url": "https://hooks.example.com/h", "eventTypes": ["order.created"], "filter": filt}
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", body)
    assert status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith(message), err

    ep = await endpoint(app_client, None)
    status, err, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep}", {"filter": filt})
    assert status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith(message), err
    status, got, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}")
    assert got["filter"] is None and got["version"] == 1


# --- tenant regexes are bounded (RE2, off the event loop) ---------------------------------------

CATASTROPHIC = "^(a+)+$"     # exponential for a backtracking engine on a run of 'a' and a mismatch
# Enough for Python's `re` to stall the loop for seconds (each extra 'a' doubles it; 48 hung the
# API for good), few enough that a regression fails this test instead of hanging the suite.
STALLING_SUBJECT = "a" * 28 + "!"


async def worst_latency_while(app_client: Caller, work: Any) -> tuple[Any, float, int]:
    """Run `work` while another caller keeps asking for a page of endpoints; (result of work,
    worst response time in seconds of those requests, how many were made)."""
    done = asyncio.Event()
    latencies: list[float] = []

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            status, _, _ = await app_client.call("GET", "/api/v1/endpoints?limit=1")
            latencies.append(time.perf_counter() - started)
            assert status == 200

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.05)             # the prober is under way before the work starts
    try:
        result = await work
    finally:
        done.set()
        await prober
    return result, max(latencies), len(latencies)


async def test_a_catastrophic_regex_neither_stalls_ingest_nor_other_requests(app_client: Caller, pool: Any) -> None:
    anchored = await endpoint(app_client, [{"field": "$.data.s", "operator": "regex", "value": CATASTROPHIC}])
    # a pattern that defeats RE2's DFA cache on a subject at the length cap: its slowest case
    thrashing = "|".join(f"a[ab]{{{i}}}b[ab]{{2}}c" for i in range(1, 40))[:500].rsplit("|", 1)[0]
    slow = await endpoint(app_client, [{"field": "$.data.t", "operator": "regex", "value": thrashing}])
    subject = ("ab" * 4096)[:regex.MAX_SUBJECT_LENGTH]

    started = time.perf_counter()
    got, worst, probes = await worst_latency_while(
        app_client, targets(app_client, pool, {"s": STALLING_SUBJECT, "t": subject}))
    took = time.perf_counter() - started
    print(f"\ningest with pathological regex subjects: {took * 1000:.1f} ms; "
          f"worst concurrent response {worst * 1000:.1f} ms over {probes} requests")
    assert got == set()
    assert worst < 1.0 and took < 5.0
    # the same filters still match what they should
    assert await targets(app_client, pool, {"s": "aaa", "t": "x"}) == {anchored}
    assert await targets(app_client, pool, {"s": "b", "t": "xaabbbc"}) == {slow}


@pytest.mark.parametrize(("pattern", "why"), [
    ("(a)\\1", "backreferences are not supported"),
    ("id(?=_)", "lookahead is not supported"),
    ("(?<!x)id", "lookbehind is not supported"),
    ("\\pL{1,100}", "KiB a pattern may use"),
])
async def test_patterns_re2_cannot_run_are_refused_saying_why(app_client: Caller, pattern: str, why: str) -> None:
    filt = [{"field": "$.a", "operator": "eq", "value": 1}, {"field": "$.id", "operator": "regex", "value": pattern}]
    body = {"url": "https://hooks.example.com/h", "eventTypes": ["order.created"], "filter": filt}
    status, err, _ = await app_client.call("POST", "/api/v1/endpoints", body)
    assert status == 400 and err["error"].startswith("filter[1].value: invalid regex (RE2 syntax)"), err
    assert why in err["error"]
    ep = await endpoint(app_client, None)
    status, err, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep}", {"filter": filt})
    assert status == 400 and err["error"].startswith("filter[1].value: invalid regex") and why in err["error"], err


async def test_filter_size_is_bounded(app_client: Caller) -> None:
    cond = {"field": "$.a", "operator": "eq", "value": 1}
    nested: Any = 1
    for _ in range(filters.MAX_VALUE_DEPTH + 1):
        nested = [nested]
    for filt, message in (
        ([cond] * (filters.MAX_CONDITIONS + 1), f"filter: at most {filters.MAX_CONDITIONS} conditions"),
        ([{**cond, "operator": "in", "value": ["x" * 100] * 200}], "filter: larger than"),
        ([{**cond, "value": nested}], f"filter[0].value: nested deeper than {filters.MAX_VALUE_DEPTH} levels"),
    ):
        body = {"url": "https://hooks.example.com/h", "eventTypes": ["order.created"], "filter": filt}
        status, err, _ = await app_client.call("POST", "/api/v1/endpoints", body)
        assert status == 400 and err["error"].startswith(message), err
    assert (await endpoint(app_client, [cond] * filters.MAX_CONDITIONS))


async def test_a_stored_filter_no_longer_accepted_matches_nothing(app_client: Caller, pool: Any) -> None:
    ok = await endpoint(app_client, None)
    old = await endpoint(app_client, [{"field": "$.data.s", "operator": "regex", "value": "a"}])
    # as a filter saved before RE2 could be: a lookahead Python's `re` accepted
    await pool.execute("UPDATE endpoints SET filter = $1 WHERE id = $2",
                       [{"field": "$.data.s", "operator": "regex", "value": "a(?=b)"}], uuid.UUID(old))
    assert await targets(app_client, pool, {"s": "ab"}) == {ok}
