"""Connectors: named channels (Slack, Discord, Teams, e-mail, webhook, PagerDuty) and how a notice
reaches one.

HTTP channels are sent as internal events through Mittr's own engine (a direct event whose
destination is the channel's URL): the same SSRF policy, timeouts, retries, signing and recorded
attempts as any delivery. E-mail goes straight to the channel's SMTP server (STARTTLS by default),
after the same address policy has judged every address the host resolves to.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
import asyncpg
import orjson

from control.crypto import box_for
from control.errors import ApiError, BadRequest, Conflict, InvalidState, NotFound
from control.jsonfmt import iso
from control.policy import alert_payloads as ap
from control.policy import delivery_notices as dn
from control.policy.ssrf import AddressPolicy
from control.services import audit
from control.services.mail import Mailer, MailError
from control.services.owned import owned_page
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, reachable_url, str_field

CONNECTOR_FIELDS = frozenset({"name", "type", "config", "template", "notify"})
# What a connector may opt into with `notify` (README "Alerts"; sent by services/notifications.py).
NOTIFY_KINDS: tuple[str, ...] = dn.NOTIFY_KINDS
SMTP_TIMEOUT_S = 15.0
SMTP_TRIES = 2
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class SendError(RuntimeError):
    """A notice could not be handed on (refused address, quota, SMTP failure...)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """Where one notice goes: a type, its full settings (secrets opened), a template."""

    type: str
    settings: Mapping[str, Any]
    template: Mapping[str, Any]
    connector: str | None = None


def connector_json(row: asyncpg.Record | Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "type": row["type"],
            "config": {**dict(row["config"]), **ap.masked(secrets)}, "template": dict(row["template"]),
            "notify": list(row["notify"]), "projectId": str(row["project_id"]) if row["project_id"] else None,
            "createdAt": iso(row["created_at"]), "updatedAt": iso(row["updated_at"])}


def _notify(value: Any, kind: str, settings: Mapping[str, Any]) -> list[str]:
    kinds = dn.parse_notify(value)
    if kind == "email" and dn.delivery_kinds(kinds) and not settings.get("to"):
        raise BadRequest("config.to: required for delivery notifications (no rule names the recipients)")
    return kinds


async def _opted_in(conn: asyncpg.Connection, client_id: uuid.UUID, connector_id: uuid.UUID,
                    before: list[str], after: list[str]) -> None:
    """Kinds this connector newly takes start now, unless another connector already takes them."""
    new = [k for k in dn.delivery_kinds(after) if k not in before]
    if new:
        await conn.execute(q("notify_mark_opt_in"), client_id, connector_id, new)


