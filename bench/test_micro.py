"""Micro benchmarks of the per-delivery hot path. `pytest bench/ --benchmark-enable --benchmark-only`
measures them; the normal test run executes each once (benchmarks disabled) so they never rot.
No timing assertions: the numbers are for reading, not for failing builds."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest

from control.policy.filters import compile_filter
from control.policy.signing import sign_v1
from control.policy.token_bucket import TokenBucket
from engine.dispatch import Dispatcher
from engine.http1 import DONE, ResponseParser
from engine.model import Task
from engine.policy.breaker import CircuitBreaker
from engine.policy.timer_wheel import TimerWheel
from engine.sender import delivery_headers

BODY_1K = orjson.dumps({"orderId": "ord_4a8f", "amount": 9900, "note": "x" * 960})
SECRET = "whsec_" + "k" * 32


def make_task(seq: int, target: str = "https://sink.example/hook", due_ms: int = 0) -> Task:
    return Task(id=uuid.uuid4(), event_id=uuid.uuid4(), client_id=uuid.uuid4(), project_id=None, endpoint_id=None,
                partition=seq % 4096, seq=seq, attempts=0, max_attempts=5, priority=5, due_ms=due_ms,
                destination=target, event_type=None, payload=BODY_1K, headers={"X-Custom": "v"},
                client_secret=SECRET, target=target)


def test_sign_1k_body(benchmark: Any) -> None:
    assert len(BODY_1K) >= 1000
    sig = benchmark(sign_v1, SECRET.encode(), BODY_1K)
    assert sig.startswith("v1=") and len(sig) == 67


def test_delivery_headers(benchmark: Any) -> None:
    """What the shard builds for every attempt: custom headers merged, signed, serialised to str."""
    task = make_task(1)

    def build() -> dict[str, str]:
        return delivery_headers({**task.headers}, task.client_secret, task.payload, task.event_id,
                                task.attempts + 1, int(time.time()))

    headers = benchmark(build)
    assert headers["X-Mittr-Event-ID"] == str(task.event_id) and headers["X-Custom"] == "v"


def test_timer_wheel_schedule_and_fire(benchmark: Any) -> None:
    """1,000 timers spread over 10 s scheduled, then the wheel advanced past all of them."""
    dues = [(i * 7919) % 10_000 + 1 for i in range(1000)]

    def run() -> int:
        wheel: TimerWheel[int] = TimerWheel(0)
        for i, due in enumerate(dues):
            wheel.schedule(due, i)
        return len(wheel.advance(10_001))

    assert benchmark(run) == 1000


def test_token_bucket_take(benchmark: Any) -> None:
    bucket = TokenBucket(1_000_000, 1_000_000, 0.0)
    clock = iter(range(10**9))

    def take() -> bool:
        return bucket.try_take(next(clock) / 1e6)

    assert benchmark(take) is True


def test_breaker_record(benchmark: Any) -> None:
    breaker = CircuitBreaker(5, 30_000)

    def record() -> bool:
        breaker.record_failure(1)
        return breaker.record_success(2)

    benchmark(record)
    assert breaker.allow(3)


def test_filter_evaluation(benchmark: Any) -> None:
    flt = compile_filter([
        {"field": "$.data.amount", "operator": "gte", "value": 1000},
        {"field": "$.data.currency", "operator": "in", "value": ["USD", "EUR"]},
        {"field": "$.data.customer.tier", "operator": "eq", "value": "gold"},
    ])
    doc = {"data": {"amount": 9900, "currency": "EUR", "customer": {"tier": "gold", "id": "c_1"}}}
    assert benchmark(flt.matches, doc) is True


@pytest.mark.parametrize("targets", [1, 50])
def test_dispatch_add_take_finish(benchmark: Any, targets: int) -> None:
    """One task through the shard's in-memory path: add to its target, take, finish as delivered.
    The 'transport' is nothing at all: this is the dispatcher's own cost per delivery."""
    dispatcher = Dispatcher(0, 512, 64)
    keys = [f"https://t{i}.example" for i in range(targets)]
    for key in keys:
        dispatcher.configure(dispatcher.target(key, None), None, 0)
    seq = iter(range(10**9))

    def one() -> int:
        n = next(seq)
        key = keys[n % targets]
        target = dispatcher.targets[key]
        dispatcher.add(target, make_task(n, key), 1)
        sent = 0
        for tgt, task in dispatcher.take(1):
            dispatcher.finish(tgt, task, "delivered", True, 1)
            sent += 1
        return sent

    assert benchmark(one) == 1
    assert dispatcher.buffered == 0 and dispatcher.in_flight == 0


RESPONSES = {
    "minimal": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
    "nginx-json": (b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: nginx/1.25\r\n"
                   b"Content-Type: application/json; charset=utf-8\r\nContent-Length: 27\r\n"
                   b"Connection: keep-alive\r\nX-Request-Id: 0a1b2c3d4e5f\r\nVary: Accept-Encoding\r\n\r\n"
                   b'{"received":true,"id":123}\n'),
    "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("kind", list(RESPONSES))
def test_parse_response(benchmark: Any, kind: str) -> None:
    """What the sender pays per delivery to read the answer: a fresh parser, one feed of the whole
    response (the usual case on a keep-alive connection), the kept body."""
    data = RESPONSES[kind]

    def parse() -> tuple[int, bytes]:
        parser = ResponseParser(4096)
        assert parser.feed(data) == DONE
        return parser.status, parser.body

    status, body = benchmark(parse)
    assert status == 200 and body in (b"ok", b"hello world", b'{"received":true,"id":123}\n')


def test_payload_bytes_are_not_reserialised() -> None:
    """Sanity for the benchmarks above: the signed bytes are exactly the stored payload."""
    headers = delivery_headers({}, SECRET, BODY_1K, uuid.uuid4(), 1, 0)
    assert headers["X-Mittr-Signature"] == sign_v1(SECRET.encode(), BODY_1K)
    assert headers["Content-Type"] == "application/json" and headers["X-Mittr-Attempt"] == "1"
