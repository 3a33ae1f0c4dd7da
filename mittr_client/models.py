"""Typed views of the API's resources. Each keeps the whole answer in `raw`, so a field the server
adds later is never lost; the named attributes are the seed's documented fields (checked against
the server's OpenAPI document in the tests)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

M = TypeVar("M", bound="Model")
_CAMEL = re.compile(r"_([a-z])")


def camel(name: str) -> str:
    """`max_attempts` -> `maxAttempts`, the API's spelling."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


@dataclass
class Model:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    schema: ClassVar[str] = ""  # the OpenAPI component it mirrors, where the server names one

    @classmethod
    def fields(cls) -> dict[str, str]:
        """Attribute name -> JSON name, for every typed attribute."""
        return {f.name: camel(f.name) for f in dataclasses.fields(cls) if f.name != "raw"}

    @classmethod
    def from_json(cls: type[M], data: dict[str, Any]) -> M:
        values = {name: data.get(key) for name, key in cls.fields().items()}
        return cls(raw=data, **values)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]


@dataclass
class DeliveryAttempt(Model):
    schema: ClassVar[str] = "DeliveryAttempt"
    id: str = ""
    event_id: str = ""
    endpoint_id: str | None = None
    attempt_number: int = 0
    status_code: int | None = None
    response_body: str = ""
    error: str = ""
    outcome: str = ""
    duration_ms: int = 0
    attempted_at: str = ""


@dataclass
class Event(Model):
    """An event: the create answer, a list row, or (with payload and attempts) the full read."""

    schema: ClassVar[str] = "EventSummary"
    id: str = ""
    idempotency_key: str = ""
    destination: str | None = None
    event_type: str | None = None
    status: str = ""
    attempts: int = 0
    max_attempts: int = 0
    priority: int = 0
    created_at: str = ""
    delivered_at: str | None = None
    payload: Any = None
    headers: dict[str, str] | None = None

    @property
    def delivery_attempts(self) -> list[DeliveryAttempt]:
        return [DeliveryAttempt.from_json(a) for a in self.raw.get("deliveryAttempts") or []]


@dataclass
class Endpoint(Model):
    id: str = ""
    url: str | None = None
    description: str = ""
    event_types: list[str] | None = None
    delivery_mode: str = "push"
    status: str = ""
    signing_secret: str | None = None  # only in the create answer
    project_id: str | None = None
    created_at: str = ""
    updated_at: str = ""


@dataclass
class EventType(Model):
    id: str = ""
    name: str = ""
    description: str = ""
    schema_: Any = None
    created_at: str = ""

    @classmethod
    def fields(cls) -> dict[str, str]:
        return {**super().fields(), "schema_": "schema"}


@dataclass
class ApiKey(Model):
    schema: ClassVar[str] = "ApiKey"
    id: str = ""
    name: str = ""
    key_prefix: str = ""
    key: str | None = None  # the raw key: only in the create answer
    scopes: list[str] | None = None
    rate_limit: int | None = None
    expires_at: str | None = None
    project_id: str | None = None
    is_active: bool = True
    created_at: str = ""


@dataclass
class Project(Model):
    schema: ClassVar[str] = "Project"
    id: str = ""
    name: str = ""
    environment: str = ""
    created_at: str = ""
    updated_at: str = ""


@dataclass
class PolledEvent(Model):
    schema: ClassVar[str] = "PolledEvent"
    id: str = ""
    event_type: str | None = None
    payload: Any = None
    headers: dict[str, str] | None = None
    created_at: str = ""
    attempts: int = 0
