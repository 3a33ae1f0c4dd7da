"""Delivery notifications, pure: the kinds a connector may opt into, what each says (template
variables, facts, dedup key), and which internal events must never cause one.

A notification is found by a scan of what changed since a watermark (README "Alerts"); this module
only turns one changed row into an `ap.Notice` and names the keys that keep the notifier from
notifying about its own deliveries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from control.errors import BadRequest
from control.jsonfmt import iso
from control.policy import alert_payloads as ap
from control.validate import str_list

ALERTS = "alerts"
BREAKER_OPENED = "endpoint.breaker_opened"
BREAKER_CLOSED = "endpoint.breaker_closed"
EVENT_DEAD = "event.dead"
# The delivery notifications found by the scan, in the order a round takes them.
DELIVERY_KINDS: tuple[str, ...] = (BREAKER_OPENED, BREAKER_CLOSED, EVENT_DEAD)
NOTIFY_KINDS: tuple[str, ...] = (ALERTS, *DELIVERY_KINDS)
# The breaker state a transition row must reach to be each breaker kind.
BREAKER_STATE: dict[str, str] = {BREAKER_OPENED: "open", BREAKER_CLOSED: "closed"}
# Idempotency keys of the internal events alerting and the notifier create. A dead event whose key
# starts with one of these is never notified: a connector whose URL is down would otherwise be told,
# through itself, that its own notification died, and so on.
ALERT_KEY_PREFIX = "mittr-alert-"
NOTIFY_KEY_PREFIX = "mittr-notify-"
INTERNAL_KEY_PREFIXES: tuple[str, ...] = (ALERT_KEY_PREFIX, NOTIFY_KEY_PREFIX)
ERROR_TEXT_MAX = 500


def parse_notify(value: Any, name: str = "notify") -> list[str]:
    """A connector's `notify`: a list of known kinds (400 naming the item otherwise), deduplicated."""
    items = str_list(value, name, max_items=len(NOTIFY_KINDS) * 2)
    for i, item in enumerate(items):
        if item not in NOTIFY_KINDS:
            raise BadRequest(f"{name}[{i}]: must be one of {', '.join(NOTIFY_KINDS)}")
    return sorted(set(items))


def delivery_kinds(notify: list[str] | tuple[str, ...]) -> list[str]:
    return [k for k in notify if k in DELIVERY_KINDS]


def like_patterns(prefixes: tuple[str, ...] = INTERNAL_KEY_PREFIXES) -> list[str]:
    """The prefixes as SQL LIKE patterns (`_` and `%` escaped)."""
    return [p.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%" for p in prefixes]


def is_internal_key(key: str) -> bool:
    return key.startswith(INTERNAL_KEY_PREFIXES)


def idempotency_key(item_id: object, connector_id: object) -> str:
    """One internal event per changed row and connector, so a repeated round cannot send twice."""
    return f"{NOTIFY_KEY_PREFIX}{item_id}-{connector_id}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _finish(kind: str, status: str, dedup: str, at: datetime, v: dict[str, str],
            facts: dict[str, str]) -> ap.Notice:
    v.update(event_type=kind, status=status, rule=v["title"], fired_at=iso(at) or "")
    return ap.Notice(kind, status, dedup, at, v, {k: x for k, x in facts.items() if x})


def breaker_notice(kind: str, row: Mapping[str, Any]) -> ap.Notice:
    """An endpoint's breaker opened (firing) or closed again (resolved; PagerDuty resolves the same
    dedup key the opening triggered)."""
    opened = kind == BREAKER_OPENED
    url = _text(row.get("url"))
    at: datetime = row["at"]
    v = {"endpoint_id": _text(row.get("endpoint_id")), "endpoint_url": url,
         "endpoint_description": _text(row.get("description")), "project_id": _text(row.get("project_id")),
         "state": _text(row.get("state")), "opened_at": iso(row.get("opened_at")) or "",
         "circuit_threshold": _text(row.get("circuit_threshold")),
         "circuit_reset_ms": _text(row.get("circuit_reset_ms")), "at": iso(at) or ""}
    v["title"] = f"Circuit breaker {'opened' if opened else 'closed'}: {url}"
    v["message"] = (f"The circuit breaker of endpoint {url} opened after {v['circuit_threshold']} consecutive "
                    f"failures; deliveries to it pause and are retried after {v['circuit_reset_ms']} ms.") \
        if opened else f"The circuit breaker of endpoint {url} closed: deliveries to it resumed."
    facts = {"Endpoint": url, "Endpoint ID": v["endpoint_id"], "State": v["state"],
             "Opened at": v["opened_at"] if opened else ""}
    return _finish(kind, "firing" if opened else "resolved", f"mittr-breaker-{v['endpoint_id']}", at, v, facts)


def dead_error(row: Mapping[str, Any]) -> str:
    """Why the delivery died: the task's last error, else the last attempt's, else its status code."""
    for key in ("last_error", "attempt_error"):
        text = _text(row.get(key)).strip()
        if text:
            return text[:ERROR_TEXT_MAX]
    code = row.get("status_code")
    return f"HTTP {code}" if code is not None else ""


def dead_notice(row: Mapping[str, Any]) -> ap.Notice:
    """A delivery ended dead: every attempt it was allowed failed (or it could not be made)."""
    at: datetime = row["at"]
    destination = _text(row.get("endpoint_url") or row.get("destination"))
    v = {"event_id": _text(row.get("event_id")), "task_id": _text(row.get("id")),
         "delivery_event_type": _text(row.get("event_type")), "endpoint_id": _text(row.get("endpoint_id")),
         "destination": destination, "project_id": _text(row.get("project_id")),
         "attempts": _text(row.get("attempts")), "max_attempts": _text(row.get("max_attempts")),
         "status_code": _text(row.get("status_code")), "error": dead_error(row), "at": iso(at) or ""}
    v["title"] = f"Event dead: {v['delivery_event_type'] or v['event_id']} to {destination}"
    v["message"] = (f"Event {v['event_id']} ({v['delivery_event_type'] or 'no type'}) could not be delivered to "
                    f"{destination} after {v['attempts']} attempt(s): {v['error'] or 'no error recorded'}")
    facts = {"Event": v["event_id"], "Event type": v["delivery_event_type"], "Destination": destination,
             "Attempts": v["attempts"], "Status code": v["status_code"], "Error": v["error"]}
    return _finish(EVENT_DEAD, "firing", f"mittr-dead-{v['task_id']}", at, v, facts)


def notice_for(kind: str, row: Mapping[str, Any]) -> ap.Notice:
    if kind == EVENT_DEAD:
        return dead_notice(row)
    if kind in BREAKER_STATE:
        return breaker_notice(kind, row)
    raise ValueError(f"not a delivery notification kind: {kind!r}")


def wants(connector_project: Any, item_project: Any) -> bool:
    """A project-bound connector hears only about its project; a workspace-wide one about all."""
    return connector_project is None or connector_project == item_project
