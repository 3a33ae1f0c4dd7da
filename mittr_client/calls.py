"""Every API operation the clients offer, described once as data (`Call`): path, query, body,
how to read the answer and whether it is safe to send again. The sync and async clients only run
these, so the two can never disagree."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from mittr_client.models import ApiKey, DeliveryAttempt, Endpoint, Event, EventType, Model, PolledEvent, Project

T = TypeVar("T")
M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    cursor: str | None


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Sending it twice does no harm (reads; creates under an idempotency key), so a lost answer
    # may be retried. Anything else is retried only when the server refused it (429/503) or the
    # connection was never made.
    idempotent: bool = False
    # An event create whose retry hits 409 DUPLICATE: the earlier try was stored; read that event.
    recover_event: bool = False

    @property
    def query(self) -> dict[str, str]:
        return {k: _text(v) for k, v in self.params.items() if v is not None}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _id(value: str) -> str:
    return quote(str(value), safe="")


def _one(model: type[M]) -> Callable[[Any], M]:
    return model.from_json


def _page(model: type[M], key: str = "data") -> Callable[[Any], Page[M]]:
    def parse(data: Any) -> Page[M]:
        pagination = data.get("pagination") or {}
        return Page([model.from_json(x) for x in data.get(key) or []], bool(pagination.get("hasMore")),
                    pagination.get("cursor"))
    return parse


def _raw(data: Any) -> Any:
    return data


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def new_idempotency_key() -> str:
    """A fresh key per logical create: every retry of that one call reuses it."""
    return f"mittr-client-{uuid.uuid4()}"


# --- events -------------------------------------------------------------------------------------

def create_event(payload: Any, *, event_type: str | None = None, destination: str | None = None,
                 headers: dict[str, str] | None = None, max_attempts: int | None = None,
                 priority: int | None = None, delay_seconds: int | None = None,
                 idempotency_key: str | None = None) -> Call[Event]:
    body = _drop_none({"eventType": event_type, "destination": destination, "payload": payload,
                       "headers": headers, "maxAttempts": max_attempts, "priority": priority,
                       "delaySeconds": delay_seconds})
    return Call("POST", "/api/v1/events", _one(Event), body=body,
                headers={"X-Idempotency-Key": idempotency_key or new_idempotency_key()},
                idempotent=True, recover_event=True)


def create_events_batch(events: list[dict[str, Any]]) -> Call[Any]:
    """Direct events, each `{"destination", "payload", ...}`; a missing idempotencyKey is filled in."""
    body = {"events": [{"idempotencyKey": new_idempotency_key(), **e} for e in events]}
    return Call("POST", "/api/v1/events/batch", _raw, body=body, idempotent=True)


def get_event(event_id: str) -> Call[Event]:
    return Call("GET", f"/api/v1/events/{_id(event_id)}", _one(Event), idempotent=True)


def list_events(*, status: str | None = None, limit: int | None = None,
                cursor: str | None = None) -> Call[Page[Event]]:
    return Call("GET", "/api/v1/events", _page(Event), params={"status": status, "limit": limit, "cursor": cursor},
                idempotent=True)


def replay_event(event_id: str) -> Call[Any]:
    return Call("POST", f"/api/v1/events/{_id(event_id)}/replay", _raw)


def edit_event(event_id: str, *, destination: str | None = None, payload: Any = None,
               headers: dict[str, str] | None = None, replay: bool | None = None) -> Call[Any]:
    body = _drop_none({"destination": destination, "payload": payload, "headers": headers, "replay": replay})
    return Call("PATCH", f"/api/v1/events/{_id(event_id)}", _raw, body=body)


def retry_events(*, event_ids: list[str] | None = None, status: str | None = None,
                 endpoint_id: str | None = None, limit: int | None = None) -> Call[Any]:
    body = _drop_none({"eventIds": event_ids, "status": status, "endpointId": endpoint_id, "limit": limit})
    return Call("POST", "/api/v1/events/batch/retry", _raw, body=body)


def event_deliveries(event_id: str) -> Call[list[DeliveryAttempt]]:
    def parse(data: Any) -> list[DeliveryAttempt]:
        return [DeliveryAttempt.from_json(d) for d in data.get("deliveries") or []]
    return Call("GET", f"/api/v1/events/{_id(event_id)}/deliveries", parse, idempotent=True)


# --- deliveries ---------------------------------------------------------------------------------

def list_deliveries(*, range: str | None = None, start: str | None = None, end: str | None = None,
                    outcome: str | None = None, endpoint_id: str | None = None, event_type: str | None = None,
                    limit: int | None = None, cursor: str | None = None) -> Call[Page[DeliveryAttempt]]:
    params = {"range": range, "start": start, "end": end, "outcome": outcome, "endpoint_id": endpoint_id,
              "event_type": event_type, "limit": limit, "cursor": cursor}
    return Call("GET", "/api/v1/deliveries", _page(DeliveryAttempt), params=params, idempotent=True)


def get_delivery(delivery_id: str) -> Call[DeliveryAttempt]:
    return Call("GET", f"/api/v1/deliveries/{_id(delivery_id)}", _one(DeliveryAttempt), idempotent=True)


# --- endpoints ----------------------------------------------------------------------------------

def create_endpoint(url: str | None = None, *, event_types: list[str] | None = None,
                    delivery_mode: str | None = None, description: str | None = None,
                    **fields: Any) -> Call[Endpoint]:
    """Further fields (maxRetries, timeoutMs, customHeaders, filter...) go as the API spells them."""
    body = _drop_none({"url": url, "eventTypes": event_types, "deliveryMode": delivery_mode,
                       "description": description, **fields})
    return Call("POST", "/api/v1/endpoints", _one(Endpoint), body=body)


def get_endpoint(endpoint_id: str) -> Call[Endpoint]:
    return Call("GET", f"/api/v1/endpoints/{_id(endpoint_id)}", _one(Endpoint), idempotent=True)


def list_endpoints(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[Endpoint]]:
    return Call("GET", "/api/v1/endpoints", _page(Endpoint), params={"limit": limit, "cursor": cursor},
                idempotent=True)


def update_endpoint(endpoint_id: str, **fields: Any) -> Call[Endpoint]:
    return Call("PATCH", f"/api/v1/endpoints/{_id(endpoint_id)}", _one(Endpoint), body=fields)


def delete_endpoint(endpoint_id: str) -> Call[Any]:
    return Call("DELETE", f"/api/v1/endpoints/{_id(endpoint_id)}", _raw, idempotent=True)


def pause_endpoint(endpoint_id: str) -> Call[Endpoint]:
    return Call("POST", f"/api/v1/endpoints/{_id(endpoint_id)}/pause", _one(Endpoint), idempotent=True)


def resume_endpoint(endpoint_id: str) -> Call[Endpoint]:
    return Call("POST", f"/api/v1/endpoints/{_id(endpoint_id)}/resume", _one(Endpoint), idempotent=True)


# --- event types --------------------------------------------------------------------------------

def create_event_type(name: str, *, description: str | None = None, schema: Any = None) -> Call[EventType]:
    body = _drop_none({"name": name, "description": description, "schema": schema})
    return Call("POST", "/api/v1/event-types", _one(EventType), body=body)


def get_event_type(event_type_id: str) -> Call[EventType]:
    return Call("GET", f"/api/v1/event-types/{_id(event_type_id)}", _one(EventType), idempotent=True)


def list_event_types(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[EventType]]:
    return Call("GET", "/api/v1/event-types", _page(EventType), params={"limit": limit, "cursor": cursor},
                idempotent=True)


def delete_event_type(event_type_id: str) -> Call[Any]:
    return Call("DELETE", f"/api/v1/event-types/{_id(event_type_id)}", _raw, idempotent=True)


# --- api keys and projects ----------------------------------------------------------------------

def create_api_key(name: str, *, scopes: list[str] | None = None, rate_limit: int | None = None,
                   expires_at: str | None = None, project_id: str | None = None) -> Call[ApiKey]:
    body = _drop_none({"name": name, "scopes": scopes, "rateLimit": rate_limit, "expiresAt": expires_at,
                       "projectId": project_id})
    return Call("POST", "/api/v1/api-keys", _one(ApiKey), body=body)


def list_api_keys(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[ApiKey]]:
    return Call("GET", "/api/v1/api-keys", _page(ApiKey), params={"limit": limit, "cursor": cursor},
                idempotent=True)


def delete_api_key(key_id: str) -> Call[Any]:
    return Call("DELETE", f"/api/v1/api-keys/{_id(key_id)}", _raw, idempotent=True)


def create_project(name: str, *, environment: str | None = None) -> Call[Project]:
    return Call("POST", "/api/v1/projects", _one(Project), body=_drop_none({"name": name, "environment": environment}))


def get_project(project_id: str) -> Call[Project]:
    return Call("GET", f"/api/v1/projects/{_id(project_id)}", _one(Project), idempotent=True)


def list_projects(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[Project]]:
    return Call("GET", "/api/v1/projects", _page(Project), params={"limit": limit, "cursor": cursor},
                idempotent=True)


# --- pull delivery ------------------------------------------------------------------------------

def poll(endpoint_id: str, *, limit: int | None = None, timeout: int | None = None) -> Call[list[PolledEvent]]:
    def parse(data: Any) -> list[PolledEvent]:
        return [PolledEvent.from_json(e) for e in data.get("data") or []]
    return Call("GET", "/api/v1/poll", parse, params={"endpoint_id": endpoint_id, "limit": limit, "timeout": timeout},
                idempotent=True)


def ack(endpoint_id: str, event_ids: list[str]) -> Call[int]:
    def parse(data: Any) -> int:
        return int(data.get("acknowledged") or 0)
    return Call("POST", "/api/v1/poll/ack", parse, body={"endpoint_id": endpoint_id, "event_ids": event_ids},
                idempotent=True)
