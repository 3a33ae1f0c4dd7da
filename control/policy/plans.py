"""The plan catalogue: what each plan allows, read from config/plans.toml. Pure, so every rule of the
format is testable without files or a database.

Format (the README's "Account, plans and egress IPs" documents it for operators; billing reads the
same catalogue, so change it only together with this parser):

    [plans.<id>]                      # id: lower-case letters, digits, '-' and '_' (at most 64)
    name = "Growth"                   # shown to people
    monthly_price_cents = 4900        # price of one month, billed monthly (integer >= 0)
    annual_price_cents = 49000        # price of one year, billed annually (integer >= 0)
    monthly_event_quota = 1000000     # accepted events per calendar month (UTC)
    endpoints = 50                    # endpoints a workspace may have
    max_rate_limit_per_sec = 500      # the highest rateLimitPerSec an endpoint may ask for (>= 1)
    retention_days = 30               # days events are kept (>= 1)
    features = ["sso", "audit_logs"]  # optional; ["*"] = every feature, [] (the default) = none

Every limit is an integer or the string "unlimited" (TOML has no null; the API shows it as null).
Plans keep the file's order. Unknown keys, a missing key, a wrong type or an unknown feature are
errors that name the plan and the key, so a typo cannot silently grant or withhold anything.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.settings import SettingsError

UNLIMITED = "unlimited"
ALL_FEATURES = "*"
# Features a plan can switch on; the API names them in camelCase (audit_logs -> auditLogs).
FEATURES: tuple[str, ...] = (
    "sso", "saml", "scim", "audit_logs", "sub_accounts", "inbound", "alerting", "connectors",
    "transformations", "mtls",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# key -> smallest allowed value; a limit also accepts "unlimited".
_PRICES: dict[str, int] = {"monthly_price_cents": 0, "annual_price_cents": 0}
_LIMITS: dict[str, int] = {"monthly_event_quota": 0, "endpoints": 0, "max_rate_limit_per_sec": 1,
                           "retention_days": 1}
_KEYS = frozenset({"name", "features", *_PRICES, *_LIMITS})
MAX_NAME = 100


class PlanCatalogueError(SettingsError):
    """The catalogue (or the default plan chosen from it) is not usable; the message says where."""


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    monthly_price_cents: int
    annual_price_cents: int
    monthly_event_quota: int | None   # None = unlimited
    endpoints: int | None
    max_rate_limit_per_sec: int | None
    retention_days: int | None
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class Catalogue:
    plans: tuple[Plan, ...]           # in the file's order
    default: Plan                     # [account] default_plan

    def get(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def plan_for(self, plan_id: str | None) -> Plan:
        """A workspace's plan: its `clients.plan_id` when the catalogue has it, else the default (a
        plan since removed from the file, or the column's 'self-hosted' on a catalogue without it)."""
        found = self.get(plan_id) if plan_id else None
        return found if found is not None else self.default


