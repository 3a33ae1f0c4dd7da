"""Signing inbound webhooks the way each platform documents it, written apart from the verifier
(control/policy/inbound_verify.py) so that tests check one against the other."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

SECRETS: dict[str, dict[str, str]] = {
    "hmac": {"secret": "s3cr3t-for-tests"},
    "hmac_timestamped": {"secret": "s3cr3t-for-tests"},
    "stripe": {"secret": "whsec_stripe_test_secret"},
    "standard_webhooks": {"secret": "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()},
    "twilio": {"secret": "twilio-auth-token"},
    "basic_auth": {"username": "hook", "password": "p@ss:word"},
    "token": {"token": "tok-123"},
    "none": {},
}
# Secrets that are not text: these presets' keys are base64 or hex.
BINARY_SECRETS = {"base64": base64.b64encode(b"binary-key-material-32-bytes!!!!").decode(),
                  "hex": "00112233445566778899aabbccddeeff"}


def secrets_for(mode: str, params: dict[str, Any]) -> dict[str, str]:
    enc = params.get("secret_encoding")
    return {"secret": BINARY_SECRETS[enc]} if enc in BINARY_SECRETS else dict(SECRETS[mode])


def _mac(alg: str, key: bytes, msg: bytes, enc: str) -> str:
    d = hmac.new(key, msg, alg).digest()
    return d.hex() if enc == "hex" else base64.b64encode(d).decode()


def _key(secret: str, enc: str | None) -> bytes:
    if enc == "base64":
        return base64.b64decode(secret)
    if enc == "hex":
        return bytes.fromhex(secret)
    return secret.encode()


def sign(mode: str, params: dict[str, Any], secrets: dict[str, str], body: bytes, url: str, now: int,
         msg_id: str = "msg_1", content_type: str = "application/json") -> tuple[dict[str, str], str]:
    """(headers to send, query string to append to `url`); `url` is the URL the sender is configured with."""
    h: dict[str, str] = {}
    query = ""
    if mode in ("hmac", "hmac_timestamped"):
        ts = str(now * 1000 if params.get("timestamp_unit") == "ms" else now)
        parts = {"{body}": body, "{ts}": ts.encode(), "{url}": url.encode(), "{id}": msg_id.encode()}
        template = params.get("template", "{body}")
        msg = b""
        i = 0
        while i < len(template):
            for ph, val in parts.items():
                if template.startswith(ph, i):
                    msg += val
                    i += len(ph)
                    break
            else:
                msg += template[i].encode()
                i += 1
        sig = _mac(params["algorithm"], _key(secrets["secret"], params.get("secret_encoding")), msg,
                   params["encoding"])
        h[params["header"]] = params.get("prefix", "") + sig
        if params.get("timestamp_header"):
            h[params["timestamp_header"]] = ts
        if params.get("id_header"):
            h[params["id_header"]] = msg_id
    elif mode == "stripe":
        ts = str(now * 1000 if params.get("timestamp_unit") == "ms" else now)
        template = params.get("template", "{ts}.{body}")
        msg = template.replace("{ts}", ts).encode().replace(b"{body}", body)
        sig = _mac(params.get("algorithm", "sha256"), secrets["secret"].encode(), msg, params.get("encoding", "hex"))
        sep = params.get("pair_separator", ",")
        h[params["header"]] = f"{params.get('ts_key', 't')}={ts}{sep}{params.get('sig_key', 'v1')}={sig}"
    elif mode == "standard_webhooks":
        prefix = params.get("header_prefix", "webhook-")
        key = base64.b64decode(secrets["secret"].removeprefix("whsec_"))
        sig = _mac("sha256", key, f"{msg_id}.{now}.".encode() + body, "base64")
        h.update({prefix + "id": msg_id, prefix + "timestamp": str(now), prefix + "signature": f"v1,{sig}"})
    elif mode == "twilio":
        s = url
        if content_type == "application/x-www-form-urlencoded":
            form: dict[str, list[str]] = {}
            for k, v in parse_qsl(body.decode(), keep_blank_values=True):
                form.setdefault(k, []).append(v)
            s += "".join(k + v for k in sorted(form) for v in sorted(set(form[k])))
        else:
            query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
            s += ("&" if "?" in url else "?") + query
        h[params.get("header", "X-Twilio-Signature")] = _mac("sha1", secrets["secret"].encode(), s.encode(), "base64")
    elif mode == "basic_auth":
        h["Authorization"] = "Basic " + base64.b64encode(
            f"{secrets['username']}:{secrets['password']}".encode()).decode()
    elif mode == "token":
        if params.get("query"):
            query = f"{params['query']}={secrets['token']}"
        else:
            h[params["header"]] = params.get("prefix", "") + secrets["token"]
    h["Content-Type"] = content_type
    return h, query
