"""Errors the server answered, as exceptions that carry its `code` (`{"error": ..., "code": ...}`)."""

from __future__ import annotations

from typing import Any


class MittrError(Exception):
    """An error answer from Mittr (or a transport failure once retries ran out: status 0)."""

    def __init__(self, message: str, *, code: str, status: int, body: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.message = message
        self.code = code
        self.status = status
        self.body = body or {}
        self.retry_after = retry_after


class BadRequest(MittrError):
    """400: VALIDATION_ERROR, BAD_REQUEST, BATCH_TOO_LARGE..."""


class Unauthorized(MittrError):
    """401."""


class Forbidden(MittrError):
    """403."""


class NotFound(MittrError):
    """404."""


class Conflict(MittrError):
    """409: CONFLICT, DUPLICATE_EVENT, INVALID_STATE."""


class QuotaExceeded(MittrError):
    """402."""


class RateLimited(MittrError):
    """429 after the retries ran out; `retry_after` says how long the server asked to wait."""


class Unavailable(MittrError):
    """503 after the retries ran out, or the server could not be reached (status 0)."""


_BY_STATUS: dict[int, type[MittrError]] = {
    400: BadRequest, 401: Unauthorized, 402: QuotaExceeded, 403: Forbidden, 404: NotFound,
    409: Conflict, 429: RateLimited, 503: Unavailable, 0: Unavailable,
}


def error_from(status: int, body: Any, retry_after: float | None = None) -> MittrError:
    """The exception for an error answer (any JSON, or none)."""
    data = body if isinstance(body, dict) else {}
    message = str(data.get("error") or f"HTTP {status}")
    code = str(data.get("code") or ("UNAVAILABLE" if status == 0 else f"HTTP_{status}"))
    cls = _BY_STATUS.get(status, MittrError)
    return cls(message, code=code, status=status, body=data, retry_after=retry_after)
