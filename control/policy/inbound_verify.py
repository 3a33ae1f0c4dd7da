"""Verifying inbound webhooks: the few signature schemes platforms use, each implemented once.

Pure: a request (raw body bytes as received, lower-cased header names, query, the URL as called, the
time) plus a mode's parameters and the endpoint's secrets either verify or raise VerifyError. Every
comparison of secret-derived bytes is constant time (hmac.compare_digest). Presets
(config/inbound_presets.toml) are data that name one of MODES and its parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
SECRET_ENCODINGS = ("utf8", "base64", "hex")
DEFAULT_TOLERANCE_S = 300
MAX_SECRET = 4096
_PLACEHOLDER = re.compile(r"\{(body|ts|url|id)\}")


class VerifyError(ValueError):
    """The request does not carry a valid signature or credential (answered 401)."""


@dataclass(frozen=True, slots=True)
class InboundRequest:
    body: bytes
    headers: Mapping[str, str]                 # names lower-cased
    url: str                                   # as the platform called it (scheme, host, path, query)
    now: float                                 # Unix seconds
    query: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        value = self.headers.get(name.lower())
        if value is None:
            raise VerifyError(f"missing {name} header")
        return value


def _digest(algorithm: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def _decode(text: str, encoding: str) -> bytes | None:
    try:
        return bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


def _key(secret: str, encoding: str) -> bytes:
    if encoding == "utf8":
        return secret.encode()
    try:
        return bytes.fromhex(secret) if encoding == "hex" else base64.b64decode(secret, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise VerifyError("the configured secret is not valid " + encoding) from exc


def _matches(expected: bytes, candidates: list[str], encoding: str) -> bool:
    ok = False
    for text in candidates:   # every candidate is compared: no early exit on which one matched
        got = _decode(text.strip(), encoding)
        ok |= got is not None and hmac.compare_digest(got, expected)
    return ok


def _timestamp(raw: str, unit: str, now: float, tolerance: int | None) -> None:
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise VerifyError("timestamp is not an integer") from exc
    seconds = value / 1000 if unit == "ms" else value
    if tolerance is not None and abs(now - seconds) > tolerance:
        raise VerifyError("timestamp outside the tolerance")


def render(template: str, parts: Mapping[str, bytes]) -> bytes:
    """`{body}`, `{ts}`, `{url}`, `{id}` in a template, filled with bytes (the body as received)."""
    out = bytearray()
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        out += template[pos:m.start()].encode()
        out += parts[m.group(1)]
        pos = m.end()
    out += template[pos:].encode()
    return bytes(out)


def _hmac(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest, timed: bool) -> None:
    value = req.header(p["header"])
    prefix = p.get("prefix", "")
    if prefix:
        if not value[:len(prefix)].lower() == prefix.lower():
            raise VerifyError(f"{p['header']} does not start with {prefix!r}")
        value = value[len(prefix):]
    parts = {"body": req.body, "url": req.url.encode(), "ts": b"", "id": b""}
    if p.get("timestamp_header"):
        ts = req.header(p["timestamp_header"])
        if timed:
            _timestamp(ts, p.get("timestamp_unit", "s"), req.now, int(p.get("tolerance", DEFAULT_TOLERANCE_S)))
        parts["ts"] = ts.encode()
    if p.get("id_header"):
        parts["id"] = req.header(p["id_header"]).encode()
    message = render(p.get("template", "{body}"), parts)
    expected = _digest(p["algorithm"], _key(secrets["secret"], p.get("secret_encoding", "utf8")), message)
    if not _matches(expected, [value], p["encoding"]):
        raise VerifyError("signature mismatch")


def verify_hmac(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """HMAC of a template (default: the raw body) in a header, hex or base64, after a prefix."""
    _hmac(p, secrets, req, timed=False)


def verify_hmac_timestamped(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """As hmac, with a timestamp header inside the signed text that must be within the tolerance
    (Slack: `v0:{ts}:{body}` in X-Slack-Signature `v0=…`, X-Slack-Request-Timestamp)."""
    _hmac(p, secrets, req, timed=True)


def verify_stripe(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """A header of key=value pairs: a timestamp (`t`) and one or more signatures (`v1`) of
    `{ts}.{body}`; any listed signature may match (secret rotation). Stripe, and its imitators."""
    name = p.get("header", "Stripe-Signature")
    ts_key, sig_key = p.get("ts_key", "t"), p.get("sig_key", "v1")
    ts: str | None = None
    sigs: list[str] = []
    for item in req.header(name).split(p.get("pair_separator", ",")):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == ts_key:
            ts = value
        elif key == sig_key:
            sigs.append(value)
    if ts is None or not sigs:
        raise VerifyError(f"{name}: no {ts_key}= timestamp or {sig_key}= signature")
    _timestamp(ts, p.get("timestamp_unit", "s"), req.now, int(p.get("tolerance", DEFAULT_TOLERANCE_S)))
    message = render(p.get("template", "{ts}.{body}"), {"body": req.body, "ts": ts.encode(),
                                                         "url": req.url.encode(), "id": b""})
    expected = _digest(p.get("algorithm", "sha256"), secrets["secret"].encode(), message)
    if not _matches(expected, sigs, p.get("encoding", "hex")):
        raise VerifyError("signature mismatch")


def standard_webhooks_key(secret: str) -> bytes:
    """A Standard Webhooks / Svix secret: `whsec_` then base64 of the key (the prefix is optional)."""
    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise VerifyError("the configured secret is not whsec_<base64>") from exc


def verify_standard_webhooks(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """Standard Webhooks (and Svix, with `svix-` headers): HMAC-SHA256 of `{id}.{ts}.{body}`,
    `v1,<base64>` entries separated by spaces in the signature header."""
    prefix = p.get("header_prefix", "webhook-")
    msg_id, ts = req.header(prefix + "id"), req.header(prefix + "timestamp")
    _timestamp(ts, "s", req.now, int(p.get("tolerance", DEFAULT_TOLERANCE_S)))
    expected = _digest("sha256", standard_webhooks_key(secrets["secret"]),
                       msg_id.encode() + b"." + ts.encode() + b"." + req.body)
    sigs = [entry.partition(",")[2] for entry in req.header(prefix + "signature").split()
            if entry.partition(",")[0] == "v1"]
    if not _matches(expected, sigs, "base64"):
        raise VerifyError("signature mismatch")


def _url_variants(url: str) -> list[str]:
    """The URL as called, and with the scheme's default port added or removed (Twilio signs
    whichever it was configured with, and a proxy may have changed it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc_host = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    other = netloc_host if parts.port is not None else f"{netloc_host}:{default}"
    return [url, urlunsplit(parts._replace(netloc=other))] if parts.port in (None, default) else [url]


