"""Delivery notifications, pure parts: the kinds a connector may opt into, what each notice says on
each platform, and the keys that keep the notifier from notifying about its own deliveries."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import BadRequest
from control.policy import alert_payloads as ap
from control.policy import delivery_notices as dn

AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ENDPOINT = uuid.UUID("11111111-1111-1111-1111-111111111111")


def breaker_row(state: str) -> dict[str, object]:
    return {"id": uuid.uuid4(), "at": AT, "state": state, "previous": "closed" if state == "open" else "open",
            "opened_at": AT if state == "open" else None, "endpoint_id": ENDPOINT, "project_id": None,
            "url": "https://example.com/hook", "description": "orders", "circuit_threshold": 5,
            "circuit_reset_ms": 300000}


def dead_row(**extra: object) -> dict[str, object]:
    return {"id": uuid.UUID("22222222-2222-2222-2222-222222222222"), "at": AT,
            "event_id": uuid.UUID("33333333-3333-3333-3333-333333333333"), "endpoint_id": ENDPOINT,
            "attempts": 3, "max_attempts": 3, "last_error": "", "event_type": "order.created",
            "destination": None, "project_id": None, "endpoint_url": "https://example.com/hook",
            "status_code": 503, "attempt_error": "", **extra}


def test_notify_takes_the_delivery_kinds_deduplicated() -> None:
    assert dn.parse_notify(["event.dead", "alerts", "endpoint.breaker_opened", "event.dead"]) == \
        ["alerts", "endpoint.breaker_opened", "event.dead"]
    assert dn.delivery_kinds(["alerts", "event.dead"]) == ["event.dead"]
    with pytest.raises(BadRequest, match=r"^notify\[1\]: must be one of alerts, endpoint.breaker_opened"):
        dn.parse_notify(["alerts", "endpoint.exploded"])
    with pytest.raises(BadRequest, match=r"^notify: expected an array"):
        dn.parse_notify("event.dead")


def test_the_notifier_and_alert_keys_are_internal_so_their_deaths_never_notify() -> None:
    key = dn.idempotency_key(uuid.uuid4(), uuid.uuid4())
    assert dn.is_internal_key(key) and len(key) <= 255
    assert dn.is_internal_key(f"{dn.ALERT_KEY_PREFIX}{uuid.uuid4()}")
    assert not dn.is_internal_key("order-42") and not dn.is_internal_key("mittr-alerts")


def like(pattern: str, text: str) -> bool:
    """SQL LIKE with backslash escapes, as Postgres reads the patterns."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 1
            out += re.escape(pattern[i])
        else:
            out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.fullmatch(out, text, re.DOTALL) is not None


@given(st.text(max_size=40))
def test_like_patterns_match_exactly_the_internal_keys(key: str) -> None:
    assert any(like(p, key) for p in dn.like_patterns()) == dn.is_internal_key(key)
    assert not any(like(p, "mittrXnotifyX" + key) for p in dn.like_patterns())   # `-` is not a wildcard


def test_breaker_opened_and_closed_share_a_dedup_key_and_read_on_each_platform() -> None:
    opened = dn.notice_for(dn.BREAKER_OPENED, breaker_row("open"))
    closed = dn.notice_for(dn.BREAKER_CLOSED, breaker_row("closed"))
    assert (opened.status, closed.status) == ("firing", "resolved")
    assert opened.dedup_key == closed.dedup_key == f"mittr-breaker-{ENDPOINT}"
    assert opened.variables["event_type"] == "endpoint.breaker_opened"
    assert "after 5 consecutive failures" in opened.variables["message"]

    slack = ap.slack_body({}, {}, opened)
    assert slack["text"] == "[firing] Circuit breaker opened: https://example.com/hook"
    assert slack["attachments"][0]["color"] == ap.FIRING_COLOR
    fields = slack["attachments"][0]["fields"]
    assert {"title": "Endpoint", "value": "https://example.com/hook", "short": True} in fields
    assert ap.slack_body({}, {}, closed)["attachments"][0]["color"] == ap.RESOLVED_COLOR
    pd_open = ap.pagerduty_body({"routingKey": "k"}, {}, opened)
    pd_closed = ap.pagerduty_body({"routingKey": "k"}, {}, closed)
    assert (pd_open["event_action"], pd_closed["event_action"]) == ("trigger", "resolve")
    assert pd_open["dedup_key"] == pd_closed["dedup_key"] and pd_open["payload"]["component"] == str(ENDPOINT)
    hook = ap.webhook_body({}, {}, closed)
    assert hook["type"] == "endpoint.breaker_closed" and hook["data"]["endpoint_url"] == "https://example.com/hook"
    assert "Opened at" not in closed.facts     # empty facts are left out


def test_a_dead_event_says_why_with_the_templates_variables() -> None:
    n = dn.dead_notice(dead_row())
    assert n.event_type == "event.dead" and n.status == "firing"
    assert n.dedup_key == "mittr-dead-22222222-2222-2222-2222-222222222222"
    assert n.variables["error"] == "HTTP 503" and n.variables["delivery_event_type"] == "order.created"
    assert n.variables["destination"] == "https://example.com/hook" and n.facts["Attempts"] == "3"
    template = {"title": "{{.event_type}} {{.status}}", "text": "{{.event_id}} died: {{.error}} {{.nope}}"}
    assert ap.title_of(template, n) == "event.dead firing"
    assert ap.text_of(template, n) == "33333333-3333-3333-3333-333333333333 died: HTTP 503 "
    subject, text = ap.email_parts({"to": ["a@example.com"]}, {}, n)
    assert subject.startswith("[firing] Event dead: order.created") and "Error: HTTP 503" in text
    embed = ap.discord_body({}, {}, n)["embeds"][0]
    assert embed["title"].startswith("[firing] Event dead") and isinstance(embed["color"], int)


def test_the_error_prefers_the_tasks_then_the_attempts_and_is_bounded() -> None:
    assert dn.dead_error(dead_row(last_error="timed out", attempt_error="refused")) == "timed out"
    assert dn.dead_error(dead_row(attempt_error="refused")) == "refused"
    assert dn.dead_error(dead_row(status_code=None)) == ""
    assert len(dn.dead_error(dead_row(last_error="x" * 5000))) == dn.ERROR_TEXT_MAX
    direct = dn.dead_notice(dead_row(endpoint_id=None, endpoint_url=None, destination="https://d.example/x"))
    assert direct.variables["destination"] == "https://d.example/x" and direct.variables["endpoint_id"] == ""


def test_project_bound_connectors_hear_only_about_their_project() -> None:
    p, other = uuid.uuid4(), uuid.uuid4()
    assert dn.wants(None, p) and dn.wants(None, None) and dn.wants(p, p)
    assert not dn.wants(p, other) and not dn.wants(p, None)
    with pytest.raises(ValueError):
        dn.notice_for("alerts", dead_row())
