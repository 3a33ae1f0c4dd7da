"""Named SQL blocks, loaded once from control/store/sql/*.sql.

A block starts with a `-- name: some_name` line and runs to the next one. Every value is a `$n`
parameter; nothing is ever formatted into SQL text.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_blocks(text: str, origin: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    parts = _NAME.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = body.strip().rstrip(";").strip()
        if name in blocks:
            raise ValueError(f"{origin}: query {name!r} defined twice")
        blocks[name] = sql
    return blocks


@cache
def queries() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        for name, sql in parse_blocks(path.read_text(), path.name).items():
            if name in merged:
                raise ValueError(f"{path.name}: query {name!r} already defined elsewhere")
            merged[name] = sql
    return merged


def q(name: str) -> str:
    """The SQL text of a named query."""
    return queries()[name]
