"""Alerting end to end: a real `mittr serve` (background evaluator off, so `evaluate` decides),
real failing deliveries, real sinks and a real SMTP server. Rules are scoped to their own endpoint
so the tests of this module do not see each other's failures."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiohttp import web

from tests.support.server import Api, free_port
from tests.support.sink import Sink
from tests.support.smtp import SmtpServer, body_of

pytestmark = pytest.mark.e2e
PD_PORT = free_port()
SERVER_ENV = {"MITTR_ALERTING__ENABLED": "false",
              "MITTR_ALERTING__PAGERDUTY_EVENTS_URL": f"http://127.0.0.1:{PD_PORT}/v2/enqueue"}


async def failing_endpoint(api: Api, sink: Sink, path: str, failures: int = 3) -> str:
    """An endpoint at `path` that answers 500, and `failures` events that died there."""
    sink.script(path, lambda _n: 500)
    kind = f"alert-{uuid.uuid4().hex[:8]}"
    status, ep = await api.call("POST", "/api/v1/endpoints", {"url": sink.url + path, "eventTypes": [f"{kind}.*"]})
    assert status == 201, ep
    await send(api, kind, failures)
    return str(ep["id"])


async def send(api: Api, kind: str, n: int, final: str = "dead") -> None:
    ids = []
    for i in range(n):
        status, ev = await api.call("POST", "/api/v1/events",
                                    {"eventType": f"{kind}.x", "payload": {"i": i}, "maxAttempts": 1},
                                    {"X-Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, ev
        ids.append(ev["id"])
    for event_id in ids:
        await api.wait_event(event_id, {final})


def rule(endpoint_id: str, action: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": f"High failure rate {uuid.uuid4().hex[:6]}", "description": "Alert when failure rate exceeds 10%",
            "enabled": True, "endpointId": endpoint_id,
            "condition": {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"},
            "action": action, "cooldown": "1h", **extra}


async def evaluate(api: Api) -> dict[str, Any]:
    status, out = await api.call("POST", "/api/v1/alerting/evaluate")
    assert status == 200, out
    return out


async def test_slack_rule_fires_respects_cooldown_and_resolves(api: Api, sink: Sink) -> None:
    endpoint_id = await failing_endpoint(api, sink, "/failing")
    status, created = await api.call("POST", "/api/v1/alerting/rules", rule(endpoint_id, {
        "type": "slack", "webhookUrl": sink.url + "/slack", "channel": "#alerts",
        "message": "Failure rate is {{.value_pct}}% (threshold: {{.threshold_pct}}%) {{.unknown}}"}))
    assert status == 201, created
    assert created["action"]["webhookUrl"].endswith("/****") and "/slack" not in created["action"]["webhookUrl"]
    assert created["condition"] == {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"}

    out = await evaluate(api)
    [fired] = [f for f in out["fired"] if f["ruleId"] == created["id"]]
    assert fired["value"] == 1.0 and fired["error"] is None and fired["eventId"]
    [got] = await sink.wait_for("/slack", 1)
    body = json.loads(got.body)
    assert body["channel"] == "#alerts" and body["attachments"][0]["color"].startswith("#")
    assert body["attachments"][0]["text"] == "Failure rate is 100% (threshold: 10%) "
    await api.wait_event(fired["eventId"], {"delivered"})

    again = await evaluate(api)                          # still failing, inside the cooldown: quiet
    assert not [f for f in again["fired"] if f["ruleId"] == created["id"]]
    await asyncio.sleep(0.5)
    assert len(sink.at("/slack")) == 1

    sink.script("/failing", lambda _n: 200)              # failures stop: 3 of 43 is under 10 %
    status, ep = await api.call("GET", f"/api/v1/endpoints/{endpoint_id}")
    await send(api, ep["eventTypes"][0].rstrip("*") + "ok", 40, final="delivered")
    out = await evaluate(api)
    [resolved] = [r for r in out["resolved"] if r["ruleId"] == created["id"]]
    assert resolved["value"] is not None and resolved["value"] < 0.1
    bodies = await sink.wait_for("/slack", 2)
    assert "resolved" in json.loads(bodies[1].body)["text"]

    status, hist = await api.call("GET", "/api/v1/alerting/history?limit=20")
    assert status == 200
    mine = [h for h in hist["data"] if h["ruleId"] == created["id"]]
    assert [h["status"] for h in mine] == ["resolved", "firing"]
    assert mine[1]["threshold"] == 0.1 and mine[1]["window"] == "5m" and mine[1]["action"]["type"] == "slack"
    assert mine[1]["action"]["eventId"] == fired["eventId"] and mine[1]["action"]["deliveryStatus"] == "delivered"

    status, got_rule = await api.call("GET", f"/api/v1/alerting/rules/{created['id']}")
    assert status == 200 and got_rule["state"] == "ok" and got_rule["lastResolvedAt"]
    status, audit = await api.call("GET", "/api/v1/audit-logs?resource=alert_rule")
    assert status == 200 and any(a["resourceId"] == created["id"] and a["action"] == "create" for a in audit["data"])


async def test_an_unsendable_alert_is_in_the_history_with_its_error(api: Api, sink: Sink) -> None:
    endpoint_id = await failing_endpoint(api, sink, "/failing-mail")
    status, created = await api.call("POST", "/api/v1/alerting/rules", rule(endpoint_id, {
        "type": "email", "to": ["ops@example.com"]}))
    assert status == 201, created
    # The test server's mail goes to an outbox (always works); point an email connector at a closed port instead.
    status, conn = await api.call("POST", "/api/v1/connectors", {
        "name": f"dead-smtp-{uuid.uuid4().hex[:6]}", "type": "email",
        "config": {"smtpHost": "127.0.0.1", "smtpPort": free_port(), "fromEmail": "alerts@example.com",
                   "smtpSecurity": "none", "to": ["ops@example.com"]}})
    assert status == 201, conn
    status, _ = await api.call("PUT", f"/api/v1/alerting/rules/{created['id']}",
                               {"action": {"connector": conn["name"]}})
    assert status == 200
    out = await evaluate(api)
    [fired] = [f for f in out["fired"] if f["ruleId"] == created["id"]]
    assert fired["error"] and "127.0.0.1" in fired["error"] and fired["eventId"] is None
    status, hist = await api.call("GET", "/api/v1/alerting/history?limit=50")
    [row] = [h for h in hist["data"] if h["ruleId"] == created["id"]]
    assert row["action"]["error"] == fired["error"] and row["action"]["sentAt"] is None


async def test_email_connector_sends_through_its_own_smtp_server(api: Api, sink: Sink) -> None:
    smtp = SmtpServer().start()
    try:
        name = f"ops-email-{uuid.uuid4().hex[:6]}"
        status, conn = await api.call("POST", "/api/v1/connectors", {
            "name": name, "type": "email",
            "config": {"smtpHost": "127.0.0.1", "smtpPort": smtp.port, "smtpUsername": "",
                       "smtpPassword": "hunter2-very-secret", "fromEmail": "alerts@example.com",
                       "smtpSecurity": "none"},
            "template": {"title": "{{.event_type}}", "text": "Delivery {{.status}}: {{.message}}"}})
        assert status == 201, conn
        assert conn["config"]["smtpPassword"] == "****cret" and "hunter2" not in json.dumps(conn)
        endpoint_id = await failing_endpoint(api, sink, "/failing-email")
        status, created = await api.call("POST", "/api/v1/alerting/rules", rule(endpoint_id, {
            "connector": name, "to": ["oncall@example.com"], "subject": "[mittr] {{.rule}}"}))
        assert status == 201, created
        out = await evaluate(api)
        [fired] = [f for f in out["fired"] if f["ruleId"] == created["id"]]
        assert fired["error"] is None, fired
        [msg] = await smtp.inbox.wait_for("oncall@example.com")
        assert msg["Subject"] == f"[mittr] {created['name']}" and msg["From"] == "alerts@example.com"
        assert body_of(msg).startswith("Delivery firing: ")
        status, conflict = await api.call("DELETE", f"/api/v1/connectors/{name}")
        assert status == 409 and created["name"] in conflict["error"]
    finally:
        smtp.stop()


async def test_pagerduty_discord_and_teams_bodies(api: Api, sink: Sink) -> None:
    got: list[dict[str, Any]] = []

    async def enqueue(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.json_response({"status": "success", "dedup_key": got[-1]["dedup_key"]}, status=202)
    app = web.Application()
    app.router.add_post("/v2/enqueue", enqueue)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PD_PORT).start()
    try:
        for kind, path in (("discord", "/discord"), ("teams", "/teams")):
            status, c = await api.call("POST", "/api/v1/connectors", {
                "name": f"{kind}-{uuid.uuid4().hex[:6]}", "type": kind, "config": {"webhookUrl": sink.url + path}})
            assert status == 201, c
            endpoint_id = await failing_endpoint(api, sink, f"/failing-{kind}")
            status, r = await api.call("POST", "/api/v1/alerting/rules", rule(endpoint_id, {"connector": c["name"]}))
            assert status == 201, r
        endpoint_id = await failing_endpoint(api, sink, "/failing-pd")
        status, pd = await api.call("POST", "/api/v1/alerting/rules", rule(endpoint_id, {
            "type": "pagerduty", "routingKey": "R0UTINGKEY0123456789abcdefghijkl", "severity": "critical"}))
        assert status == 201, pd
        assert pd["action"]["routingKey"] == "****ijkl"
        await evaluate(api)

        [d] = await sink.wait_for("/discord", 1)
        embed = json.loads(d.body)["embeds"][0]
        assert isinstance(embed["color"], int) and embed["title"].startswith("[firing]") and embed["fields"]
        [t] = await sink.wait_for("/teams", 1)
        card = json.loads(t.body)
        assert card["@type"] == "MessageCard" and card["@context"] == "https://schema.org/extensions"
        assert card["summary"] and card["sections"][0]["facts"]
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.1)
        [trigger] = got
        assert trigger["event_action"] == "trigger" and trigger["routing_key"] == "R0UTINGKEY0123456789abcdefghijkl"
        assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["summary"]
        assert trigger["payload"]["source"] and trigger["dedup_key"] == f"mittr-rule-{pd['id']}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("change", "field"), [
    ({"condition": {"metric": "cpu", "operator": "gt", "value": 1, "window": "5m"}}, "condition.metric"),
    ({"condition": {"metric": "failure_rate", "operator": "over", "value": 1, "window": "5m"}}, "condition.operator"),
    ({"condition": {"metric": "failure_rate", "operator": "gt", "value": 1, "window": "5 min"}}, "condition.window"),
    ({"action": {"type": "slack", "channel": "#a"}}, "action.webhookUrl"),
    ({"action": {"type": "email"}}, "action.to"),
    ({"action": {"type": "pagerduty", "severity": "critical"}}, "action.routingKey"),
    ({"action": {"type": "sms", "to": "1"}}, "action.type"),
    ({"action": {"connector": "no-such-connector"}}, "action.connector"),
    ({"cooldown": "soon"}, "cooldown"),
    ({"name": None}, "name")])
async def test_bad_rules_are_400_naming_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    body = {"name": "r", "condition": {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"},
            "action": {"type": "slack", "webhookUrl": "https://hooks.slack.com/services/x"}, **change}
    status, err = await api.call("POST", "/api/v1/alerting/rules", body)
    assert status == 400, err
    assert err["error"].startswith(field + ":") and err["code"], err


async def test_connector_crud_masks_secrets_and_merges_config(api: Api) -> None:
    name = f"prod-slack-{uuid.uuid4().hex[:6]}"
    url = "https://hooks.slack.com/services/T000/B000/secretsecret"
    status, c = await api.call("POST", "/api/v1/connectors", {
        "name": name, "type": "slack",
        "config": {"webhookUrl": url, "channel": "#webhook-alerts", "username": "Mittr Bot", "iconEmoji": ":bell:"},
        "template": {"title": "{{.event_type}}", "text": "Delivery {{.status}}: {{.message}}", "color": "#ba5b38"}})
    assert status == 201, c
    assert c["config"]["webhookUrl"] == "https://hooks.slack.com/****" and c["config"]["channel"] == "#webhook-alerts"
    status, dup = await api.call("POST", "/api/v1/connectors", {"name": name, "type": "slack",
                                                                 "config": {"webhookUrl": url}})
    assert status == 409, dup
    status, c2 = await api.call("PUT", f"/api/v1/connectors/{name}", {"config": {"channel": "#new-channel"}})
    assert status == 200, c2
    assert c2["config"]["channel"] == "#new-channel" and c2["config"]["username"] == "Mittr Bot"
    assert c2["config"]["webhookUrl"] == "https://hooks.slack.com/****"
    status, listed = await api.call("GET", "/api/v1/connectors")
    assert status == 200 and any(x["name"] == name for x in listed["data"])
    assert "secretsecret" not in json.dumps(listed)
    status, bad = await api.call("POST", "/api/v1/connectors", {"name": "x", "type": "email", "config": {}})
    assert status == 400 and bad["error"].startswith("config.smtpHost:")
    status, _ = await api.call("DELETE", f"/api/v1/connectors/{name}")
    assert status == 204
    status, _ = await api.call("GET", f"/api/v1/connectors/{name}")
    assert status == 404
    status, audit = await api.call("GET", "/api/v1/audit-logs?resource=connector")
    assert status == 200 and {"create", "update", "delete"} <= {a["action"] for a in audit["data"]}
    assert "secretsecret" not in json.dumps(audit)