def parse_catalogue(text: str, origin: str, default_plan: str) -> Catalogue:
    """The catalogue in `text` (TOML; `origin` names it in errors), with `default_plan` checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanCatalogueError(f"{origin}: not valid TOML ({exc})") from exc
    return catalogue_from(data, origin, default_plan)


def catalogue_from(data: Mapping[str, Any], origin: str, default_plan: str) -> Catalogue:
    extra = sorted(set(data) - {"plans"})
    if extra:
        raise PlanCatalogueError(f"{origin}: unknown top-level key {extra[0]!r} (plans go in [plans.<id>] tables)")
    tables = data.get("plans")
    if not isinstance(tables, Mapping) or not tables:
        raise PlanCatalogueError(f"{origin}: no plans (add at least one [plans.<id>] table)")
    plans = tuple(_plan(plan_id, table, f"{origin}: plans.{plan_id}") for plan_id, table in tables.items())
    default = next((p for p in plans if p.id == default_plan), None)
    if default is None:
        raise PlanCatalogueError(f"account.default_plan: {default_plan!r} is not in {origin} "
                                 f"(plans: {', '.join(p.id for p in plans)})")
    return Catalogue(plans, default)


def _plan(plan_id: str, table: Any, where: str) -> Plan:
    if not _ID.match(plan_id):
        raise PlanCatalogueError(f"{where}: a plan id is 1-64 lower-case letters, digits, '-' or '_'")
    if not isinstance(table, Mapping):
        raise PlanCatalogueError(f"{where}: expected a table ([plans.{plan_id}])")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise PlanCatalogueError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    missing = sorted(k for k in _KEYS - {"features"} if k not in table)
    if missing:
        raise PlanCatalogueError(f"{where}: missing {', '.join(missing)}")
    name = table["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise PlanCatalogueError(f"{where}.name: expected a non-empty string of at most {MAX_NAME} characters")
    return Plan(plan_id, name.strip(),
                monthly_price_cents=_price(table, "monthly_price_cents", where),
                annual_price_cents=_price(table, "annual_price_cents", where),
                monthly_event_quota=_limit(table, "monthly_event_quota", where),
                endpoints=_limit(table, "endpoints", where),
                max_rate_limit_per_sec=_limit(table, "max_rate_limit_per_sec", where),
                retention_days=_limit(table, "retention_days", where),
                features=_features(table.get("features", []), f"{where}.features"))


def _price(table: Mapping[str, Any], key: str, where: str) -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < _PRICES[key]:
        raise PlanCatalogueError(f"{where}.{key}: expected an integer >= {_PRICES[key]}, got {value!r}")
    return value


def _limit(table: Mapping[str, Any], key: str, where: str) -> int | None:
    value = table[key]
    if value == UNLIMITED:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < _LIMITS[key]:
        raise PlanCatalogueError(f'{where}.{key}: expected an integer >= {_LIMITS[key]} or "{UNLIMITED}", '
                                 f"got {value!r}")
    return value


def _features(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanCatalogueError(f"{where}: expected a list of feature names")
    if ALL_FEATURES in value:
        if len(value) != 1:
            raise PlanCatalogueError(f'{where}: "*" (every feature) stands alone')
        return frozenset(FEATURES)
    unknown = sorted(set(value) - set(FEATURES))
    if unknown:
        raise PlanCatalogueError(f"{where}: unknown feature {unknown[0]!r} (known: {', '.join(FEATURES)})")
    return frozenset(value)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def features_json(plan: Plan) -> dict[str, bool]:
    """Every known feature, on or off, so a client never has to guess what a missing name means."""
    return {camel(f): f in plan.features for f in FEATURES}


def effective_quota(plan: Plan, override: int | None) -> int | None:
    """The monthly event quota in force: a workspace's own `clients.monthly_quota` (what ingest
    enforces, set by an operator or by billing) when it has one, else the plan's."""
    return override if override is not None else plan.monthly_event_quota


def entitlements_json(plan: Plan, quota_override: int | None = None) -> dict[str, Any]:
    return {"planId": plan.id, "planName": plan.name,
            "monthlyEventQuota": effective_quota(plan, quota_override), "endpoints": plan.endpoints,
            "maxRateLimitPerSec": plan.max_rate_limit_per_sec, "retentionDays": plan.retention_days,
            "features": features_json(plan)}


def plan_json(plan: Plan) -> dict[str, Any]:
    """A catalogue entry as the API shows it (prices included), for billing's plan list."""
    return {"id": plan.id, "name": plan.name, "monthlyPriceCents": plan.monthly_price_cents,
            "annualPriceCents": plan.annual_price_cents, "monthlyEventQuota": plan.monthly_event_quota,
            "endpoints": plan.endpoints, "maxRateLimitPerSec": plan.max_rate_limit_per_sec,
            "retentionDays": plan.retention_days, "features": features_json(plan)}
