"""The inbound preset catalogue (config/inbound_presets.toml): per platform, which verification mode
with which parameters, where its event type and delivery id are. Pure parsing and checking; a
malformed catalogue fails at start, not at the first webhook. `python -m control.policy.inbound_presets`
prints docs/inbound-presets.md."""

from __future__ import annotations

import functools
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.policy.inbound_verify import MODES, check_params
from control.policy.jsonpath import CompiledPath, compile_path
from control.settings import DEFAULT_CONFIG

PRESETS_FILE = DEFAULT_CONFIG.parent / "inbound_presets.toml"
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Preset:
    source: str
    name: str
    description: str
    mode: str
    params: dict[str, Any]
    event_type: CompiledPath | None
    delivery_id: CompiledPath | None

    def json(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name, "description": self.description, "mode": self.mode,
                "secrets": list(MODES[self.mode].secrets), "params": self.params,
                "eventType": self.event_type.expr if self.event_type else None,
                "deliveryId": self.delivery_id.expr if self.delivery_id else None}


def doc_path(expr: str) -> CompiledPath:
    """A JSONPath over {headers, query, data}; header names (`$.headers.X-GitHub-Event`) match
    case-insensitively, since the request's names are lower-cased."""
    path = compile_path(expr)
    steps = path.steps
    if len(steps) >= 2 and steps[0] == "headers" and isinstance(steps[1], str):
        return CompiledPath(path.expr, ("headers", steps[1].lower(), *steps[2:]))
    return path


def _path(entry: dict[str, Any], key: str, where: str) -> CompiledPath | None:
    raw = entry.get(key)
    if raw is None:
        return None
    try:
        return doc_path(str(raw))
    except ValueError as exc:
        raise ValueError(f"{where}.{key}: {exc}") from exc


def parse(doc: dict[str, Any]) -> dict[str, Preset]:
    """Presets by source, in file order; ValueError naming the first bad entry."""
    out: dict[str, Preset] = {}
    for i, entry in enumerate(doc.get("preset", [])):
        where = f"preset[{i}]"
        unknown = sorted(set(entry) - {"source", "name", "description", "mode", "params", "event_type",
                                       "delivery_id"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]}")
        source = entry.get("source")
        if not isinstance(source, str) or not _SOURCE.match(source):
            raise ValueError(f"{where}.source: lower-case letters, digits and '-' only")
        if source in out:
            raise ValueError(f"{where}.source: {source!r} appears twice")
        for key in ("name", "description", "mode"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"{where}.{key}: required")
        params = dict(entry.get("params", {}))
        try:
            check_params(entry["mode"], params)
        except ValueError as exc:
            raise ValueError(f"{where} ({source}): {exc}") from exc
        out[source] = Preset(source, entry["name"], entry["description"], entry["mode"], params,
                             _path(entry, "event_type", where), _path(entry, "delivery_id", where))
    return out


@functools.cache
def catalogue(path: Path = PRESETS_FILE) -> dict[str, Preset]:
    with path.open("rb") as fh:
        return parse(tomllib.load(fh))


def markdown(presets: dict[str, Preset]) -> str:
    """docs/inbound-presets.md: the modes, then every preset (a test keeps the file in sync)."""
    lines = ["# Inbound presets", "",
             "Generated from `config/inbound_presets.toml` by `python -m control.policy.inbound_presets`;",
             "do not edit by hand. `sourceConfig` holds the secrets the mode needs. Event type and delivery id",
             "are JSONPaths over `{headers, query, data}` (header names match case-insensitively); the",
             "delivery id de-duplicates the platform's retries.", "",
             f"{len(presets)} presets over {len(MODES)} verification modes.", "",
             "## Modes", "", "| mode | sourceConfig | what is checked |", "|---|---|---|"]
    for name, mode in MODES.items():
        lines.append(f"| `{name}` | {', '.join(f'`{s}`' for s in mode.secrets) or '-'} | {mode.summary} |")
    lines += ["", "## Presets", "", "| source | platform | mode | parameters | event type | delivery id |",
              "|---|---|---|---|---|---|"]
    for p in presets.values():
        params = ", ".join(f"{k}=`{v}`" for k, v in p.params.items()) or "-"
        lines.append(f"| `{p.source}` | {p.name}: {p.description} | `{p.mode}` | {params} | "
                     f"{f'`{p.event_type.expr}`' if p.event_type else '-'} | "
                     f"{f'`{p.delivery_id.expr}`' if p.delivery_id else '-'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown(catalogue()))
