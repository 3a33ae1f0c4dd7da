"""Errors in the API guide's shape: {"error": "...", "code": "..."} with the right HTTP status."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, object]:
        return {"error": self.message, "code": self.code, **self.extra}


class BadRequest(ApiError):
    status, code = 400, "BAD_REQUEST"


class ValidationError(ApiError):
    status, code = 400, "VALIDATION_ERROR"


class Unauthorized(ApiError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(ApiError):
    status, code = 403, "FORBIDDEN"


class NotFound(ApiError):
    status, code = 404, "NOT_FOUND"


class Conflict(ApiError):
    status, code = 409, "CONFLICT"


class InvalidState(ApiError):
    status, code = 409, "INVALID_STATE"


class PayloadTooLarge(ApiError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class QuotaExceeded(ApiError):
    status, code = 402, "QUOTA_EXCEEDED"


class RateLimited(ApiError):
    status, code = 429, "RATE_LIMITED"


class Unavailable(ApiError):
    """The database cannot be reached: nothing was accepted, and the client may retry with the
    same idempotency key."""
    status = 503
    code = "UNAVAILABLE"

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__("database unavailable, retry shortly", headers={**(headers or {}), "Retry-After": "1"})
