"""Delivery notifications: tell the connectors that opted in when an endpoint's breaker opened or
closed, or a delivery ended dead.

Run by the alert evaluator's round, one at a time under its advisory lock. Per workspace and kind a
watermark (notification_marks) says how far the notifier has read; each round reads at most
`notify_batch` rows changed after it, oldest first, hands each to every connector that wants it
(HTTP channels as internal events with the idempotency key `mittr-notify-<row>-<connector>`, e-mail
by SMTP) and moves the watermark past the row. Rows are read only once they are `notify_settle_s`
old, so a transaction stamped earlier but committed later is not skipped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from control.policy import delivery_notices as dn
from control.services.connectors import Channel, ConnectorService, SendError
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q

log = logging.getLogger("mittr.notifications")
NIL = uuid.UUID(int=0)
DEFAULT_BATCH = 100
DEFAULT_SETTLE_S = 2.0


class DeliveryNotifier:
    def __init__(self, pool: asyncpg.Pool, connectors: ConnectorService, settings: Settings | None = None) -> None:
        self.pool = pool
        self.connectors = connectors
        cfg = settings.section("alerting") if settings and "alerting" in settings.raw else {}
        self.batch = max(1, int(cfg.get("notify_batch", DEFAULT_BATCH)))
        self.settle_s = max(0.0, float(cfg.get("notify_settle_s", DEFAULT_SETTLE_S)))
        self.patterns = dn.like_patterns()

    async def locked_round(self, client_id: uuid.UUID | None) -> list[dict[str, Any]]:
        """A round under the evaluator's advisory lock; nothing when another evaluator holds it (its
        round sends what this one would have)."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(q("alerting_try_lock")):
                return []
            try:
                return await self.round(client_id)
            finally:
                await conn.fetchval(q("alerting_unlock"))

    async def round(self, client_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """One pass over every (workspace, kind) some connector opted into; the caller holds the
        evaluator's lock. What was sent, or why not."""
        due = await self.pool.fetch(q("notify_due"), list(dn.DELIVERY_KINDS), client_id)
        sent: list[dict[str, Any]] = []
        if not due:
            return sent
        horizon: datetime = await self.pool.fetchval(q("notify_horizon"), self.settle_s)
        for pair in due:
            if pair["mark_at"] is None:     # opted in before this existed, or raced: start now
                await self.pool.execute(q("notify_mark_set"), pair["client_id"], pair["kind"], horizon, NIL)
                continue
            try:
                sent += await self._pair(pair, horizon)
            except Exception:
                log.exception("delivery notifications failed", extra={"kind": pair["kind"]})
        if client_id is None:
            await self.pool.execute(q("notify_prune_transitions"))
        return sent

    async def _rows(self, pair: Mapping[str, Any], horizon: datetime) -> list[asyncpg.Record]:
        kind = pair["kind"]
        extra: object = self.patterns if kind == dn.EVENT_DEAD else dn.BREAKER_STATE[kind]
        query = "notify_dead_tasks" if kind == dn.EVENT_DEAD else "notify_breaker_transitions"
        return list(await self.pool.fetch(q(query), pair["client_id"], pair["mark_at"], pair["mark_id"], horizon,
                                          self.batch, extra))

    async def _pair(self, pair: Mapping[str, Any], horizon: datetime) -> list[dict[str, Any]]:
        client, kind = pair["client_id"], pair["kind"]
        rows = await self._rows(pair, horizon)
        sent: list[dict[str, Any]] = []
        if rows:
            recipients = await self.pool.fetch(q("notify_connectors"), client, kind)
            for row in rows:
                notice = dn.notice_for(kind, row)
                for c in recipients:
                    if dn.wants(c["project_id"], row["project_id"]):
                        sent.append(await self._send(c, kind, row["id"], notice))
                await self.pool.execute(q("notify_mark_set"), client, kind, row["at"], row["id"])
        if len(rows) < self.batch:
            # Everything before the horizon was read (left-out rows too): do not read it again.
            await self.pool.execute(q("notify_mark_set"), client, kind, horizon, NIL)
        return sent

    async def _send(self, c: Mapping[str, Any], kind: str, item_id: uuid.UUID, notice: Any) -> dict[str, Any]:
        who = Principal(c["client_id"], None, frozenset(), None, project_id=c["project_id"], label="notifications")
        channel = Channel(c["type"], {**dict(c["config"]), **self.connectors.unseal(c["secrets"])},
                          dict(c["template"]), c["name"])
        event_id: uuid.UUID | None = None
        error: str | None = None
        try:
            event_id = await self.connectors.send(who, channel, notice, dn.idempotency_key(item_id, c["id"]))
        except SendError as exc:
            error = str(exc)
        except Exception as exc:   # one connector's failure never stops the others
            log.exception("delivery notification failed", extra={"connector": c["name"], "kind": kind})
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            log.warning("delivery notification not sent", extra={"connector": c["name"], "kind": kind})
        return {"kind": kind, "connector": c["name"], "projectId": str(c["project_id"]) if c["project_id"] else None,
                "id": str(item_id), "eventId": str(event_id) if event_id else None, "error": error}
