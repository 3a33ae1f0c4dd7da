"""The background evaluator, end to end: a rule fires by itself (no `evaluate` call) within about one
[alerting] interval of the first failing delivery, and once. The interval is 3 s here instead of the
default 15 s: the behaviour is the same, and the suite waits 25 s less."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.test_alerting_e2e import send
from tests.support.server import Api
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e
INTERVAL_S = 3.0
SERVER_ENV = {"MITTR_ALERTING__INTERVAL_S": str(INTERVAL_S)}


async def test_a_rule_fires_by_itself_within_the_interval(api: Api, sink: Sink) -> None:
    sink.script("/failing", lambda _n: 500)
    status, ep = await api.call("POST", "/api/v1/endpoints", {"url": sink.url + "/failing", "eventTypes": ["bg.*"]})
    assert status == 201, ep
    status, created = await api.call("POST", "/api/v1/alerting/rules", {
        "name": "High failure rate", "endpointId": ep["id"], "cooldown": "1h",
        "condition": {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"},
        "action": {"type": "slack", "webhookUrl": sink.url + "/slack"}})
    assert status == 201, created
    await send(api, "bg", 3)
    first_failure = sink.at("/failing")[0].at
    [alert] = await sink.wait_for("/slack", 1, timeout=INTERVAL_S + 30)
    delay = alert.at - first_failure
    print(f"\nfirst failing delivery -> alert at the sink: {delay:.2f} s (interval {INTERVAL_S} s)")
    assert delay < INTERVAL_S + 10, delay
    assert json.loads(alert.body)["attachments"][0]["title"].startswith("[firing]")
    await asyncio.sleep(3 * INTERVAL_S)     # three more evaluations, inside the cooldown
    assert len(sink.at("/slack")) == 1, "inside the cooldown it fires once"
