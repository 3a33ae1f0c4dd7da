"""Shared response formatting: timestamps as the guide writes them, and opaque keyset cursors."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import orjson

from control.errors import BadRequest


def iso(ts: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, to the second, as in the guide's examples."""
    if ts is None:
        return None
    utc = ts.astimezone(UTC)
    return f"{utc.year:04d}-{utc.strftime('%m-%dT%H:%M:%S')}Z"   # %Y does not pad years before 1000


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    if not cursor:
        return None, None
    try:
        pad = "=" * (-len(cursor) % 4)
        created, rid = orjson.loads(base64.urlsafe_b64decode(cursor + pad))
        return datetime.fromisoformat(created), uuid.UUID(rid)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor: not a cursor this API issued") from exc


def page(rows: list[dict[str, object]], raw_rows: list[object], limit: int) -> dict[str, object]:
    """`{data, pagination: {hasMore, cursor}}` from rows fetched with limit + 1."""
    has_more = len(raw_rows) > limit
    cursor = None
    if has_more:
        last = raw_rows[limit - 1]
        cursor = encode_cursor(last["created_at"], last["id"])  # type: ignore[index]
    return {"data": rows[:limit], "pagination": {"hasMore": has_more, "cursor": cursor}}
