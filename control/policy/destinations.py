"""Destinations other than HTTP: the `storageConfig` and `brokerConfig` of an endpoint, checked.

Pure: the API validates a tenant's config with `parse_storage` / `parse_broker` (a 400 naming the
field), seals its credentials with the caller's box, and shows it back with `shown`; the engine
opens it with `opened`. Credentials (`secretAccessKey`, a broker `url`, which may carry a password)
are kept only sealed (`<name>Sealed`) and never shown: a broker url is shown with its password
masked.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

STORAGE_TYPES = ("filesystem", "s3")
BROKER_TYPES = ("rabbitmq", "nats", "redis")
UNAVAILABLE = {"kafka": "kafka destinations are not available yet (no Kafka broker to test against); "
                        "use rabbitmq, nats or redis"}
BROKER_SCHEMES = {"rabbitmq": ("amqp", "amqps"), "nats": ("nats", "tls"), "redis": ("redis", "rediss")}
BROKER_FIELDS = {"rabbitmq": {"exchange", "routingKey"}, "nats": {"subject"}, "redis": {"stream", "maxLen"}}
SECRETS = ("secretAccessKey", "url")          # sealed at rest, never shown
_NAME = re.compile(r"^[A-Za-z0-9._\-/]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

Seal = Callable[[str], str]


class DestinationError(ValueError):
    """A config a destination cannot use; the message names the field."""


def _str(cfg: Mapping[str, Any], key: str, where: str, *, required: bool = True, default: str = "",
         max_len: int = 1024, pattern: re.Pattern[str] | None = None) -> str:
    value = cfg.get(key)
    if value is None:
        if required:
            raise DestinationError(f"{where}.{key}: required")
        return default
    if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
        raise DestinationError(f"{where}.{key}: must be a string of at most {max_len} characters, without NUL")
    if pattern is not None and not pattern.match(value):
        raise DestinationError(f"{where}.{key}: has characters that are not allowed")
    return value


def _split(url: str, where: str) -> SplitResult:
    """urlsplit, whose ValueError (e.g. an unbalanced `[` in the host) is the caller's 400."""
    try:
        parts = urlsplit(url)
        parts.port       # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise DestinationError(f"{where}: not a valid URL ({exc})") from exc
    return parts


def _int(cfg: Mapping[str, Any], key: str, where: str, lo: int, hi: int, default: int) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DestinationError(f"{where}.{key}: must be an integer from {lo} to {hi}")
    return value


def _bool(cfg: Mapping[str, Any], key: str, where: str) -> bool:
    value = cfg.get(key, False)
    if not isinstance(value, bool):
        raise DestinationError(f"{where}.{key}: must be a boolean")
    return value


def _relative_path(value: str, where: str) -> str:
    """A path that stays where it is put: relative, no `..`, no empty or dot segments."""
    if not value:
        return ""
    if value.startswith("/") or "\\" in value or "\x00" in value:
        raise DestinationError(f"{where}: must be a relative path")
    parts = value.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise DestinationError(f"{where}: must not contain empty, '.' or '..' segments")
    return posixpath.join(*parts)


