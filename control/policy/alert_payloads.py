"""Where alerts go, pure: the channel types, their settings (which are secret, how they are masked),
and the exact body each platform expects.

A channel is a type plus settings. A connector stores them once under a name; a rule's `action`
either carries them inline or names a connector and overrides its non-secret fields. Secret
settings (webhook URLs, which carry the platform's token, PagerDuty routing keys, SMTP passwords,
custom headers) are sealed at rest by the services and shown masked on read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from control.errors import BadRequest
from control.policy.alert_rules import render, template_field
from control.validate import headers_field, int_field, need_object, str_field, str_list, url_field

TYPES: tuple[str, ...] = ("slack", "discord", "teams", "email", "webhook", "pagerduty")
SECRET_FIELDS = frozenset({"webhookUrl", "routingKey", "smtpPassword", "headers"})
SEVERITIES = ("critical", "error", "warning", "info")
SMTP_SECURITY = ("starttls", "tls", "none")
MASK = "****"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def _email(value: Any, name: str) -> str:
    text = str_field(value, name, max_len=320, allow_empty=False).strip()
    if not _EMAIL.match(text):
        raise BadRequest(f"{name}: not an e-mail address")
    return text


def _emails(value: Any, name: str) -> list[str]:
    items = str_list(value, name, max_items=50, max_len=320, allow_empty_list=False)
    return [_email(v, f"{name}[{i}]") for i, v in enumerate(items)]


def _text(max_len: int) -> Callable[[Any, str], str]:
    return lambda value, name: str_field(value, name, max_len=max_len)


def _choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, name: str) -> str:
        if value not in options:
            raise BadRequest(f"{name}: must be one of {', '.join(options)}")
        return str(value)
    return check


Check = Callable[[Any, str], Any]
_COMMON: dict[str, Check] = {"message": template_field}
# Per type: every setting it takes, and how each is checked.
FIELDS: dict[str, dict[str, Check]] = {
    "slack": {"webhookUrl": url_field, "channel": _text(256), "username": _text(256),
              "iconEmoji": _text(64), **_COMMON},
    "discord": {"webhookUrl": url_field, "username": _text(80), "avatarUrl": url_field, **_COMMON},
    "teams": {"webhookUrl": url_field, **_COMMON},
    "webhook": {"webhookUrl": url_field, "headers": headers_field, **_COMMON},
    "pagerduty": {"routingKey": lambda v, n: str_field(v, n, max_len=128, allow_empty=False),
                  "severity": _choice(SEVERITIES), "source": _text(256), **_COMMON},
    "email": {"to": _emails, "subject": template_field, "smtpHost": lambda v, n: str_field(v, n, 253, False),
              "smtpPort": lambda v, n: int_field(v, n, 1, 65535), "smtpUsername": _text(320),
              "smtpPassword": _text(1024), "fromEmail": _email, "smtpSecurity": _choice(SMTP_SECURITY), **_COMMON},
}
# What a send needs in the end (a connector may leave `to` to the rules that use it).
REQUIRED: dict[str, tuple[str, ...]] = {"slack": ("webhookUrl",), "discord": ("webhookUrl",),
                                        "teams": ("webhookUrl",), "webhook": ("webhookUrl",),
                                        "pagerduty": ("routingKey",), "email": ("to",)}
# What a connector must hold itself.
CONNECTOR_REQUIRED: dict[str, tuple[str, ...]] = {**REQUIRED, "email": ("smtpHost", "fromEmail")}


def channel_type(value: Any, name: str) -> str:
    if value not in TYPES:
        raise BadRequest(f"{name}: must be one of {', '.join(TYPES)}")
    return str(value)


def parse_settings(kind: str, data: Mapping[str, Any], name: str,
                   skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Check every setting against the type's table (unknown fields are a 400 naming them)."""
    allowed = FIELDS[kind]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        check = allowed.get(key)
        if check is None:
            raise BadRequest(f"{name}.{key}: unknown field for type {kind}")
        if value is not None:
            out[key] = check(value, f"{name}.{key}")
    return out


def require(kind: str, settings: Mapping[str, Any], name: str, table: Mapping[str, tuple[str, ...]]) -> None:
    for key in table[kind]:
        if settings.get(key) in (None, "", []):
            raise BadRequest(f"{name}.{key}: required for type {kind}")


def split_secrets(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    public = {k: v for k, v in settings.items() if k not in SECRET_FIELDS}
    return public, {k: v for k, v in settings.items() if k in SECRET_FIELDS}


def mask(key: str, value: Any) -> Any:
    """How a secret setting reads back: enough to recognise it, not to use it."""
    if key == "headers" and isinstance(value, dict):
        return {h: MASK for h in value}
    if key == "webhookUrl" and isinstance(value, str):
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc}/{MASK}"
    text = str(value)
    return MASK + text[-4:] if len(text) >= 12 else MASK


def masked(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (mask(k, v) if k in SECRET_FIELDS else v) for k, v in settings.items()}


