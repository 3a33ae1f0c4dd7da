"""A workspace's SAML connections (the admin API, /api/v1/sso/saml) and the require-SSO rule.

The IdP comes from its metadata XML, from its metadata URL (fetched here under the SSRF policy of
[engine], bounded in size and time, no redirects followed), or field by field. An e-mail domain
belongs to one connection on the whole server, so discovery by e-mail has a single answer. Every
change writes its audit row (resource `saml_connection`) in its own transaction.
"""

from __future__ import annotations

import errno
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from control.errors import BadRequest, Conflict, Forbidden, NotFound
from control.jsonfmt import decode_cursor, iso, page
from control.policy.plan_limits import FeatureNotInPlan
from control.policy.saml import (
    ConnectionInput,
    IdpInfo,
    certificate_json,
    parse_connection,
    parse_idp_metadata,
    sp_urls,
)
from control.policy.ssrf import AddressPolicy
from control.services import audit
from control.services.plan_limits import PlanLimits
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import reachable_url, uuid_or_404

RESOURCE = "saml_connection"


class SsoRequired(Forbidden):
    code = "SSO_REQUIRED"


@dataclass(frozen=True, slots=True)
class SamlConfig:
    """The [saml] settings."""
    max_response_bytes: int
    max_metadata_bytes: int
    metadata_timeout_s: float
    request_ttl_s: float
    clock_skew_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SamlConfig:
        s = settings.section("saml")
        return cls(int(s["max_response_bytes"]), int(s["max_metadata_bytes"]), float(s["metadata_timeout_s"]),
                   float(s["request_ttl_s"]), int(s["clock_skew_s"]))


