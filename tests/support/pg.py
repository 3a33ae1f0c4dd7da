"""URL helpers for the test databases."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