class ConnectorService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.partitions = partitions
        self.settings = settings
        self.box = box_for(settings.security["encryption_key"] if settings else "")
        self.policy = AddressPolicy.from_engine(settings.engine if settings else None)

    # --- storage ------------------------------------------------------------------------------

    def seal(self, secrets: Mapping[str, Any]) -> str | None:
        return self.box.seal(orjson.dumps(dict(secrets)).decode()) if secrets else None

    def unseal(self, stored: str | None) -> dict[str, Any]:
        if not stored:
            return {}
        found = orjson.loads(self.box.open(stored))
        return found if isinstance(found, dict) else {}

    def check_reachable(self, settings: Mapping[str, Any], name: str) -> None:
        """Refuse now URLs the engine would never deliver to (literal private addresses)."""
        for key in ("webhookUrl", "avatarUrl"):
            if settings.get(key):
                reachable_url(settings[key], f"{name}.{key}", self.policy)
        if settings.get("smtpHost"):
            reason = self.policy.host_refusal(settings["smtpHost"])
            if reason is not None:
                raise BadRequest(f"{name}.smtpHost: {reason}")

    def _settings(self, kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
        settings = ap.parse_settings(kind, config, "config")
        ap.require(kind, settings, "config", ap.CONNECTOR_REQUIRED)
        self.check_reachable(settings, "config")
        return settings

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        data = need_object(body)
        unknown = sorted(set(data) - CONNECTOR_FIELDS)
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        name = str_field(data.get("name"), "name", max_len=128, allow_empty=False).strip()
        kind = ap.channel_type(data.get("type"), "type")
        settings = self._settings(kind, need_object(data.get("config", {}), "config"))
        template = ap.parse_template(data.get("template") or {})
        notify = _notify(data.get("notify") or [], kind, settings)
        public, secrets = ap.split_secrets(settings)
        connector_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("insert_connector"), connector_id, who.client_id, who.project_id, name,
                                      kind, public, self.seal(secrets), template, notify)
            if row is None:
                raise Conflict(f"a connector named {name!r} exists")
            await _opted_in(conn, who.client_id, connector_id, [], notify)
            shown = connector_json(row, secrets)
            await audit.record(conn, who, "create", "connector", connector_id, after=shown)
        return shown

    async def _row(self, db: asyncpg.Pool | asyncpg.Connection, query: str, who: Principal,
                   name: str) -> asyncpg.Record:
        row = await db.fetchrow(q(query), name, who.client_id, who.project_id)
        if row is None:
            raise NotFound("connector not found")
        return row

    async def get(self, who: Principal, name: str) -> dict[str, Any]:
        row = await self._row(self.pool, "get_connector", who, name)
        return connector_json(row, self.unseal(row["secrets"]))

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_connectors", who, limit, cursor,
                                lambda r: connector_json(r, self.unseal(r["secrets"])))

    async def update(self, who: Principal, name: str, body: Any) -> dict[str, Any]:
        """PUT merges `config` into the stored one (null removes a key; a masked secret sent back keeps
        it); `template` and `notify` replace when given; name and type stay."""
        data = need_object(body)
        unknown = sorted(set(data) - CONNECTOR_FIELDS)
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._row(conn, "lock_connector", who, name)
            for fixed in ("name", "type"):
                if fixed in data and data[fixed] != current[fixed]:
                    raise BadRequest(f"{fixed}: cannot be changed (delete and create the connector)")
            secrets = self.unseal(current["secrets"])
            stored = {**dict(current["config"]), **secrets}
            merged = ap.merge(stored, need_object(data.get("config", {}), "config"))
            settings = self._settings(current["type"], merged)
            template = ap.parse_template(data["template"]) if data.get("template") is not None \
                else dict(current["template"])
            notify = _notify(data["notify"] if data.get("notify") is not None else list(current["notify"]),
                             current["type"], settings)
            public, new_secrets = ap.split_secrets(settings)
            row = await conn.fetchrow(q("update_connector"), current["id"], who.client_id, public,
                                      self.seal(new_secrets), template, notify)
            shown = connector_json(row, new_secrets)
            await _opted_in(conn, who.client_id, current["id"], list(current["notify"]), notify)
            await audit.record(conn, who.with_project(current["project_id"]), "update", "connector",
                               current["id"], connector_json(current, secrets), shown)
        return shown

    async def delete(self, who: Principal, name: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._row(conn, "lock_connector", who, name)
            users = [r["name"] for r in await conn.fetch(q("rules_using_connector"), who.client_id, name)]
            if users:
                raise InvalidState(f"alert rules use this connector: {', '.join(users)}")
            await conn.execute(q("delete_connector"), current["id"], who.client_id)
            await audit.record(conn, who.with_project(current["project_id"]), "delete", "connector", current["id"],
                               connector_json(current, self.unseal(current["secrets"])))

    async def channel(self, db: asyncpg.Pool | asyncpg.Connection, who: Principal, name: str) -> Channel:
        row = await db.fetchrow(q("get_connector"), name, who.client_id, who.project_id)
        if row is None:
            raise NotFound(f"connector {name!r} not found")
        return Channel(row["type"], {**dict(row["config"]), **self.unseal(row["secrets"])},
                       dict(row["template"]), row["name"])

    # --- sending ------------------------------------------------------------------------------

    async def send(self, who: Principal, channel: Channel, notice: ap.Notice, key: str) -> uuid.UUID | None:
        """Hand a notice on: the internal event's id for HTTP channels, None for e-mail (sent now).
        SendError says why it could not be."""
        s = channel.settings
        if channel.type == "email":
            await self._mail(channel, notice)
            return None
        body = ap.BODIES[channel.type](s, channel.template, notice)
        url = s["webhookUrl"] if channel.type != "pagerduty" else self._pagerduty_url()
        event = {"destination": url, "payload": body, "headers": dict(s.get("headers") or {})}
        # Imported here: events imports services that would otherwise import this module's callers.
        from control.services.events import EventService
        try:
            created = await EventService(self.pool, self.partitions, self.settings).create(who, event, key)
        except ApiError as exc:
            raise SendError(exc.message) from exc
        except Exception as exc:   # quota and the like: the alert's history says so
            raise SendError(f"{type(exc).__name__}: {exc}") from exc
        return uuid.UUID(created["id"])

    def _pagerduty_url(self) -> str:
        cfg = self.settings.section("alerting") if self.settings else {}
        return str(cfg.get("pagerduty_events_url") or PAGERDUTY_EVENTS_URL)

    async def _mail(self, channel: Channel, notice: ap.Notice) -> None:
        s = channel.settings
        subject, text = ap.email_parts(s, channel.template, notice)
        to = ", ".join(s["to"])
        if not s.get("smtpHost"):          # an inline e-mail action: Mittr's own [mail] settings
            if self.settings is None:
                raise SendError("no mail settings")
            try:
                await Mailer(self.settings).send(to, subject, text)
            except MailError as exc:
                raise SendError(str(exc)) from exc
            return
        await self._check_smtp_host(s["smtpHost"], int(s.get("smtpPort") or 587))
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = s["fromEmail"], to, subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="mittr.local")
        msg.set_content(text)
        security = s.get("smtpSecurity") or "starttls"
        last: Exception | None = None
        for attempt in range(SMTP_TRIES):
            try:
                await aiosmtplib.send(msg, hostname=s["smtpHost"], port=int(s.get("smtpPort") or 587),
                                      username=s.get("smtpUsername") or None, password=s.get("smtpPassword") or None,
                                      use_tls=security == "tls", start_tls=security == "starttls",
                                      timeout=SMTP_TIMEOUT_S)
                return
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                last = exc
                if attempt + 1 < SMTP_TRIES:
                    await asyncio.sleep(1.0)
        raise SendError(f"could not send mail via {s['smtpHost']}: {type(last).__name__}: {last}")

    async def _check_smtp_host(self, host: str, port: int) -> None:
        """Every address the host resolves to must pass the delivery address policy."""
        reason = self.policy.host_refusal(host)
        if reason is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise SendError(f"smtpHost: cannot resolve {host!r}") from exc
            reason = next((r for r in (self.policy.refusal(str(i[4][0])) for i in infos) if r), None)
        if reason is not None:
            raise SendError(f"smtpHost: {reason}")