def merge(current: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """PUT semantics for settings: given keys replace, null removes, and a secret sent back exactly
    as it was shown (masked) keeps the stored value."""
    out = dict(current)
    for key, value in given.items():
        if value is None:
            out.pop(key, None)
        elif key in SECRET_FIELDS and key in current and value == mask(key, current[key]):
            continue
        else:
            out[key] = value
    return out


# --- What gets sent -------------------------------------------------------------------------

FIRING_COLOR = "#d0312d"
RESOLVED_COLOR = "#2e8540"
DEFAULT_TITLE = "[{{.status}}] {{.rule}}"
DEFAULT_TEXT = "{{.message}}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell a channel: an alert firing or resolving (or a delivery notification)."""

    event_type: str                    # alert.firing | alert.resolved | ...
    status: str                        # firing | resolved
    dedup_key: str                     # the same for a rule's firing and its resolution
    at: datetime
    variables: dict[str, str] = field(default_factory=dict)   # template variables, `message` included
    facts: dict[str, str] = field(default_factory=dict)       # shown as fields where a platform has them


def _template(template: Mapping[str, Any], key: str, default: str, notice: Notice) -> str:
    raw = template.get(key)
    return render(raw if isinstance(raw, str) else default, notice.variables)


def title_of(template: Mapping[str, Any], notice: Notice) -> str:
    return _template(template, "title", DEFAULT_TITLE, notice)


def text_of(template: Mapping[str, Any], notice: Notice) -> str:
    return _template(template, "text", DEFAULT_TEXT, notice)


def color_of(template: Mapping[str, Any], notice: Notice) -> str:
    given = template.get("color")
    if notice.status == "firing" and isinstance(given, str):
        return given
    return FIRING_COLOR if notice.status == "firing" else RESOLVED_COLOR


def slack_body(s: Mapping[str, Any], template: Mapping[str, Any], n: Notice) -> dict[str, Any]:
    """Slack incoming webhook: `text` plus one attachment with a color bar and fields."""
    title, text = title_of(template, n), text_of(template, n)
    body: dict[str, Any] = {
        "text": title,
        "attachments": [{"color": color_of(template, n), "title": title, "text": text, "fallback": f"{title}: {text}",
                         "fields": [{"title": k, "value": v, "short": True} for k, v in n.facts.items()],
                         "ts": int(n.at.timestamp())}]}
    for ours, theirs in (("channel", "channel"), ("username", "username"), ("iconEmoji", "icon_emoji")):
        if s.get(ours):
            body[theirs] = s[ours]
    return body


def discord_body(s: Mapping[str, Any], template: Mapping[str, Any], n: Notice) -> dict[str, Any]:
    """Discord execute-webhook: one embed (title, description, integer color, fields, timestamp)."""
    body: dict[str, Any] = {"embeds": [{
        "title": title_of(template, n)[:256], "description": text_of(template, n)[:4096],
        "color": int(color_of(template, n).lstrip("#")[:6] or "0", 16),
        "fields": [{"name": k[:256], "value": (v or "-")[:1024], "inline": True} for k, v in n.facts.items()][:25],
        "timestamp": n.at.isoformat()}]}
    if s.get("username"):
        body["username"] = s["username"]
    if s.get("avatarUrl"):
        body["avatar_url"] = s["avatarUrl"]
    return body


def teams_body(s: Mapping[str, Any], template: Mapping[str, Any], n: Notice) -> dict[str, Any]:
    """Microsoft Teams incoming webhook, legacy actionable MessageCard."""
    title = title_of(template, n)
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": title,
            "themeColor": color_of(template, n).lstrip("#"), "title": title, "text": text_of(template, n),
            "sections": [{"facts": [{"name": k, "value": v} for k, v in n.facts.items()]}]}


def pagerduty_body(s: Mapping[str, Any], template: Mapping[str, Any], n: Notice) -> dict[str, Any]:
    """PagerDuty Events API v2: `trigger` while firing, `resolve` (same dedup key) after."""
    body: dict[str, Any] = {"routing_key": s["routingKey"], "dedup_key": n.dedup_key,
                            "event_action": "trigger" if n.status == "firing" else "resolve"}
    if n.status == "firing":
        body["payload"] = {"summary": text_of(template, n)[:1024] or title_of(template, n)[:1024],
                           "source": s.get("source") or "mittr", "severity": s.get("severity") or "error",
                           "timestamp": n.at.isoformat(), "component": n.variables.get("endpoint_id") or None,
                           "group": n.variables.get("project_id") or None, "class": n.variables.get("metric") or None,
                           "custom_details": dict(n.facts)}
        body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    return body


def webhook_body(s: Mapping[str, Any], template: Mapping[str, Any], n: Notice) -> dict[str, Any]:
    """Mittr's own shape: the notice's type and every variable, for a receiver to route on."""
    return {"type": n.event_type, "status": n.status, "dedupKey": n.dedup_key, "timestamp": n.at.isoformat(),
            "title": title_of(template, n), "message": n.variables.get("message", ""), "data": dict(n.variables)}


BODIES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], Notice], dict[str, Any]]] = {
    "slack": slack_body, "discord": discord_body, "teams": teams_body, "pagerduty": pagerduty_body,
    "webhook": webhook_body}


def email_parts(s: Mapping[str, Any], template: Mapping[str, Any], n: Notice) -> tuple[str, str]:
    subject = render(s["subject"], n.variables) if s.get("subject") else title_of(template, n)
    facts = "\n".join(f"{k}: {v}" for k, v in n.facts.items())
    return subject[:998].replace("\r", " ").replace("\n", " "), f"{text_of(template, n)}\n\n{facts}\n"


def parse_template(value: Any, name: str = "template") -> dict[str, str]:
    data = need_object(value, name)
    out: dict[str, str] = {}
    for key, raw in data.items():
        if key not in ("title", "text", "color"):
            raise BadRequest(f"{name}.{key}: unknown field (title, text, color)")
        if raw is None:
            continue
        out[key] = template_field(raw, f"{name}.{key}")
    if "color" in out and not re.match(r"^#?[0-9A-Fa-f]{6}$", out["color"]):
        raise BadRequest(f"{name}.color: expected a hex color such as #ba5b38")
    return out