def _type(cfg: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(cfg, dict):
        raise DestinationError(f"{where}: must be an object")
    kind = cfg.get("type")
    if isinstance(kind, str) and kind in UNAVAILABLE:
        raise DestinationError(f"{where}.type: {UNAVAILABLE[kind]}")
    if kind not in allowed:
        raise DestinationError(f"{where}.type: must be one of {', '.join(allowed)}")
    return str(kind)


def _unknown(cfg: Mapping[str, Any], where: str, known: set[str]) -> None:
    extra = sorted(set(cfg) - known - {"type"})
    if extra:
        raise DestinationError(f"{where}.{extra[0]}: unknown field")


def _batching(cfg: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {"gzip": _bool(cfg, "gzip", where),
            "batchMaxRecords": _int(cfg, "batchMaxRecords", where, 1, 10_000, 500),
            "batchWindowMs": _int(cfg, "batchWindowMs", where, 0, 60_000, 200)}


def parse_storage(cfg: Any, seal: Seal, current: Mapping[str, Any] | None = None,
                  filesystem_allowed: bool = True) -> dict[str, Any]:
    """The stored form of a `storageConfig` (credentials sealed). A PATCH that leaves
    `secretAccessKey` out keeps the stored one when the type is unchanged."""
    where = "storageConfig"
    kind = _type(cfg, where, STORAGE_TYPES)
    prefix = _relative_path(_str(cfg, "prefix", where, required=False, max_len=512), f"{where}.prefix")
    out: dict[str, Any] = {"type": kind, "prefix": prefix, **_batching(cfg, where)}
    if kind == "filesystem":
        _unknown(cfg, where, {"directory", "prefix", "gzip", "batchMaxRecords", "batchWindowMs"})
        if not filesystem_allowed:
            raise DestinationError(f"{where}.type: filesystem destinations are turned off on this server "
                                   "(engine.storage_root is not set)")
        directory = _str(cfg, "directory", where, max_len=512)
        out["directory"] = _relative_path(directory, f"{where}.directory")
        return out
    _unknown(cfg, where, {"bucket", "prefix", "region", "endpointUrl", "accessKeyId", "secretAccessKey",
                          "gzip", "batchMaxRecords", "batchWindowMs"})
    out["bucket"] = _str(cfg, "bucket", where, max_len=63, pattern=_BUCKET)
    out["region"] = _str(cfg, "region", where, required=False, default="us-east-1", max_len=64,
                         pattern=re.compile(r"^[a-z0-9\-]+$"))
    endpoint = _str(cfg, "endpointUrl", where, required=False, max_len=2048)
    if endpoint and _split(endpoint, f"{where}.endpointUrl").scheme not in ("http", "https"):
        raise DestinationError(f"{where}.endpointUrl: must be an http(s) URL")
    if endpoint and not urlsplit(endpoint).hostname:
        raise DestinationError(f"{where}.endpointUrl: must name a host")
    out["endpointUrl"] = endpoint or None
    out["accessKeyId"] = _str(cfg, "accessKeyId", where, max_len=256)
    secret = cfg.get("secretAccessKey")
    if secret is None and current is not None and current.get("type") == "s3" \
            and current.get("secretAccessKeySealed"):
        out["secretAccessKeySealed"] = current["secretAccessKeySealed"]
    else:
        out["secretAccessKeySealed"] = seal(_str(cfg, "secretAccessKey", where, max_len=256))
    return out


def parse_broker(cfg: Any, seal: Seal, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stored form of a `brokerConfig` (its url sealed). A PATCH that leaves `url` out keeps
    the stored one when the type is unchanged."""
    where = "brokerConfig"
    kind = _type(cfg, where, BROKER_TYPES)
    _unknown(cfg, where, {"url"} | BROKER_FIELDS[kind])
    out: dict[str, Any] = {"type": kind}
    raw_url = cfg.get("url")
    same = current is not None and current.get("type") == kind and current.get("urlSealed")
    # Left out, or echoed back as GET shows it (masked; a rollback to a version does that too).
    if same and current is not None and (raw_url is None or raw_url == current.get("urlShown")):
        out["urlSealed"], out["urlShown"] = current["urlSealed"], current.get("urlShown")
    else:
        url = _str(cfg, "url", where, max_len=2048)
        parts = _split(url, f"{where}.url")
        if parts.scheme not in BROKER_SCHEMES[kind]:
            raise DestinationError(f"{where}.url: must be a {' or '.join(BROKER_SCHEMES[kind])}:// URL")
        if not parts.hostname:
            raise DestinationError(f"{where}.url: must name a host")
        out["urlSealed"], out["urlShown"] = seal(url), masked(url)
    if kind == "rabbitmq":
        out["exchange"] = _str(cfg, "exchange", where, required=False, max_len=255, pattern=_NAME)
        out["routingKey"] = _str(cfg, "routingKey", where, max_len=255)
    elif kind == "nats":
        out["subject"] = _str(cfg, "subject", where, max_len=255, pattern=re.compile(r"^[A-Za-z0-9_\-.]+$"))
    else:
        out["stream"] = _str(cfg, "stream", where, max_len=255, pattern=re.compile(r"^[^\s]+$"))
        out["maxLen"] = _int(cfg, "maxLen", where, 1, 100_000_000, 100_000)
    return out


def masked(url: str) -> str:
    """The url with its password replaced, as shown back to callers."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def shown(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What GET shows of a stored config: no sealed values, a broker url masked."""
    if stored is None:
        return None
    out = {k: v for k, v in stored.items() if not k.endswith("Sealed") and k != "urlShown"}
    if "urlShown" in stored:
        out["url"] = stored["urlShown"]
    return out


def display_url(stored: Mapping[str, Any]) -> str:
    """The endpoint's `url` when none is given: where its deliveries go, without credentials."""
    kind = stored["type"]
    if kind == "filesystem":
        return f"file:///{posixpath.join(stored['directory'], stored['prefix'])}"
    if kind == "s3":
        return f"s3://{stored['bucket']}/{stored['prefix']}"
    target = stored.get("routingKey") or stored.get("subject") or stored.get("stream") or ""
    return f"{stored.get('urlShown') or kind}#{target}"


def opened(stored: Mapping[str, Any], open_sealed: Callable[[str], str]) -> dict[str, Any]:
    """The config with its credentials opened, for the engine only."""
    out = dict(stored)
    for key in SECRETS:
        sealed = out.pop(f"{key}Sealed", None)
        if sealed is not None:
            out[key] = open_sealed(sealed)
    out.pop("urlShown", None)
    return out


def object_key(prefix: str, year: int, month: int, day: int, hour: int, batch_id: str, gzip: bool) -> str:
    """`prefix/yyyy/mm/dd/hh/<batch-id>.ndjson[.gz]`, the layout of every storage destination."""
    name = f"{batch_id}.ndjson" + (".gz" if gzip else "")
    path = f"{year:04d}/{month:02d}/{day:02d}/{hour:02d}/{name}"
    return f"{prefix}/{path}" if prefix else path
