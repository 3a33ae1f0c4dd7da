"""The account routes' logic: who am I, finishing onboarding, the plan's limits, egress addresses.

The plan catalogue and the egress addresses are configuration: read and checked once per process
(`check_settings` lets `mittr` refuse to start on a mistake), never per request.
"""

from __future__ import annotations

import ipaddress
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg

from control.errors import BadRequest, Forbidden, NotFound
from control.jsonfmt import iso
from control.policy.plans import Catalogue, Plan, entitlements_json, parse_catalogue
from control.services import audit
from control.services.billing_providers import provider_for
from control.services.principal import Principal
from control.services.usage import used_this_month
from control.services.users import user_json
from control.settings import DEFAULT_CONFIG, Settings, SettingsError
from control.store.queries import q
from control.validate import need_object, str_field

DEFAULT_PLANS_FILE = DEFAULT_CONFIG.parent / "plans.toml"
COMPANY_NAME_MAX = 200
ONBOARDING_FIELDS = frozenset({"companyName"})
MAX_MEMBERSHIPS = 500      # workspaces listed by /me besides the current one


def plans_path(settings: Settings) -> Path:
    configured = str(settings.section("account")["plans_file"] or "")
    return Path(configured) if configured else DEFAULT_PLANS_FILE


@cache
def _catalogue(path: Path, default_plan: str) -> Catalogue:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"account.plans_file: cannot read {str(path)!r} ({exc})") from exc
    return parse_catalogue(text, str(path), default_plan)


def catalogue(settings: Settings) -> Catalogue:
    """The plan catalogue these settings name (read once per process and file); PlanCatalogueError
    (a SettingsError) names the plan and key of a mistake."""
    return _catalogue(plans_path(settings), str(settings.section("account")["default_plan"]))


def parse_egress_ips(values: object) -> list[str]:
    """[account] egress_ips: addresses or CIDR ranges, normalised (a lone address stays an address)."""
    if not isinstance(values, list):
        raise SettingsError("account.egress_ips: expected a list of IP addresses")
    out: list[str] = []
    for i, value in enumerate(values):
        try:
            text = str(value).strip()
            out.append(str(ipaddress.ip_network(text, strict=False)) if "/" in text
                       else str(ipaddress.ip_address(text)))
        except ValueError as exc:
            raise SettingsError(f"account.egress_ips[{i}]: {value!r} is not an IP address or CIDR range") from exc
    return out


def check_settings(settings: Settings) -> None:
    """Raise SettingsError for an unusable plan catalogue, default plan, egress address list or
    billing provider (its [billing.stripe] keys and prices, when it is Stripe)."""
    catalogue(settings)
    parse_egress_ips(settings.section("account")["egress_ips"])
    provider_for(settings)


def parse_company_name(body: Any) -> str:
    data = need_object(body)
    unknown = sorted(set(data) - ONBOARDING_FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if data.get("companyName") is None:
        raise BadRequest("companyName: required")
    text = str_field(data["companyName"], "companyName", max_len=COMPANY_NAME_MAX).strip()
    if not text:
        raise BadRequest("companyName: must not be blank")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadRequest("companyName: must not contain control characters")
    return text


class AccountInfoService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings) -> None:
        self.pool = pool
        self.catalogue = catalogue(settings)
        self.egress_ips = parse_egress_ips(settings.section("account")["egress_ips"])

    def plan_of(self, row: asyncpg.Record) -> Plan:
        return self.catalogue.plan_for(row["plan_id"])

    def workspace_json(self, row: asyncpg.Record) -> dict[str, Any]:
        return {"id": str(row["id"]), "name": row["name"], "onboarded": row["onboarded_at"] is not None,
                "planId": self.plan_of(row).id, "createdAt": iso(row["created_at"])}

    async def me(self, who: Principal) -> dict[str, Any]:
        """The caller: a person (their account, role and other workspaces) or an API key."""
        async with self.pool.acquire() as conn:
            workspace = await _workspace(conn, who.client_id)
            out: dict[str, Any] = {"workspace": self.workspace_json(workspace),
                                   "onboarding": _onboarding_json(workspace)}
            if who.key_id is not None:
                key = await conn.fetchrow(q("account_key"), who.key_id, who.client_id)
                if key is None:
                    raise NotFound("API key not found")
                return {"apiKey": _key_json(key), **out}
            if who.user_id is None:
                raise NotFound("no person or API key behind this request")
            user = await conn.fetchrow(q("account_user"), who.user_id)
            if user is None:
                raise NotFound("user not found")
            others = await conn.fetch(q("account_other_memberships"), who.user_id, who.client_id, MAX_MEMBERSHIPS)
        return {"user": user_json(user), **out, "role": who.role,
                "memberships": [{"id": str(r["id"]), "name": r["name"], "role": r["role"]} for r in others]}

    async def complete_onboarding(self, who: Principal, body: Any) -> dict[str, Any]:
        """Name the workspace and mark it onboarded; a repeat renames it (the completion time stays the
        first). Returns the workspace."""
        name = parse_company_name(body)
        if who.project_id is not None:
            raise Forbidden("a caller scoped to a project cannot change the workspace")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("account_complete_onboarding"), who.client_id, name)
            if row is None:
                raise NotFound("workspace not found")
            out = self.workspace_json(row)
            before = {"name": row["old_name"], "onboardedAt": iso(row["old_onboarded_at"])}
            await audit.record(conn, who, "onboard", "workspace", row["id"], before=before,
                               after={"name": row["name"], "onboardedAt": iso(row["onboarded_at"])})
        return out

    async def entitlements(self, who: Principal) -> dict[str, Any]:
        """The plan's limits, and this month's use of the two that are counted."""
        async with self.pool.acquire() as conn:
            workspace = await _workspace(conn, who.client_id)
            events = await used_this_month(conn, who.client_id)
            endpoints = int(await conn.fetchval(q("account_endpoint_count"), who.client_id))
        return {**entitlements_json(self.plan_of(workspace), workspace["monthly_quota"]),
                "usage": {"monthlyEvents": events, "endpoints": endpoints}}

    def egress(self) -> dict[str, Any]:
        return {"ips": list(self.egress_ips)}


async def _workspace(conn: asyncpg.Connection, client_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(q("account_workspace"), client_id)
    if row is None:
        raise NotFound("workspace not found")
    return row


def _onboarding_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"completed": row["onboarded_at"] is not None, "completedAt": iso(row["onboarded_at"])}


def _key_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "keyPrefix": row["key_prefix"], "scopes": list(row["scopes"]),
            "projectId": str(row["project_id"]) if row["project_id"] else None, "expiresAt": iso(row["expires_at"])}
