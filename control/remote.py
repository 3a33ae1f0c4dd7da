"""Where the client-side commands (`mittr listen`, `mittr events ...`) find their server and key:
`--server` / `--api-key`, else MITTR_URL / MITTR_API_KEY, else the user's config file
(`$XDG_CONFIG_HOME/mittr/config.toml`, default `~/.config/mittr/config.toml`, with `url` and
`api_key`), else http://127.0.0.1:8400 without a key."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mittr_client.sync import Client

DEFAULT_URL = "http://127.0.0.1:8400"


@dataclass(frozen=True)
class Remote:
    url: str
    api_key: str | None


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "mittr"


def read_config(path: Path) -> dict[str, Any]:
    """The config file's table ({} when there is none); a broken file stops the command with why."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"mittr: {path}: {exc}") from exc


def resolve(server: str | None, api_key: str | None, env: Mapping[str, str] | None = None,
            config: Mapping[str, Any] | None = None) -> Remote:
    """Pure precedence: flag, then environment, then config file, then the local default."""
    env = os.environ if env is None else env
    config = read_config(config_dir(env) / "config.toml") if config is None else config
    url = server or env.get("MITTR_URL") or _text(config.get("url")) or DEFAULT_URL
    key = api_key or env.get("MITTR_API_KEY") or _text(config.get("api_key")) or None
    return Remote(url.rstrip("/"), key)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        help="the Mittr API (default: MITTR_URL, the config file's url, or http://127.0.0.1:8400)")
    parser.add_argument("--api-key", metavar="KEY",
                        help="API key (default: MITTR_API_KEY or the config file's api_key)")


def client(args: argparse.Namespace) -> Client:
    from mittr_client.sync import Client

    remote = resolve(args.server, args.api_key)
    return Client(remote.url, remote.api_key or "")
