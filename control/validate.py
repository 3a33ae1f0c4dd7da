"""Small validators for request bodies: each names the field it refuses."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from control.errors import BadRequest, NotFound
from control.policy.ssrf import AddressPolicy

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
# Headers a caller may not set: the transport's and Mittr's own signature headers.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive",
    "upgrade", "te", "trailer", "proxy-authorization", "x-mittr-signature", "x-mittr-timestamp",
    "x-mittr-event-id", "webhook-id", "webhook-timestamp", "webhook-signature",
})


def need_object(body: Any, name: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{name}: expected a JSON object")
    return body


def int_field(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name}: expected an integer")
    if lo is not None and value < lo:
        raise BadRequest(f"{name}: must be at least {lo}")
    if hi is not None and value > hi:
        raise BadRequest(f"{name}: must be at most {hi}")
    return value


def float_field(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name}: expected a number")
    if lo is not None and value < lo:
        raise BadRequest(f"{name}: must be at least {lo}")
    if hi is not None and value > hi:
        raise BadRequest(f"{name}: must be at most {hi}")
    return float(value)


def bool_field(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: expected true or false")
    return value


def no_nul(value: Any, name: str) -> Any:
    """Refuse a NUL character anywhere in a JSON value: Postgres text and jsonb cannot hold one, so
    it would otherwise fail at the database as a 500 (payloads, stored as bytes, are not affected)."""
    if b"\\u0000" in orjson.dumps(value):
        raise BadRequest(f"{name}: NUL characters (\\u0000) are not accepted")
    return value


def str_field(value: Any, name: str, max_len: int = 1024, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected a string")
    if "\x00" in value:
        raise BadRequest(f"{name}: NUL characters are not accepted")
    if len(value) > max_len:
        raise BadRequest(f"{name}: longer than {max_len} characters")
    if not allow_empty and not value.strip():
        raise BadRequest(f"{name}: must not be empty")
    return value


def str_list(value: Any, name: str, max_items: int = 100, max_len: int = 256,
             allow_empty_list: bool = True) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest(f"{name}: expected an array of strings")
    if not allow_empty_list and not value:
        raise BadRequest(f"{name}: must not be empty")
    if len(value) > max_items:
        raise BadRequest(f"{name}: at most {max_items} items")
    return [str_field(v, f"{name}[{i}]", max_len, allow_empty=False) for i, v in enumerate(value)]


def url_field(value: Any, name: str) -> str:
    text = str_field(value, name, max_len=2048, allow_empty=False)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"{name}: not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise BadRequest(f"{name}: must be an http or https URL")
    if not parts.hostname:
        raise BadRequest(f"{name}: URL has no host")
    if parts.username or parts.password:
        raise BadRequest(f"{name}: credentials in the URL are not allowed; use customHeaders")
    if port == 0:
        raise BadRequest(f"{name}: port 0 is not allowed")
    return text


def reachable_url(url: str, name: str, policy: AddressPolicy) -> str:
    """Refuse now a URL whose host is an address deliveries may never reach (a literal IP or
    `localhost`); hostnames are judged on what they resolve to, at connect time."""
    reason = policy.host_refusal(urlsplit(url).hostname or "")
    if reason is not None:
        raise BadRequest(f"{name}: {reason}")
    return url


def headers_field(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise BadRequest(f"{name}: expected an object of header names to string values")
    if len(value) > 50:
        raise BadRequest(f"{name}: at most 50 headers")
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _HEADER_NAME.match(key):
            raise BadRequest(f"{name}: {key!r} is not a valid header name")
        if key.lower() in RESERVED_HEADERS:
            raise BadRequest(f"{name}.{key}: this header is set by Mittr and cannot be overridden")
        if not isinstance(val, str) or "\r" in val or "\n" in val or "\x00" in val or len(val) > 8192:
            raise BadRequest(f"{name}.{key}: expected a single-line string value")
        out[key] = val
    return out


def cidr_list(value: Any, name: str) -> list[str]:
    items = str_list(value, name, max_items=100, max_len=64)
    for i, item in enumerate(items):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise BadRequest(f"{name}[{i}]: {item!r} is not a CIDR block") from exc
    return items


def reachable_cidrs(items: list[str], name: str, policy: AddressPolicy) -> list[str]:
    """Refuse allowlist entries that lie wholly in a range the policy refuses: they could only
    ever admit addresses that are refused anyway."""
    for i, item in enumerate(items):
        reason = policy.network_refusal(item)
        if reason is not None:
            raise BadRequest(f"{name}[{i}]: {reason}; an allowlist cannot re-open it")
    return items


def uuid_or_404(value: str, what: str) -> uuid.UUID:
    """Malformed ids answer 404 like unknown ones: an id is an opaque handle."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise NotFound(f"{what} not found") from exc


def int_param(raw: str | None, default: int, lo: int, hi: int, name: str) -> int:
    """A query-string integer within [lo, hi]; absent or empty gives the default."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}: expected an integer from {lo} to {hi}") from exc
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: expected an integer from {lo} to {hi}")
    return value


def limit_param(raw: str | None, default: int, hi: int, name: str = "limit") -> int:
    return int_param(raw, default, 1, hi, name)
