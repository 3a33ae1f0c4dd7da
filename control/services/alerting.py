"""Alert rules: CRUD, evaluation (on demand and in the background), and the history of firings.

A rule is judged in its own short transaction with its row locked (SKIP LOCKED: two evaluators
never judge one rule at once, so a breach fires once): the window's counts come from the
per-minute delivery rollups, the same sums /api/v1/analytics reports. The firing or resolution is
recorded in alert_history in that transaction; its notification is handed on after the commit
and the outcome (the internal event carrying it, or the error) written to the same row, so a
notification that could not be sent is in the history, never lost silently.

The background evaluator runs in every API worker; a Postgres advisory lock lets one of them
evaluate per tick, across all processes and hosts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from control.errors import BadRequest, NotFound
from control.jsonfmt import iso
from control.periodic import Periodic
from control.policy import alert_payloads as ap
from control.policy import alert_rules as ar
from control.policy import delivery_notices as dn
from control.services import audit
from control.services.connectors import Channel, ConnectorService, SendError
from control.services.notifications import DeliveryNotifier
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.services.rollups import Counts, percentile
from control.settings import Settings
from control.store.queries import q
from control.validate import bool_field, need_object, str_field

log = logging.getLogger("mittr.alerting")
RULE_FIELDS = frozenset({"name", "description", "enabled", "condition", "action", "cooldown", "endpointId"})
DEFAULT_MESSAGE = "{{.rule}}: {{.metric}} is {{.value}} ({{.operator}} {{.threshold}} over {{.window}})"
RESOLVED_MESSAGE = "{{.rule}} resolved: {{.metric}} is {{.value}} (threshold {{.operator}} {{.threshold}})"


def _id(value: Any) -> str | None:
    return str(value) if value is not None else None


def rule_json(row: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "description": row["description"],
            "enabled": row["enabled"],
            "condition": {"metric": row["metric"], "operator": row["operator"], "value": row["threshold"],
                          "window": row["time_window"]},
            "action": {**dict(row["action"]), **ap.masked(secrets)}, "cooldown": row["cooldown"],
            "endpointId": _id(row["endpoint_id"]), "projectId": _id(row["project_id"]), "state": row["state"],
            "lastValue": row["last_value"], "lastEvaluatedAt": iso(row["last_evaluated_at"]),
            "lastFiredAt": iso(row["last_fired_at"]), "lastResolvedAt": iso(row["last_resolved_at"]),
            "createdAt": iso(row["created_at"]), "updatedAt": iso(row["updated_at"])}


def history_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "ruleId": _id(row["rule_id"]), "ruleName": row["rule_name"],
            "status": row["status"], "metric": row["metric"], "operator": row["operator"], "value": row["value"],
            "threshold": row["threshold"], "window": row["time_window"],
            "action": {"type": row["channel"], "connector": row["connector"], "eventId": _id(row["event_id"]),
                       "deliveryStatus": row.get("delivery_status"), "sentAt": iso(row["sent_at"]),
                       "error": row["error"]},
            "createdAt": iso(row["created_at"])}


@dataclass(frozen=True, slots=True)
class Judged:
    """One firing or resolution, to notify after the commit."""

    rule: Mapping[str, Any]
    history: Mapping[str, Any]
    value: float | None
    at: datetime


def variables(rule: Mapping[str, Any], status: str, value: float | None, at: datetime) -> dict[str, str]:
    """The template variables (README "Alerts" lists them)."""
    out = {"rule": rule["name"], "rule_id": str(rule["id"]), "description": rule["description"],
           "metric": rule["metric"], "operator": rule["operator"], "threshold": ar.number_text(rule["threshold"]),
           "value": ar.number_text(value), "value_pct": ar.percent_text(value),
           "threshold_pct": ar.percent_text(rule["threshold"]), "window": rule["time_window"],
           "cooldown": rule["cooldown"], "status": status, "event_type": f"alert.{status}",
           "endpoint_id": _id(rule["endpoint_id"]) or "", "project_id": _id(rule["project_id"]) or "",
           "fired_at": iso(at) or ""}
    given = dict(rule["action"]).get("message")
    template = given if isinstance(given, str) and status == "firing" else \
        (DEFAULT_MESSAGE if status == "firing" else RESOLVED_MESSAGE)
    out["message"] = ar.render(template, out)
    return out


def notice_of(j: Judged) -> ap.Notice:
    status = j.history["status"]
    v = variables(j.rule, status, j.value, j.at)
    facts = {"Metric": v["metric"], "Value": v["value"] or "no data",
             "Threshold": f"{v['operator']} {v['threshold']}", "Window": v["window"]}
    if v["endpoint_id"]:
        facts["Endpoint"] = v["endpoint_id"]
    return ap.Notice(f"alert.{status}", status, f"mittr-rule-{j.rule['id']}", j.at, v, facts)


class AlertingService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.connectors = ConnectorService(pool, partitions, settings)
        self.notifier = DeliveryNotifier(pool, self.connectors, settings)
        cfg = settings.section("alerting") if settings and "alerting" in settings.raw else {}
        self.enabled = bool(cfg.get("enabled", True))
        self.interval_s = max(0.05, float(cfg.get("interval_s", 15.0)))
        self._job = Periodic("alert evaluation", self.tick, self.interval_s if self.enabled else 0.0)

    # --- rules --------------------------------------------------------------------------------

    async def _action(self, conn: asyncpg.Connection, who: Principal, body: Any,
                      current: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(what reads show, what is sealed) of a rule's action."""
        data = dict(need_object(body, "action"))
        if data.get("connector") is not None:
            name = str_field(data.pop("connector"), "action.connector", 128, allow_empty=False)
            try:
                channel = await self.connectors.channel(conn, who, name)
            except NotFound as exc:
                raise BadRequest(f"action.connector: no connector named {name!r}") from exc
            kind = data.pop("type", channel.type)
            if kind != channel.type:
                raise BadRequest(f"action.type: the connector {name!r} is of type {channel.type}")
            secret = sorted(set(data) & ap.SECRET_FIELDS)
            if secret:
                raise BadRequest(f"action.{secret[0]}: set on the connector, not on the rule")
            overrides = ap.parse_settings(kind, data, "action")
            ap.require(kind, {**channel.settings, **overrides}, "action", ap.REQUIRED)
            return {"type": kind, "connector": name, **overrides}, {}
        if "type" not in data:
            raise BadRequest("action.type: required (or name a connector)")
        kind = ap.channel_type(data.pop("type"), "action.type")
        if current is not None and current["type"] == kind and not current.get("connector"):
            for key in ap.SECRET_FIELDS:   # a masked secret sent back as read keeps the stored one
                if key in current and data.get(key) == ap.mask(key, current[key]):
                    data[key] = current[key]
        if kind == "email":
            smtp = sorted(k for k in data if k.startswith("smtp") or k == "fromEmail")
            if smtp:
                raise BadRequest(f"action.{smtp[0]}: SMTP settings belong on an email connector")
        settings = ap.parse_settings(kind, data, "action")
        ap.require(kind, settings, "action", ap.REQUIRED)
        self.connectors.check_reachable(settings, "action")
        public, secrets = ap.split_secrets(settings)
        return {"type": kind, **public}, secrets

    async def _values(self, conn: asyncpg.Connection, who: Principal, body: Any,
                      current: asyncpg.Record | None) -> dict[str, Any]:
        data = need_object(body)
        unknown = sorted(set(data) - RULE_FIELDS)
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        if current is None:
            for required in ("name", "condition", "action"):
                if data.get(required) is None:
                    raise BadRequest(f"{required}: required")
        v: dict[str, Any] = {}
        old_secrets = self.connectors.unseal(current["action_secrets"]) if current is not None else {}
        v["name"] = str_field(data["name"], "name", 256, allow_empty=False).strip() if "name" in data \
            else current["name"] if current is not None else ""
        v["description"] = str_field(data["description"] or "", "description", 2000) if "description" in data \
            else (current["description"] if current is not None else "")
        v["enabled"] = bool_field(data["enabled"], "enabled") if data.get("enabled") is not None \
            else (current["enabled"] if current is not None else True)
        if data.get("condition") is not None:
            cond = ar.parse_condition(data["condition"])
            v.update(metric=cond.metric, operator=cond.operator, threshold=cond.threshold, window=cond.window,
                     window_s=cond.window_s)
        else:
            assert current is not None
            v.update(metric=current["metric"], operator=current["operator"], threshold=current["threshold"],
                     window=current["time_window"], window_s=current["window_s"])
        if data.get("action") is not None:
            old = {**dict(current["action"]), **old_secrets} if current is not None else None
            v["action"], secrets = await self._action(conn, who, data["action"], old)
            v["secrets"] = self.connectors.seal(secrets)
        else:
            assert current is not None
            v["action"], v["secrets"] = dict(current["action"]), current["action_secrets"]
        cooldown = data.get("cooldown")
        if cooldown is None:
            cooldown = current["cooldown"] if current is not None else ar.DEFAULT_COOLDOWN
        v["cooldown"], v["cooldown_s"] = str(cooldown).strip(), ar.parse_cooldown(cooldown)
        v["endpoint_id"] = current["endpoint_id"] if current is not None else None
        if "endpointId" in data:
            v["endpoint_id"] = await self._endpoint(conn, who, data["endpointId"])
        return v

    async def _endpoint(self, conn: asyncpg.Connection, who: Principal, raw: Any) -> uuid.UUID | None:
        if raw is None:
            return None
        try:
            endpoint_id = uuid.UUID(str_field(raw, "endpointId", 64))
        except ValueError as exc:
            raise BadRequest("endpointId: not an endpoint id") from exc
        if await conn.fetchval(q("endpoint_of_client"), endpoint_id, who.client_id) is None:
            raise BadRequest("endpointId: no such endpoint")
        return endpoint_id

    def _shown(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return rule_json(row, self.connectors.unseal(row["action_secrets"]))

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        rule_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            v = await self._values(conn, who, body, None)
            row = await conn.fetchrow(
                q("insert_alert_rule"), rule_id, who.client_id, who.project_id, v["endpoint_id"], v["name"],
                v["description"], v["enabled"], v["metric"], v["operator"], v["threshold"], v["window"],
                v["window_s"], v["action"], v["secrets"], v["cooldown"], v["cooldown_s"])
            shown = self._shown(row)
            await audit.record(conn, who, "create", "alert_rule", rule_id, after=shown)
        return shown

    async def get(self, who: Principal, rule_id: str) -> dict[str, Any]:
        return self._shown(await owned_row(self.pool, "get_alert_rule", rule_id, who, "alert rule"))

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_alert_rules", who, limit, cursor, self._shown)

    async def update(self, who: Principal, rule_id: str, body: Any) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await owned_row(conn, "lock_alert_rule", rule_id, who, "alert rule")
            v = await self._values(conn, who, body, current)
            row = await conn.fetchrow(
                q("update_alert_rule"), current["id"], who.client_id, v["endpoint_id"], v["name"], v["description"],
                v["enabled"], v["metric"], v["operator"], v["threshold"], v["window"], v["window_s"], v["action"],
                v["secrets"], v["cooldown"], v["cooldown_s"])
            shown = self._shown(row)
            await audit.record(conn, who.with_project(current["project_id"]), "update", "alert_rule", current["id"],
                               self._shown(current), shown)
        return shown

    async def set_enabled(self, who: Principal, rule_id: str, enabled: bool) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await owned_row(conn, "lock_alert_rule", rule_id, who, "alert rule")
            row = await conn.fetchrow(q("set_alert_rule_enabled"), current["id"], who.client_id, enabled)
            shown = self._shown(row)
            await audit.record(conn, who.with_project(current["project_id"]), "enable" if enabled else "disable",
                               "alert_rule", current["id"], self._shown(current), shown)
        return shown

    async def delete(self, who: Principal, rule_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await owned_row(conn, "lock_alert_rule", rule_id, who, "alert rule")
            await conn.execute(q("delete_alert_rule"), current["id"], who.client_id)
            await audit.record(conn, who.with_project(current["project_id"]), "delete", "alert_rule", current["id"],
                               self._shown(current))

    async def history(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_alert_history", who, limit, cursor, history_json)

    # --- evaluation ---------------------------------------------------------------------------

    async def evaluate(self, who: Principal | None = None) -> dict[str, Any]:
        """Judge every enabled rule (of `who`'s workspace and project, or of all) now; what fired and
        what resolved, with the outcome of each notification."""
        client = who.client_id if who is not None else None
        project = who.project_id if who is not None else None
        due = await self.pool.fetch(q("alert_rules_due"), client, project)
        fired: list[dict[str, Any]] = []
        resolved: list[dict[str, Any]] = []
        for r in due:
            judged = await self._judge(r["id"])
            if judged is None:
                continue
            outcome = await self._notify(judged)
            (fired if judged.history["status"] == "firing" else resolved).append(outcome)
        # Delivery notifications (breakers, dead events): the background tick already holds the
        # evaluator's lock; an on-demand evaluate takes it for its own workspace.
        notified = await self.notifier.round(None) if who is None else [
            n for n in await self.notifier.locked_round(who.client_id)
            if project is None or n["projectId"] == str(project)]
        return {"evaluated": len(due), "fired": fired, "resolved": resolved, "notified": notified}

    async def _observe(self, conn: asyncpg.Connection, rule: Mapping[str, Any], now: datetime) -> float | None:
        if rule["metric"] == "queue_depth":
            depth = await conn.fetchval(q("alert_queue_depth"), rule["client_id"], rule["project_id"],
                                        rule["endpoint_id"])
            return ar.metric_value("queue_depth", ar.Observed(queue_depth=int(depth or 0)))
        start = (now - timedelta(seconds=rule["window_s"])).replace(second=0, microsecond=0)
        row = await conn.fetchrow(q("alert_window_totals"), rule["client_id"], rule["project_id"],
                                  rule["endpoint_id"], start, now)
        c = Counts()
        c.add_row({**dict(row), "latency_hist": list(row["latency_hist"] or [])})
        observed = ar.Observed(attempts=c.attempts, successes=c.successes, failed=c.failed,
                               p95_ms=percentile(c.hist, c.duration_max_ms, 95))
        return ar.metric_value(rule["metric"], observed)

    async def _judge(self, rule_id: uuid.UUID) -> Judged | None:
        async with self.pool.acquire() as conn, conn.transaction():
            rule = await conn.fetchrow(q("alert_rule_for_evaluation"), rule_id)
            if rule is None:          # disabled, deleted, or being judged elsewhere right now
                return None
            now = datetime.now(UTC)
            value = await self._observe(conn, rule, now)
            held = ar.holds(rule["operator"], value, rule["threshold"])
            firing = rule["state"] == "firing"
            since = (now - rule["last_fired_at"]).total_seconds() if rule["last_fired_at"] else None
            d = ar.decide(held, firing, since, rule["cooldown_s"])
            state = "firing" if d.fire or (held and firing) else "ok"
            await conn.execute(q("alert_rule_judged"), rule["id"], state, value, d.fire, d.resolve)
            if not (d.fire or d.resolve):
                return None
            action = dict(rule["action"])
            history = await conn.fetchrow(
                q("insert_alert_history"), uuid.uuid4(), rule["client_id"], rule["project_id"], rule["id"],
                rule["name"], "firing" if d.fire else "resolved", rule["metric"], rule["operator"], value,
                rule["threshold"], rule["time_window"], action.get("type", ""), action.get("connector"))
            return Judged(rule, history, value, now)

    async def _channel(self, who: Principal, rule: Mapping[str, Any]) -> Channel:
        action = dict(rule["action"])
        overrides = {k: v for k, v in action.items() if k not in ("type", "connector", "message")}
        if action.get("connector"):
            base = await self.connectors.channel(self.pool, who, action["connector"])
            return Channel(base.type, {**base.settings, **overrides}, base.template, base.connector)
        return Channel(action["type"], {**overrides, **self.connectors.unseal(rule["action_secrets"])}, {})

    async def _notify(self, j: Judged) -> dict[str, Any]:
        rule, history = j.rule, j.history
        who = Principal(rule["client_id"], None, frozenset(), None, project_id=rule["project_id"], label="alerting")
        event_id: uuid.UUID | None = None
        error: str | None = None
        try:
            channel = await self._channel(who, rule)
            event_id = await self.connectors.send(who, channel, notice_of(j), f"{dn.ALERT_KEY_PREFIX}{history['id']}")
        except (SendError, NotFound) as exc:
            error = str(exc) if isinstance(exc, SendError) else exc.message
        except Exception as exc:    # never lose an alert silently: the history says what went wrong
            log.exception("alert notification failed", extra={"rule": str(rule["id"])})
            error = f"{type(exc).__name__}: {exc}"
        await self.pool.execute(q("alert_history_sent"), history["id"], event_id, error)
        return {"ruleId": str(rule["id"]), "ruleName": rule["name"], "historyId": str(history["id"]),
                "status": history["status"], "metric": rule["metric"], "value": j.value,
                "threshold": rule["threshold"], "window": rule["time_window"],
                "eventId": _id(event_id), "error": error}

    # --- the background evaluator -------------------------------------------------------------

    def start(self) -> None:
        """Start this worker's evaluator loop (called once when the API worker starts)."""
        self._job.start()

    async def tick(self) -> bool:
        """One evaluation of every workspace's rules if no other evaluator is running; whether it ran."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(q("alerting_try_lock")):
                return False
            try:
                await self.evaluate(None)
            finally:
                await conn.fetchval(q("alerting_unlock"))
        return True

    async def aclose(self) -> None:
        await self._job.aclose()
