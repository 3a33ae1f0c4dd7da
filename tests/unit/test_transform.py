"""The JavaScript transformation runtime: rewrites, cancel, and every way a handler can misbehave."""

from __future__ import annotations

import orjson
import pytest

from control.policy.transform import (
    MAX_ARRAY_LENGTH,
    TransformError,
    TransformRunner,
    check_transformation,
)

WEBHOOK: dict[str, object] = {
    "payload": {"orderId": "ord_4a8f", "amount": 9900},
    "headers": {"X-Source": "mittr"},
    "url": "https://api.example.com/webhooks",
    "eventType": "order.created",
    "eventId": "5f9d8a2b-1c4e-4f3a-9b8c-7d2e1f4a5b6c",
}


@pytest.fixture
def runner() -> TransformRunner:
    return TransformRunner(time_limit_ms=50, memory_limit_bytes=16 * 2**20, max_contexts=4)


def test_rewrites_payload_headers_and_url(runner: TransformRunner) -> None:
    code = """function handler(webhook) {
        webhook.payload = {id: webhook.payload.orderId, cents: webhook.payload.amount * 100,
                           type: webhook.eventType, event: webhook.eventId};
        webhook.headers["X-Transformed"] = "yes";
        delete webhook.headers["X-Source"];
        webhook.url = "https://other.example.com/hook";
        return webhook;
    }"""
    out = runner.apply("ep:1", code, WEBHOOK)
    assert out.error is None and not out.cancelled
    assert out.payload is not None
    assert orjson.loads(out.payload) == {"id": "ord_4a8f", "cents": 990000, "type": "order.created",
                                         "event": WEBHOOK["eventId"]}
    assert out.headers == {"X-Transformed": "yes"}
    assert out.url == "https://other.example.com/hook"


def test_identity_keeps_everything(runner: TransformRunner) -> None:
    out = runner.apply("ep:1", "function handler(w) { return w }", WEBHOOK)
    assert out.payload is not None and orjson.loads(out.payload) == WEBHOOK["payload"]
    assert out.headers == WEBHOOK["headers"] and out.url == WEBHOOK["url"]


def test_payload_may_be_the_stored_bytes(runner: TransformRunner) -> None:
    webhook = {**WEBHOOK, "payload": orjson.Fragment(b'{"orderId":"ord_1","amount":5}')}
    out = runner.apply("ep:1", "function handler(w) { w.payload.amount += 1; return w }", webhook)
    assert out.payload == b'{"orderId":"ord_1","amount":6}'


def test_cancel(runner: TransformRunner) -> None:
    code = "function handler(w) { if (w.payload.amount < 10000) { w.cancel = true } return w }"
    out = runner.apply("ep:1", code, WEBHOOK)
    assert out.cancelled and out.error is None and out.payload is None


def test_infinite_loop_is_stopped_by_the_time_limit(runner: TransformRunner) -> None:
    out = runner.apply("ep:1", "function handler(w) { while (true) {} }", WEBHOOK)
    assert out.error is not None and "50 ms CPU time limit" in out.error
    assert out.payload is None and not out.cancelled
    # the runner is still usable afterwards, with a fresh context for that key
    assert runner.apply("ep:1", "function handler(w) { return w }", WEBHOOK).error is None


def test_memory_overrun_is_an_error(runner: TransformRunner) -> None:
    code = "function handler(w) { const a = []; while (true) a.push(new Uint8Array(1 << 20)) }"
    out = runner.apply("ep:1", code, WEBHOOK)
    assert out.error is not None and "16 MiB memory limit" in out.error


@pytest.mark.parametrize("body", [
    "return Array(2 ** 32 - 1).reverse()",
    "return [].concat(Array(2 ** 32 - 1))",
    "return '' + Array(2 ** 32 - 1)",
    "return Array.prototype.fill.call({length: 2 ** 53 - 1}, 0)",
])
def test_native_loops_over_huge_arrays_are_refused(runner: TransformRunner, body: str) -> None:
    out = runner.apply("ep:1", f"function handler(w) {{ {body} }}", WEBHOOK)
    assert out.error is not None and f"longer than {MAX_ARRAY_LENGTH}" in out.error


def test_catastrophic_regex_is_interrupted(runner: TransformRunner) -> None:
    code = "function handler(w) { /(a+)+$/.test('a'.repeat(40) + 'b'); return w }"
    out = runner.apply("ep:1", code, WEBHOOK)
    assert out.error is not None and "CPU time limit" in out.error


