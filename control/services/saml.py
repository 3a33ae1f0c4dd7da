"""Signing in through a workspace's SAML IdP: the AuthnRequest, our SP metadata, the ACS, discovery.

pysaml2 checks the XML signature (xmlsec1: the response or its assertion must be signed by one of
the connection's certificates), the issuer, the audience, NotBefore/NotOnOrAfter and InResponseTo
(only AuthnRequests this server sent and still remembers; no IdP-initiated sign-in). We add what
it only logs or does loosely: the response's Destination and the bearer confirmation's Recipient
must be our ACS URL. The AuthnRequest is answered once and the assertion id is remembered until its
NotOnOrAfter, so a response cannot be replayed. pysaml2 is synchronous and runs xmlsec1 as a
process, so verification runs in a worker thread.

Who may come in (the IdP is the workspace's own, so its word about an address is trusted only so
far): an account that already exists signs in when it is a member of the workspace or holds an open
invitation there; a new account is made (verified address, no password) only for an address in
one of the connection's e-mail domains, and joins with the connection's default role.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.client import Saml2Client
from saml2.config import Config
from saml2.metadata import create_metadata_string

from control.errors import ApiError, NotFound
from control.policy.saml import (
    IdpInfo,
    SamlRefused,
    SpUrls,
    check_addressed_to_us,
    decode_saml_response,
    email_domain,
    person_of,
    relay_path,
    sp_config,
    sp_urls,
)
from control.services.accounts import SignedIn
from control.services.plan_limits import PlanLimits
from control.services.saml_connections import SamlConfig
from control.services.sso_login import sign_in_by_verified_email
from control.services.users import parse_email, user_by_email
from control.settings import Settings
from control.store.queries import q

log = logging.getLogger("mittr.saml")
CLIENT_CACHE = 256
PRUNE_EVERY_S = 60.0


class SamlResponseInvalid(ApiError):
    status, code = 401, "SAML_RESPONSE_INVALID"


@dataclass(frozen=True, slots=True)
class Acs:
    signed_in: SignedIn
    next_path: str


def _not_on_or_after(assertion: Any, fallback: datetime) -> datetime:
    """The latest moment the assertion could still be accepted: its id is kept until then."""
    stamps = []
    if assertion.conditions is not None and assertion.conditions.not_on_or_after:
        stamps.append(assertion.conditions.not_on_or_after)
    for c in (assertion.subject.subject_confirmation or []) if assertion.subject is not None else []:
        if c.subject_confirmation_data is not None and c.subject_confirmation_data.not_on_or_after:
            stamps.append(c.subject_confirmation_data.not_on_or_after)
    parsed = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
    return max(parsed) if parsed else fallback


class SamlService:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        if settings is None:
            raise ValueError("SamlService needs the settings")
        self.pool = pool
        self.settings = settings
        self.cfg = SamlConfig.from_settings(settings)
        self.limits = PlanLimits(pool, 0, settings)
        self._clients: OrderedDict[tuple[object, ...], Saml2Client] = OrderedDict()
        self._pruned_at = 0.0

    # -- the connection a public URL names

    async def connection(self, raw_client: str, slug: str) -> asyncpg.Record:
        """The connection at /auth/sso/saml/<clientID>/<slug>; 404 alike for anything unknown, and
        402 FEATURE_NOT_IN_PLAN when the workspace's plan has no SAML."""
        try:
            client_id = uuid.UUID(raw_client)
        except ValueError as exc:
            raise NotFound("SAML connection not found") from exc
        row = await self.pool.fetchrow(q("saml_connection_by_slug"), client_id, slug[:64])
        if row is None:
            raise NotFound("SAML connection not found")
        await self.limits.require_feature(client_id, "saml")
        return row

    def _client(self, row: asyncpg.Record, base: str) -> tuple[Saml2Client, SpUrls]:
        urls = sp_urls(base, row["client_id"], row["slug"])
        key = (row["id"], row["updated_at"], base)
        client = self._clients.get(key)
        if client is None:
            config = Config()
            config.load(sp_config(urls, IdpInfo(row["idp_entity_id"], row["idp_sso_url"], tuple(row["idp_certs"])),
                                  self.cfg.clock_skew_s))
            client = self._clients[key] = Saml2Client(config)
            while len(self._clients) > CLIENT_CACHE:
                self._clients.popitem(last=False)
        return client, urls

    # -- the three SP routes

    async def login_url(self, row: asyncpg.Record, base: str, next_path: str | None) -> str:
        """Where the browser goes: the IdP's SSO URL with our AuthnRequest (HTTP-Redirect). The
        request id is remembered for `request_ttl_s`, with where to land afterwards."""
        client, _ = self._client(row, base)
        relay = relay_path(next_path)
        request_id, info = client.prepare_for_authenticate(entityid=row["idp_entity_id"], relay_state=relay,
                                                           binding=BINDING_HTTP_REDIRECT)
        await self.pool.execute(q("saml_insert_request"), request_id, row["id"], relay, self.cfg.request_ttl_s)
        return str(dict(info["headers"])["Location"])

    def metadata(self, row: asyncpg.Record, base: str) -> bytes:
        client, _ = self._client(row, base)
        out = create_metadata_string(None, client.config, sign=False)
        return out if isinstance(out, bytes) else str(out).encode()

    async def acs(self, row: asyncpg.Record, base: str, saml_response: str | None, ip: str | None,
                  user_agent: str | None) -> Acs:
        await self._prune_when_due()
        try:
            request_id, assertion = await self._verify(row, base, saml_response)
            person = person_of(assertion)
        except SamlRefused as exc:
            log.warning("SAML response refused", extra={"connection": str(row["id"]), "reason": str(exc)})
            raise SamlResponseInvalid(f"SAML response refused: {exc}") from exc
        expires = _not_on_or_after(assertion, datetime.now(UTC)) + timedelta(seconds=self.cfg.clock_skew_s)
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(q("saml_consume_assertion"), row["id"], str(assertion.id), expires) is None:
                raise SamlResponseInvalid("SAML response refused: this assertion was used already (replay)")
            next_path = await conn.fetchval(q("saml_take_request"), request_id, row["id"])
            if next_path is None:
                raise SamlResponseInvalid("SAML response refused: its AuthnRequest was answered already")
        existing = await user_by_email(self.pool, parse_email(person.email))
        domains = await self.pool.fetchval(q("saml_connection_domains"), row["id"])
        may_create = existing is None and email_domain(person.email) in set(domains or ())
        signed_in = await sign_in_by_verified_email(
            self.pool, self.settings, email=person.email, name=person.name, method="saml",
            provider=f"saml:{row['id']}", subject=person.subject, client_id=row["client_id"], ip=ip,
            user_agent=user_agent, join_role=row["default_role"] if may_create else None)
        return Acs(signed_in, relay_path(next_path))

    async def _verify(self, row: asyncpg.Record, base: str, saml_response: str | None) -> tuple[str, Any]:
        """The request id answered and the verified assertion; SamlRefused says why not."""
        xml = decode_saml_response(saml_response, self.cfg.max_response_bytes)
        try:
            parsed = samlp.response_from_string(xml.decode("utf-8"))   # defusedxml underneath
        except Exception as exc:
            raise SamlRefused("SAMLResponse: not a SAML 2.0 Response") from exc
        if parsed is None:
            raise SamlRefused("SAMLResponse: not a SAML 2.0 Response")
        client, urls = self._client(row, base)
        if parsed.destination and parsed.destination != urls.acs:   # said at once (pysaml2 only says "invalid")
            raise SamlRefused(f"the response is addressed to {parsed.destination}, not this ACS URL")
        request_id = parsed.in_response_to or ""
        relay = await self.pool.fetchval(q("saml_peek_request"), request_id, row["id"]) if request_id else None
        outstanding = {request_id: relay} if relay is not None else {}
        encoded = base64.b64encode(xml).decode()

        def check() -> Any:
            try:
                response = client.parse_authn_request_response(encoded, BINDING_HTTP_POST, outstanding=outstanding,
                                                               conv_info={"entity_id": urls.entity_id})
            except Exception as exc:       # pysaml2 raises many kinds; each one means "refused"
                raise SamlRefused(str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__) from exc
            if response is None or response.assertion is None:
                raise SamlRefused("the response could not be verified")
            if response.name_id is not None:      # pysaml2 keeps every signed-in identity in memory: not here
                client.users.remove_person(response.name_id)
            return response

        response = await asyncio.to_thread(check)
        if response.issuer() != row["idp_entity_id"]:
            raise SamlRefused("the response was issued by another IdP")
        check_addressed_to_us(response.response, response.assertion, urls.acs)
        return request_id, response.assertion

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            await self.pool.execute(q("saml_prune_requests"))
            await self.pool.execute(q("saml_prune_assertions"))

    # -- discovery

    async def discover(self, raw_email: str | None, base: str) -> dict[str, Any]:
        """The sign-in method for the address's domain. Only the domain is looked at: the answer is
        the same whether an account exists for the address or not."""
        email = parse_email(raw_email)
        row = await self.pool.fetchrow(q("saml_discover"), email_domain(email))
        if row is None or not await self._has_saml(row["client_id"]):
            return {"sso": False}
        return {"sso": True, "method": "saml", "loginUrl": sp_urls(base, row["client_id"], row["slug"]).login,
                "required": row["require_sso"]}

    async def _has_saml(self, client_id: uuid.UUID) -> bool:
        try:
            await self.limits.require_feature(client_id, "saml")
        except ApiError:
            return False
        return True

