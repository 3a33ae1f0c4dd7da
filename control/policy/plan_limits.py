"""What a plan refuses, decided without I/O: the event quota is enforced by the database at ingest
(migration 022); everything else a plan limits is decided here.

- `rateLimitPerSec` is CLAMPED to the plan's `max_rate_limit_per_sec`, like maxAttempts is clamped
  to 25: 0 (unlimited) and anything above the cap are stored as the cap, and GET shows the stored
  value. A refusal would break every client that creates endpoints with the default 0.
- The endpoint count is refused with 402 PLAN_LIMIT_EXCEEDED (the plan, not the caller's rights,
  is what stops it: 403 stays "your role or key may not").
- A feature the plan lacks answers 402 FEATURE_NOT_IN_PLAN on its whole route family, except
  DELETE, so a workspace that moved to a smaller plan can still remove what it made; endpoint
  fields behind a feature (transformation, mTLS) are refused when set to a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.errors import ApiError
from control.policy.plans import Catalogue, Plan, camel

# Route families that are a feature of their own.
FEATURE_OF_FAMILY: Mapping[str, str] = {
    "inbound": "inbound", "alerting": "alerting", "connectors": "connectors", "sub-accounts": "sub_accounts",
    "audit-logs": "audit_logs", "scim": "scim", "sso": "saml",
}
# Endpoint columns behind a feature: set to a value, they need it.
FEATURE_OF_COLUMN: Mapping[str, str] = {"transformation": "transformations", "mtls_cert": "mtls"}


class PlanLimitExceeded(ApiError):
    status, code = 402, "PLAN_LIMIT_EXCEEDED"


class FeatureNotInPlan(ApiError):
    status, code = 402, "FEATURE_NOT_IN_PLAN"


def feature_refusal(plan: Plan, feature: str) -> FeatureNotInPlan:
    return FeatureNotInPlan(f"the {plan.name} plan does not include {camel(feature)}; choose a plan that does",
                            extra={"feature": camel(feature), "planId": plan.id})


def gated_feature(family: str, method: str) -> str | None:
    """The feature a call on this route family needs (None: no plan gate)."""
    return None if method == "DELETE" else FEATURE_OF_FAMILY.get(family)


def everyone_has(catalogue: Catalogue, feature: str) -> bool:
    """True when no plan of the catalogue lacks the feature (the self-hosted default): then no
    request needs to look its workspace's plan up."""
    return all(feature in p.features for p in catalogue.plans)


def clamp_rate(requested: int, cap: int | None) -> int:
    """The rateLimitPerSec stored: 0 means unlimited, which a capped plan turns into its cap."""
    if cap is None:
        return requested
    return cap if requested == 0 else min(requested, cap)


def check_endpoint_features(plan: Plan, values: Mapping[str, Any], given: set[str]) -> None:
    """Only what this request sets: an endpoint made before a downgrade can still be edited."""
    for column, feature in FEATURE_OF_COLUMN.items():
        if column in given and values.get(column) and feature not in plan.features:
            raise feature_refusal(plan, feature)


def check_endpoint_count(plan: Plan, existing: int) -> None:
    if plan.endpoints is not None and existing >= plan.endpoints:
        raise PlanLimitExceeded(f"the {plan.name} plan allows {plan.endpoints} endpoints; delete one or "
                                "choose a larger plan", extra={"limit": plan.endpoints, "planId": plan.id})