@pytest.mark.parametrize(("code", "needle"), [
    ("function handler(w) { throw new Error('no thanks') }", "Error: no thanks"),
    ("function handler(w) { return 42 }", "must return the webhook object"),
    ("function handler(w) { }", "must return the webhook object"),
    ("function handler(w) { return [w] }", "must return the webhook object"),
    ("function handler(w) { delete w.payload; return w }", "no payload"),
    ("function handler(w) { w.payload = {n: 10n}; return w }", "bigint"),
    ("function handler(w) { w.url = 'ftp://x.example.com/'; return w }", "not an http(s) URL"),
    ("function handler(w) { w.headers['X-Mittr-Signature'] = 'forged'; return w }", "set by Mittr"),
    ("function handler(w) { w.headers['X-A'] = 'a\\r\\nInjected: 1'; return w }", "single-line"),
    ("function handler(w) { w.headers['Bad Name'] = 'x'; return w }", "not valid"),
    ("function handler(w) { w.headers = 'x'; return w }", "headers must be an object"),
    ("function handler(w) { function f() { return f() + 1 } return f() }", "stack"),
    ("function handler(w) { return typeof require + typeof std + typeof os + typeof fetch }",
     "must return the webhook object"),
])
def test_misbehaving_handlers_give_errors_never_exceptions(runner: TransformRunner, code: str,
                                                           needle: str) -> None:
    out = runner.apply("ep:1", code, WEBHOOK)
    assert out.error is not None and needle.lower() in out.error.lower(), out.error
    assert out.payload is None and out.headers is None and out.url is None


def test_no_io_in_the_sandbox(runner: TransformRunner) -> None:
    code = """function handler(w) {
        w.payload = {g: [typeof require, typeof std, typeof os, typeof fetch, typeof setTimeout,
                         typeof XMLHttpRequest, typeof process]};
        return w }"""
    out = runner.apply("ep:1", code, WEBHOOK)
    assert out.payload is not None and set(orjson.loads(out.payload)["g"]) == {"undefined"}


def test_compiles_once_per_key_and_bounds_contexts(runner: TransformRunner) -> None:
    counter = "let calls = 0; function handler(w) { calls += 1; w.payload = {calls}; return w }"
    for expected in (1, 2, 3):
        out = runner.apply("ep:1", counter, WEBHOOK)
        assert out.payload is not None and orjson.loads(out.payload) == {"calls": expected}
    # a new version of the code under the same key recompiles
    out = runner.apply("ep:1", counter + " ", WEBHOOK)
    assert out.payload is not None and orjson.loads(out.payload) == {"calls": 1}
    for i in range(10):
        runner.apply(f"ep:{i}:v1", counter, WEBHOOK)
    assert len(runner) == 4


def test_a_failed_call_drops_its_context(runner: TransformRunner) -> None:
    code = """let calls = 0;
    function handler(w) { calls += 1; if (w.payload.fail) throw new Error('x'); w.payload = {calls}; return w }"""
    assert runner.apply("k", code, WEBHOOK).error is None
    assert runner.apply("k", code, {**WEBHOOK, "payload": {"fail": True}}).error is not None
    out = runner.apply("k", code, WEBHOOK)
    assert out.payload is not None and orjson.loads(out.payload) == {"calls": 1}


def test_code_that_does_not_compile_is_an_apply_error(runner: TransformRunner) -> None:
    out = runner.apply("k", "function handler( {", WEBHOOK)
    assert out.error is not None and out.error.startswith("transformation does not compile: SyntaxError")


@pytest.mark.parametrize(("code", "needle"), [
    ("function handler( {", "SyntaxError"),
    ("var x = 1;", "must define function handler"),
    ("let handler = 5;", "must define function handler"),
    ("", "must be JavaScript"),
    ("while (true) {}", "CPU time limit"),
    ("throw new TypeError('top-level')", "TypeError: top-level"),
])
def test_check_transformation_refuses(code: str, needle: str) -> None:
    with pytest.raises(TransformError, match=needle):
        check_transformation(code)


@pytest.mark.parametrize("code", [
    "function handler(webhook) { return webhook }",
    "const handler = (w) => ({...w, payload: {wrapped: w.payload}});",
    "async function helper() {}\nfunction handler(w) { return w }",
])
def test_check_transformation_accepts(code: str) -> None:
    check_transformation(code)
