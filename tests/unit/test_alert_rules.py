"""Alert rules and channel payloads, pure: parsing (400 naming the field), metrics, comparisons,
cooldown decisions, templates, masking, and each platform's documented body shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import BadRequest
from control.policy import alert_payloads as ap
from control.policy import alert_rules as ar

GOOD = {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"}


def test_a_valid_condition_parses() -> None:
    c = ar.parse_condition(GOOD)
    assert (c.metric, c.operator, c.threshold, c.window, c.window_s) == ("failure_rate", "gt", 0.1, "5m", 300)


@pytest.mark.parametrize(("change", "field"), [
    ({"metric": "cpu"}, "condition.metric"), ({"operator": "greater"}, "condition.operator"),
    ({"operator": {}}, "condition.operator"), ({"metric": []}, "condition.metric"),
    ({"value": "high"}, "condition.value"), ({"value": True}, "condition.value"),
    ({"window": "5 minutes"}, "condition.window"), ({"window": "30s"}, "condition.window"),
    ({"window": "90s"}, "condition.window"), ({"window": "30d"}, "condition.window"),
    ({"extra": 1}, "condition.extra")])
def test_a_bad_condition_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(BadRequest) as err:
        ar.parse_condition({**GOOD, **change})
    assert err.value.message.startswith(field + ":"), err.value.message


def test_a_missing_window_is_named() -> None:
    with pytest.raises(BadRequest, match=r"^condition\.window: required"):
        ar.parse_condition({k: v for k, v in GOOD.items() if k != "window"})


@pytest.mark.parametrize(("text", "seconds"), [("0s", 0), ("45s", 45), ("15m", 900), ("2h", 7200), ("1d", 86400)])
def test_cooldowns(text: str, seconds: int) -> None:
    assert ar.parse_cooldown(text) == seconds


def test_metrics_follow_the_analytics_definitions() -> None:
    o = ar.Observed(attempts=20, successes=15, failed=5, p95_ms=250, queue_depth=7)
    assert ar.metric_value("failure_rate", o) == 0.25
    assert ar.metric_value("success_rate", o) == 0.75
    assert ar.metric_value("latency", o) == 250.0
    assert ar.metric_value("error_count", o) == 5.0
    assert ar.metric_value("delivery_count", o) == 20.0
    assert ar.metric_value("queue_depth", o) == 7.0
    empty = ar.Observed()
    assert ar.metric_value("failure_rate", empty) is None and ar.metric_value("latency", empty) is None
    assert ar.metric_value("error_count", empty) == 0.0


@given(st.sampled_from(list(ar.OPERATORS)), st.floats(allow_nan=False, allow_infinity=False),
       st.floats(allow_nan=False, allow_infinity=False))
def test_operators_mean_what_their_symbols_say(op: str, value: float, threshold: float) -> None:
    symbol = ar.OPERATORS[op]
    expected = {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
                "<=": value <= threshold, "==": value == threshold, "!=": value != threshold}[symbol]
    assert ar.holds(op, value, threshold) is expected
    assert ar.holds(op, None, threshold) is False     # no data never holds


def test_cooldown_and_resolution_decisions() -> None:
    assert ar.decide(True, False, None, 900) == ar.Decision(fire=True)
    assert ar.decide(True, True, 60, 900) == ar.Decision()              # inside the cooldown: quiet
    assert ar.decide(True, True, 901, 900) == ar.Decision(fire=True)    # still breached: reminded
    assert ar.decide(False, True, 60, 900) == ar.Decision(resolve=True)
    assert ar.decide(False, False, 60, 900) == ar.Decision()


def test_templates_substitute_and_never_raise() -> None:
    assert ar.render("Failure rate is {{.value}} (threshold: {{ .threshold }})",
                     {"value": "0.5", "threshold": "0.1"}) == "Failure rate is 0.5 (threshold: 0.1)"
    assert ar.render("{{.nope}}|{{.value}}|{{value}}|{{.__class__}}", {"value": "1"}) == "|1|{{value}}|"


@given(st.text(max_size=300), st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
                                               st.text(max_size=20), max_size=5))
def test_rendering_any_template_is_total(template: str, variables: dict[str, str]) -> None:
    out = ar.render(template, variables)
    assert isinstance(out, str)
    if "{{" not in template:
        assert out == template, "text without placeholders passes through unchanged"
    for name, value in variables.items():
        assert ar.render("{{." + name + "}}", variables) == value


def test_settings_are_checked_per_type() -> None:
    with pytest.raises(BadRequest, match=r"^action\.to: "):
        ap.require("email", ap.parse_settings("email", {"subject": "x"}, "action"), "action", ap.REQUIRED)
    with pytest.raises(BadRequest, match=r"^action\.webhookUrl: required"):
        ap.require("slack", ap.parse_settings("slack", {"channel": "#a"}, "action"), "action", ap.REQUIRED)
    with pytest.raises(BadRequest, match=r"^action\.routingKey: required"):
        ap.require("pagerduty", {}, "action", ap.REQUIRED)
    with pytest.raises(BadRequest, match=r"^action\.bogus: unknown field"):
        ap.parse_settings("slack", {"bogus": 1}, "action")
    with pytest.raises(BadRequest, match=r"^action\.to\[0\]: not an e-mail"):
        ap.parse_settings("email", {"to": ["nobody"]}, "action")


def test_secrets_are_masked_and_a_masked_value_sent_back_keeps_the_secret() -> None:
    stored = {"webhookUrl": "https://hooks.slack.com/services/T0/B0/abcdef", "channel": "#a",
              "routingKey": "R0123456789abcdef"}
    shown = ap.masked(stored)
    assert shown["webhookUrl"] == "https://hooks.slack.com/****" and shown["channel"] == "#a"
    assert "abcdef" not in str(shown["webhookUrl"]) and shown["routingKey"] == "****cdef"
    merged = ap.merge(stored, {"webhookUrl": shown["webhookUrl"], "channel": "#b"})
    assert merged["webhookUrl"] == stored["webhookUrl"] and merged["channel"] == "#b"
    assert "routingKey" not in ap.merge(stored, {"routingKey": None})


AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def notice(status: str = "firing") -> ap.Notice:
    return ap.Notice(f"alert.{status}", status, "mittr-rule-1", AT,
                     {"rule": "High failure rate", "status": status, "message": "rate is 0.5",
                      "metric": "failure_rate"},
                     {"Metric": "failure_rate", "Value": "0.5"})


def test_slack_body_has_an_attachment_with_a_color() -> None:
    body = ap.slack_body({"channel": "#alerts", "iconEmoji": ":bell:"}, {"color": "#ba5b38"}, notice())
    assert body["channel"] == "#alerts" and body["icon_emoji"] == ":bell:"
    [att] = body["attachments"]
    assert att["color"] == "#ba5b38" and att["text"] == "rate is 0.5" and att["ts"] == int(AT.timestamp())
    assert {"title": "Value", "value": "0.5", "short": True} in att["fields"]


def test_discord_body_is_an_embed_with_an_integer_color() -> None:
    body = ap.discord_body({"username": "Mittr"}, {}, notice())
    [embed] = body["embeds"]
    assert isinstance(embed["color"], int) and embed["color"] == int(ap.FIRING_COLOR[1:], 16)
    assert embed["title"] == "[firing] High failure rate" and embed["timestamp"] == AT.isoformat()
    assert all(set(f) == {"name", "value", "inline"} for f in embed["fields"]) and body["username"] == "Mittr"


def test_teams_body_is_a_message_card() -> None:
    body = ap.teams_body({}, {}, notice("resolved"))
    assert body["@type"] == "MessageCard" and body["@context"] == "https://schema.org/extensions"
    assert body["themeColor"] == ap.RESOLVED_COLOR[1:] and body["summary"]
    assert body["sections"][0]["facts"][0] == {"name": "Metric", "value": "failure_rate"}


def test_pagerduty_triggers_then_resolves_with_one_dedup_key() -> None:
    trig = ap.pagerduty_body({"routingKey": "R" * 32, "severity": "critical"}, {}, notice())
    assert trig["event_action"] == "trigger" and trig["routing_key"] == "R" * 32
    assert set(trig["payload"]) >= {"summary", "source", "severity"} and trig["payload"]["severity"] == "critical"
    res = ap.pagerduty_body({"routingKey": "R" * 32}, {}, notice("resolved"))
    assert res["event_action"] == "resolve" and "payload" not in res
    assert res["dedup_key"] == trig["dedup_key"] == "mittr-rule-1"