def verify_twilio(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """Twilio (and Mandrill): HMAC-SHA1, base64, of the URL followed by every form parameter as
    name+value, names sorted. A JSON body is covered instead by `bodySHA256` in the query."""
    value = req.header(p.get("header", "X-Twilio-Signature"))
    params: dict[str, set[str]] = {}
    content_type = req.headers.get("content-type", "")
    if "bodySHA256" in req.query:
        if not hmac.compare_digest(hashlib.sha256(req.body).hexdigest(), req.query["bodySHA256"].lower()):
            raise VerifyError("bodySHA256 does not match the body")
    elif content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(req.body.decode(), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError) as exc:
            raise VerifyError("form body cannot be parsed") from exc
        for k, v in pairs:
            params.setdefault(k, set()).add(v)
    tail = "".join(k + v for k in sorted(params) for v in sorted(params[k]))
    key = secrets["secret"].encode()
    ok = False
    for url in _url_variants(req.url):
        ok |= _matches(_digest(p.get("algorithm", "sha1"), key, (url + tail).encode()), [value], "base64")
    if not ok:
        raise VerifyError("signature mismatch")


def verify_basic_auth(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """HTTP Basic credentials, compared as one `user:password` string in constant time."""
    scheme, _, token = req.header("Authorization").partition(" ")
    if scheme.lower() != "basic":
        raise VerifyError("Authorization is not Basic")
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise VerifyError("Authorization: malformed Basic credentials") from exc
    if not hmac.compare_digest(given, f"{secrets['username']}:{secrets['password']}".encode()):
        raise VerifyError("wrong credentials")


def verify_token(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """A shared token, in a header (after an optional prefix such as `Bearer `) or a query parameter."""
    if p.get("query"):
        given = req.query.get(p["query"])
        if given is None:
            raise VerifyError(f"missing {p['query']} query parameter")
    else:
        given = req.header(p["header"])
        prefix = p.get("prefix", "")
        if prefix:
            if given[:len(prefix)].lower() != prefix.lower():
                raise VerifyError(f"{p['header']} does not start with {prefix!r}")
            given = given[len(prefix):]
    if not hmac.compare_digest(given.encode(), secrets["token"].encode()):
        raise VerifyError("wrong token")


def verify_none(p: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    """No verification: the unguessable path suffix is the only protection."""


Verifier = Callable[[Mapping[str, Any], Mapping[str, str], InboundRequest], None]


@dataclass(frozen=True, slots=True)
class Mode:
    verify: Verifier
    secrets: tuple[str, ...]                    # sourceConfig keys this mode needs
    required: tuple[str, ...]                   # parameters every preset of the mode gives
    optional: tuple[str, ...]
    summary: str


_HMAC_OPT = ("prefix", "template", "secret_encoding", "timestamp_header", "id_header", "timestamp_unit",
             "tolerance")
MODES: dict[str, Mode] = {
    "hmac": Mode(verify_hmac, ("secret",), ("algorithm", "encoding", "header"), _HMAC_OPT,
                 "HMAC (SHA-1/256/512, hex or base64) of the raw body, or of a template of it, in a header"),
    "hmac_timestamped": Mode(verify_hmac_timestamped, ("secret",),
                             ("algorithm", "encoding", "header", "timestamp_header", "template"), _HMAC_OPT,
                             "HMAC of a template holding a timestamp header, refused outside the tolerance"),
    "stripe": Mode(verify_stripe, ("secret",), ("header",),
                   ("ts_key", "sig_key", "pair_separator", "template", "algorithm", "encoding", "tolerance",
                    "timestamp_unit"),
                   "`t=<ts>,v1=<hex>` pairs: HMAC-SHA256 of `{ts}.{body}`, refused outside the tolerance"),
    "standard_webhooks": Mode(verify_standard_webhooks, ("secret",), (), ("header_prefix", "tolerance"),
                              "Standard Webhooks / Svix: HMAC-SHA256 of `{id}.{ts}.{body}` with a whsec_ key"),
    "twilio": Mode(verify_twilio, ("secret",), (), ("header", "algorithm"),
                   "HMAC-SHA1 (base64) of the URL plus the sorted form parameters"),
    "basic_auth": Mode(verify_basic_auth, ("username", "password"), (), (), "HTTP Basic credentials"),
    "token": Mode(verify_token, ("token",), (), ("header", "prefix", "query"),
                  "a shared token in a header or a query parameter"),
    "none": Mode(verify_none, (), (), (), "no verification (the path suffix is the secret)"),
}


def check_params(mode: str, params: Mapping[str, Any]) -> None:
    """ValueError when a preset's parameters do not fit its mode."""
    spec = MODES.get(mode)
    if spec is None:
        raise ValueError(f"unknown mode {mode!r}")
    missing = [k for k in spec.required if k not in params]
    unknown = sorted(set(params) - set(spec.required) - set(spec.optional))
    if missing or unknown:
        raise ValueError(f"mode {mode}: missing {missing}, unknown {unknown}")
    if params.get("algorithm", "sha256") not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}")
    if params.get("encoding", "hex") not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}")
    if params.get("secret_encoding", "utf8") not in SECRET_ENCODINGS:
        raise ValueError(f"secret_encoding must be one of {SECRET_ENCODINGS}")
    if params.get("timestamp_unit", "s") not in ("s", "ms"):
        raise ValueError("timestamp_unit must be s or ms")
    if mode == "token" and not (params.get("header") or params.get("query")):
        raise ValueError("mode token: give header or query")
    bad = {m.group(1) for m in _PLACEHOLDER.finditer(str(params.get("template", "")))} - {"body", "ts", "url", "id"}
    if bad:
        raise ValueError(f"template: unknown placeholders {sorted(bad)}")


def check_secrets(mode: str, config: Mapping[str, Any]) -> dict[str, str]:
    """The secrets a mode needs from sourceConfig (ValueError naming the key otherwise)."""
    out: dict[str, str] = {}
    for name in MODES[mode].secrets:
        value = config.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_SECRET:
            raise ValueError(f"{name}: required, a non-empty string of at most {MAX_SECRET} characters")
        out[name] = value
    if mode == "standard_webhooks":
        try:
            standard_webhooks_key(out["secret"])
        except VerifyError as exc:
            raise ValueError(f"secret: {exc}") from exc
    return out


def verify(mode: str, params: Mapping[str, Any], secrets: Mapping[str, str], req: InboundRequest) -> None:
    MODES[mode].verify(params, secrets, req)