def connection_json(row: Any, base: str) -> dict[str, Any]:
    urls = sp_urls(base, row["client_id"], row["slug"])
    return {
        "id": str(row["id"]),
        "slug": row["slug"],
        "name": row["name"],
        "idpEntityId": row["idp_entity_id"],
        "ssoUrl": row["idp_sso_url"],
        "certificates": [certificate_json(pem) for pem in row["idp_certs"]],
        "metadataUrl": row["metadata_url"],
        "emailDomains": list(row["email_domains"]),
        "requireSso": row["require_sso"],
        "defaultRole": row["default_role"],
        "sp": {"entityId": urls.entity_id, "acsUrl": urls.acs, "metadataUrl": urls.metadata, "loginUrl": urls.login},
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def audit_view(out: dict[str, Any]) -> dict[str, Any]:
    """What the audit row keeps: the settings, certificates by fingerprint."""
    return {**{k: v for k, v in out.items() if k not in ("sp", "createdAt", "updatedAt")},
            "certificates": [c["sha256"] for c in out["certificates"]]}


class _ScreenedResolver(AbstractResolver):
    """DNS answers filtered through the SSRF policy: a name resolving only to refused addresses
    cannot be fetched (literal addresses are judged before any connection, by reachable_url)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._inner = DefaultResolver()
        self._policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._policy.refusal(r["host"]) is None]
        if not allowed:
            reasons = [self._policy.refusal(r["host"]) for r in found]
            why = "; ".join(r for r in reasons[:3] if r) or f"{host} resolved to no address"
            raise OSError(errno.EACCES, why)          # aiohttp shows strerror in its connection error
        return allowed

    async def close(self) -> None:
        await self._inner.close()


async def fetch_metadata(url: str, policy: AddressPolicy, max_bytes: int, timeout_s: float) -> bytes:
    """GET an IdP's metadata URL: the SSRF policy on every address, at most `max_bytes`, within
    `timeout_s`, no redirect followed (a redirect could lead to an address never judged)."""
    reachable_url(url, "metadataUrl", policy)
    connector = aiohttp.TCPConnector(resolver=_ScreenedResolver(policy), use_dns_cache=False)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.get(url, allow_redirects=False, headers={"Accept": "application/samlmetadata+xml, */*"}) as resp:
            if resp.status != 200:
                raise BadRequest(f"metadataUrl: answered HTTP {resp.status} (give the final URL of the metadata)")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                data += chunk
                if len(data) > max_bytes:
                    raise BadRequest(f"metadataUrl: the metadata is larger than {max_bytes} bytes")
            return bytes(data)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise BadRequest(f"metadataUrl: could not be fetched ({exc or type(exc).__name__})") from exc


class SamlConnections:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        if settings is None:
            raise ValueError("SamlConnections needs the settings")
        self.pool = pool
        self.cfg = SamlConfig.from_settings(settings)
        self.policy = AddressPolicy.from_engine(settings.engine)

    async def _idp(self, given: ConnectionInput) -> IdpInfo | None:
        if given.metadata_xml is not None:
            return parse_idp_metadata(given.metadata_xml.encode(), self.cfg.max_metadata_bytes)
        if given.metadata_url is not None:
            raw = await fetch_metadata(given.metadata_url, self.policy, self.cfg.max_metadata_bytes,
                                       self.cfg.metadata_timeout_s)
            return parse_idp_metadata(raw, self.cfg.max_metadata_bytes)
        return given.idp

    @staticmethod
    async def _set_domains(conn: asyncpg.Connection, who: Principal, connection_id: uuid.UUID,
                           domains: tuple[str, ...]) -> None:
        taken = [r["domain"] for r in await conn.fetch(q("saml_domains_taken"), list(domains), connection_id)]
        if taken:
            raise Conflict(f"emailDomains: {taken[0]} is already signed in by another SAML connection")
        await conn.execute(q("saml_clear_domains"), connection_id)
        try:
            await conn.execute(q("saml_insert_domains"), list(domains), connection_id, who.client_id)
        except asyncpg.UniqueViolationError as exc:       # claimed concurrently
            raise Conflict("emailDomains: a domain is already signed in by another SAML connection") from exc

    async def _row(self, db: asyncpg.Pool | asyncpg.Connection, who: Principal, raw_id: str,
                   lock: bool = False) -> asyncpg.Record:
        row = await db.fetchrow(q("saml_lock_connection" if lock else "saml_get_connection"),
                                uuid_or_404(raw_id, "SAML connection"), who.client_id)
        if row is None:
            raise NotFound("SAML connection not found")
        return row

    async def create(self, who: Principal, body: Any, base: str) -> dict[str, Any]:
        given = parse_connection(body, True, self.cfg.max_metadata_bytes)
        idp = await self._idp(given)
        assert idp is not None and given.slug is not None
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("saml_insert_connection"), uuid.uuid4(), who.client_id, given.slug,
                                      given.name or "", idp.entity_id, idp.sso_url, list(idp.certs),
                                      given.metadata_url, bool(given.require_sso), given.default_role or "viewer")
            if row is None:
                raise Conflict(f"slug {given.slug!r} is already used in this workspace")
            if given.email_domains:
                await self._set_domains(conn, who, row["id"], given.email_domains)
            row = await self._row(conn, who, str(row["id"]))
            out = connection_json(row, base)
            await audit.record(conn, who, "create", RESOURCE, row["id"], after=audit_view(out))
        return out

    async def list(self, who: Principal, limit: int, cursor: str | None, base: str) -> dict[str, Any]:
        after, after_id = decode_cursor(cursor)
        rows = await self.pool.fetch(q("saml_list_connections"), who.client_id, after, after_id, limit + 1)
        return page([connection_json(r, base) for r in rows], list(rows), limit)

    async def get(self, who: Principal, raw_id: str, base: str) -> dict[str, Any]:
        return connection_json(await self._row(self.pool, who, raw_id), base)

    async def update(self, who: Principal, raw_id: str, body: Any, base: str) -> dict[str, Any]:
        """Only what the body names changes; giving metadataUrl (even the same) fetches it again."""
        given = parse_connection(body, False, self.cfg.max_metadata_bytes)
        await self._row(self.pool, who, raw_id)          # 404 before any fetch for another's id
        idp = await self._idp(given)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._row(conn, who, raw_id, lock=True)
            slug = given.slug if given.slug is not None else current["slug"]
            if await conn.fetchval(q("saml_slug_taken"), who.client_id, slug, current["id"]):
                raise Conflict(f"slug {slug!r} is already used in this workspace")
            metadata_url = current["metadata_url"]
            if idp is not None:
                metadata_url = given.metadata_url
            await conn.execute(
                q("saml_update_connection"), current["id"], who.client_id, slug,
                given.name if given.name is not None else current["name"],
                idp.entity_id if idp else current["idp_entity_id"], idp.sso_url if idp else current["idp_sso_url"],
                list(idp.certs) if idp else current["idp_certs"], metadata_url,
                given.require_sso if given.require_sso is not None else current["require_sso"],
                given.default_role or current["default_role"])
            if given.email_domains is not None:
                await self._set_domains(conn, who, current["id"], given.email_domains)
            row = await self._row(conn, who, raw_id)
            before, out = connection_json(current, base), connection_json(row, base)
            await audit.record(conn, who, "update", RESOURCE, row["id"], audit_view(before), audit_view(out))
        return out

    async def delete(self, who: Principal, raw_id: str, base: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._row(conn, who, raw_id, lock=True)
            await conn.execute(q("saml_delete_connection"), current["id"], who.client_id)
            await audit.record(conn, who, "delete", RESOURCE, current["id"],
                               before=audit_view(connection_json(current, base)))


class PasswordLoginPolicy:
    """Whether a workspace lets its members log in with a password: not while one of its SAML
    connections has requireSso on and its plan includes SAML (a workspace moved to a plan without
    SAML is never locked out of both)."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.limits = PlanLimits(pool, 0, settings)

    async def check(self, client_id: uuid.UUID, accepting: bool = False) -> None:
        """403 SSO_REQUIRED for a password sign-in (or, `accepting`, an invitation accepted with a
        password) to a workspace that requires SSO."""
        if not await self.pool.fetchval(q("saml_sso_required"), client_id):
            return
        try:
            await self.limits.require_feature(client_id, "saml")
        except FeatureNotInPlan:
            return
        if accepting:
            raise SsoRequired("this workspace requires single sign-on: accept the invitation by signing in "
                              "through its identity provider instead of with a password (GET "
                              "/auth/sso/discover?email=... gives the link); the invitation stays open for it")
        raise SsoRequired("this workspace requires single sign-on: sign in through its identity provider "
                          "(GET /auth/sso/discover?email=... gives the link)")
