"""Request and response helpers shared by every route: JSON in, JSON out, errors in the guide's shape."""

from __future__ import annotations

from typing import Any

import orjson
from blacksheep import Content, Request, Response

from control.errors import ApiError, BadRequest, PayloadTooLarge

JSON = b"application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Response(status, extra, Content(JSON, orjson.dumps(data)))


def error_response(exc: ApiError) -> Response:
    return json_response(exc.body(), exc.status, exc.headers)


def empty_response(status: int = 204) -> Response:
    return Response(status, None, None)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.get_first_header(b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"body: larger than the {limit}-byte limit")
        except ValueError as exc:
            raise BadRequest("Content-Length: not a number") from exc
    preset = request.content   # already materialised (in-process test client)
    if preset is not None and getattr(preset, "body", None) is not None:
        if len(preset.body) > limit:
            raise PayloadTooLarge(f"body: larger than the {limit}-byte limit")
        return bytes(preset.body)
    data = bytearray()
    async for chunk in request.stream():  # type: ignore[attr-defined]
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"body: larger than the {limit}-byte limit")
    return bytes(data)


async def read_json(request: Request, limit: int, *, optional: bool = False) -> Any:
    raw = await read_body(request, limit)
    if not raw.strip():
        if optional:
            return None
        raise BadRequest("body: a JSON body is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: invalid JSON ({exc.msg})") from exc


def query_one(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


def header(request: Request, name: bytes) -> str | None:
    value = request.get_first_header(name)
    return value.decode("latin-1") if value is not None else None
