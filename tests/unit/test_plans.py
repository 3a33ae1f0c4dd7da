"""The plan catalogue parser: the shipped file, a valid catalogue, every refusal, unlimited values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.policy.plans import (
    FEATURES,
    PlanCatalogueError,
    camel,
    effective_quota,
    entitlements_json,
    parse_catalogue,
    plan_json,
)
from control.services.account import DEFAULT_PLANS_FILE, parse_egress_ips
from control.settings import SettingsError

GROWTH = """
[plans.growth]
name = "Growth"
monthly_price_cents = 4900
annual_price_cents = 49000
monthly_event_quota = 1000000
endpoints = 50
max_rate_limit_per_sec = 500
retention_days = 30
features = ["sso", "audit_logs"]
"""
FREE = """
[plans.free]
name = "Free"
monthly_price_cents = 0
annual_price_cents = 0
monthly_event_quota = 10000
endpoints = 0
max_rate_limit_per_sec = 1
retention_days = 1
"""
KEYS = {"name": '"Free"', "monthly_price_cents": "0", "annual_price_cents": "0", "monthly_event_quota": "10",
        "endpoints": "1", "max_rate_limit_per_sec": "1", "retention_days": "1"}


def one_plan(**changes: str | None) -> str:
    """A [plans.p] table with KEYS, a key replaced (a TOML value) or removed (None)."""
    keys = {**KEYS, **changes}
    return "[plans.p]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items() if v is not None)


def test_the_shipped_catalogue_has_an_unlimited_self_hosted_default() -> None:
    cat = parse_catalogue(DEFAULT_PLANS_FILE.read_text(), "plans.toml", "self-hosted")
    plan = cat.default
    assert plan.id == "self-hosted" and cat.plan_for("self-hosted") is plan
    assert entitlements_json(plan) == {
        "planId": "self-hosted", "planName": "Self-hosted", "monthlyEventQuota": None, "endpoints": None,
        "maxRateLimitPerSec": None, "retentionDays": None,
        "features": {"sso": True, "saml": True, "scim": True, "auditLogs": True, "subAccounts": True,
                     "inbound": True, "alerting": True, "connectors": True, "transformations": True,
                     "mtls": True}}
    assert plan.monthly_price_cents == 0 and plan.annual_price_cents == 0


def test_the_documented_example_plan_parses() -> None:
    """The commented example in config/plans.toml stays a valid plan."""
    text = DEFAULT_PLANS_FILE.read_text()
    example = "\n".join(line.removeprefix("# ") for line in text.splitlines()
                        if re.match(r"^# (\[plans\.|[a-z_]+ = )", line))
    cat = parse_catalogue(text + "\n" + example, "plans.toml", "growth")
    assert [p.id for p in cat.plans] == ["self-hosted", "growth"]
    assert cat.default.monthly_event_quota == 1_000_000


def test_a_catalogue_keeps_order_values_and_chooses_plans() -> None:
    cat = parse_catalogue(GROWTH + FREE, "x.toml", "free")
    assert [p.id for p in cat.plans] == ["growth", "free"]
    growth = cat.plan_for("growth")
    assert plan_json(growth) == {
        "id": "growth", "name": "Growth", "monthlyPriceCents": 4900, "annualPriceCents": 49000,
        "monthlyEventQuota": 1000000, "endpoints": 50, "maxRateLimitPerSec": 500, "retentionDays": 30,
        "features": {"sso": True, "saml": False, "scim": False, "auditLogs": True, "subAccounts": False,
                     "inbound": False, "alerting": False, "connectors": False, "transformations": False,
                     "mtls": False}}
    free = cat.plan_for("free")
    assert free.features == frozenset() and free.endpoints == 0          # features default to none
    # A plan the catalogue does not have (removed, or the column default) is the default plan.
    assert cat.plan_for("self-hosted") is free and cat.plan_for("") is free and cat.plan_for(None) is free


def test_a_workspace_quota_overrides_the_plan() -> None:
    growth = parse_catalogue(GROWTH, "x.toml", "growth").default
    assert effective_quota(growth, None) == 1_000_000
    assert effective_quota(growth, 5) == 5
    assert entitlements_json(growth, 0)["monthlyEventQuota"] == 0


@pytest.mark.parametrize(("text", "default", "message"), [
    ("[plans.p\n", "p", "x.toml: not valid TOML"),
    ("", "p", "x.toml: no plans"),
    ("plans = 1\n", "p", "x.toml: no plans"),
    ("version = 1\n" + one_plan(), "p", "unknown top-level key 'version'"),
    (one_plan(), "gold", "account.default_plan: 'gold' is not in x.toml (plans: p)"),
    (one_plan().replace("plans.p", "plans.Gold"), "Gold", "plans.Gold: a plan id is"),
    (one_plan().replace("plans.p", 'plans."a b"'), "a b", "a plan id is"),
    ("[plans]\np = 3\n", "p", "plans.p: expected a table"),
    (one_plan(monthly_event_quota=None), "p", "plans.p: missing monthly_event_quota"),
    (one_plan(name=None, endpoints=None), "p", "plans.p: missing endpoints, name"),
    (one_plan(endpionts="3"), "p", "plans.p.endpionts: unknown key"),
    (one_plan(name='""'), "p", "plans.p.name: expected a non-empty string"),
    (one_plan(name='"' + "n" * 101 + '"'), "p", "plans.p.name: expected a non-empty string"),
    (one_plan(name="3"), "p", "plans.p.name"),
    (one_plan(monthly_price_cents="-1"), "p", "plans.p.monthly_price_cents: expected an integer >= 0, got -1"),
    (one_plan(annual_price_cents='"unlimited"'), "p", "plans.p.annual_price_cents: expected an integer >= 0"),
    (one_plan(annual_price_cents="9.5"), "p", "plans.p.annual_price_cents"),
    (one_plan(endpoints="-1"), "p", 'plans.p.endpoints: expected an integer >= 0 or "unlimited", got -1'),
    (one_plan(endpoints="true"), "p", "plans.p.endpoints: expected an integer"),
    (one_plan(endpoints='"infinite"'), "p", "plans.p.endpoints"),
    (one_plan(monthly_event_quota="1e9"), "p", "plans.p.monthly_event_quota"),
    (one_plan(max_rate_limit_per_sec="0"), "p", "plans.p.max_rate_limit_per_sec: expected an integer >= 1"),
    (one_plan(retention_days="0"), "p", "plans.p.retention_days: expected an integer >= 1"),
    (one_plan(features='"sso"'), "p", "plans.p.features: expected a list of feature names"),
    (one_plan(features="[1]"), "p", "plans.p.features: expected a list"),
    (one_plan(features='["sso", "telepathy"]'), "p", "plans.p.features: unknown feature 'telepathy'"),
    (one_plan(features='["*", "sso"]'), "p", 'plans.p.features: "*" (every feature) stands alone'),
])
def test_a_bad_catalogue_is_refused_naming_the_place(text: str, default: str, message: str) -> None:
    with pytest.raises(PlanCatalogueError) as caught:
        parse_catalogue(text, "x.toml", default)
    assert message in str(caught.value)
    assert isinstance(caught.value, SettingsError)      # `mittr` reports it as a configuration error


_LIMIT_VALUES = st.one_of(st.just("unlimited"), st.integers(min_value=1, max_value=2**63 - 1))


@given(quota=_LIMIT_VALUES, endpoints=_LIMIT_VALUES, rate=_LIMIT_VALUES, days=_LIMIT_VALUES,
       features=st.sets(st.sampled_from(FEATURES)))
def test_limits_are_integers_or_unlimited_as_null(quota: Any, endpoints: Any, rate: Any, days: Any,
                                                  features: set[str]) -> None:
    def toml(v: Any) -> str:
        return f'"{v}"' if isinstance(v, str) else str(v)

    text = one_plan(monthly_event_quota=toml(quota), endpoints=toml(endpoints), max_rate_limit_per_sec=toml(rate),
                    retention_days=toml(days), features=str(sorted(features)).replace("'", '"'))
    got = entitlements_json(parse_catalogue(text, "x.toml", "p").default)
    expect = [None if v == "unlimited" else v for v in (quota, endpoints, rate, days)]
    assert [got["monthlyEventQuota"], got["endpoints"], got["maxRateLimitPerSec"], got["retentionDays"]] == expect
    assert {name for name, on in got["features"].items() if on} == {camel(f) for f in features}


def test_egress_addresses_are_normalised_and_checked() -> None:
    assert parse_egress_ips([]) == []
    assert parse_egress_ips([" 203.0.113.10", "2001:DB8::10", "198.51.100.7/28"]) == [
        "203.0.113.10", "2001:db8::10", "198.51.100.0/28"]
    with pytest.raises(SettingsError, match=r"account\.egress_ips\[1\]: 'nope' is not an IP address"):
        parse_egress_ips(["203.0.113.10", "nope"])
    with pytest.raises(SettingsError, match="expected a list"):
        parse_egress_ips("203.0.113.10")


def test_default_plans_file_is_in_config() -> None:
    # control/config links to the top-level config/ (and is the control package's data in a wheel).
    assert DEFAULT_PLANS_FILE.resolve() == Path(__file__).resolve().parents[2] / "config" / "plans.toml"
