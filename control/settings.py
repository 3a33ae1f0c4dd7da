"""Settings: config/default.toml, then a --config file, then MITTR_<SECTION>__<KEY> env vars."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# `control/config` links to the repository's top-level config/ directory, so the same path works from
# a checkout and from an installed wheel (which carries the files as the control package's data).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config" / "default.toml"
CONFIG_ENV = "MITTR_CONFIG"


class SettingsError(ValueError):
    """A setting has a value of the wrong type or an unknown name."""


def _coerce(current: Any, raw: str, name: str) -> Any:
    if isinstance(current, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected a boolean, got {raw!r}")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: expected an integer, got {raw!r}") from exc
    if isinstance(current, list):       # a JSON array, or comma-separated values
        text = raw.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise SettingsError(f"{name}: expected a JSON array, got {raw!r}") from exc
            if not isinstance(value, list):
                raise SettingsError(f"{name}: expected a JSON array, got {raw!r}")
            return value
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from exc
    return raw


def _merge(base: dict[str, Any], over: dict[str, Any], origin: str) -> None:
    for section, values in over.items():
        if section not in base or not isinstance(values, dict):
            raise SettingsError(f"{origin}: unknown section [{section}]")
        _merge_table(base[section], values, section, origin)


def _merge_table(base: dict[str, Any], over: dict[str, Any], where: str, origin: str) -> None:
    """A sub-table with keys (e.g. [sso.google]) is merged key by key, checked like a section; an
    empty one in default.toml (e.g. [sso.oidc]) is open: the file's table replaces it."""
    for key, value in over.items():
        if key not in base:
            raise SettingsError(f"{origin}: unknown setting {where}.{key}")
        if isinstance(base[key], dict) and base[key] and isinstance(value, dict):
            _merge_table(base[key], value, f"{where}.{key}", origin)
        else:
            base[key] = value


@dataclass(frozen=True)
class Settings:
    """The merged configuration, by section; read with `s.engine["shards"]` and friends."""

    raw: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.raw[name]

    @property
    def server(self) -> dict[str, Any]:
        return self.raw["server"]

    @property
    def database(self) -> dict[str, Any]:
        return self.raw["database"]

    @property
    def engine(self) -> dict[str, Any]:
        return self.raw["engine"]

    @property
    def api(self) -> dict[str, Any]:
        return self.raw["api"]

    @property
    def security(self) -> dict[str, Any]:
        return self.raw["security"]

    @property
    def log(self) -> dict[str, Any]:
        return self.raw["log"]

    @property
    def database_url(self) -> str:
        return str(self.raw["database"]["url"] or "")


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  env: dict[str, str] | None = None) -> Settings:
    """Merge the three layers; unknown keys are errors so that typos do not pass silently."""
    env = dict(os.environ if env is None else env)
    with DEFAULT_CONFIG.open("rb") as fh:
        merged: dict[str, dict[str, Any]] = tomllib.load(fh)
    path = config_file or env.get(CONFIG_ENV)
    if path:
        with Path(path).open("rb") as fh:
            _merge(merged, tomllib.load(fh), str(path))
    for name, raw in env.items():
        if not name.startswith("MITTR_") or "__" not in name:
            continue
        # MITTR_SSO__GOOGLE__CLIENT_SECRET reaches into a sub-table (sso.google.client_secret).
        section, *keys = name[len("MITTR_"):].lower().split("__")
        table: Any = merged.get(section)
        for step in keys[:-1]:
            table = table.get(step) if isinstance(table, dict) else None
        if not isinstance(table, dict) or keys[-1] not in table or isinstance(table[keys[-1]], dict):
            raise SettingsError(f"{name}: unknown setting {'.'.join([section, *keys])}")
        table[keys[-1]] = _coerce(table[keys[-1]], raw, name)
    if env.get("DATABASE_URL"):
        merged["database"]["url"] = env["DATABASE_URL"]
    return Settings(merged)
