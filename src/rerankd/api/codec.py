"""Request bodies in, responses out: JSON or MessagePack, chosen by the request's headers."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from starlette.requests import Request
from starlette.responses import Response

from rerankd.core.errors import MalformedBody, RequestTooLarge, UnsupportedMediaType

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
# Content types a JSON body may arrive with (curl -d sends form encoding unless told otherwise).
JSON_COMPATIBLE = ("application/json", "text/plain", "application/x-www-form-urlencoded", "")


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def is_msgpack_request(request: Request) -> bool:
    return _media_type(request.headers.get("content-type")) in MSGPACK_TYPES


def wants_msgpack(request: Request) -> bool:
    """Answer in msgpack when the body was msgpack or `Accept` asks for it."""
    if is_msgpack_request(request):
        return True
    accept = request.headers.get("accept", "").lower()
    return any(kind in accept for kind in MSGPACK_TYPES)


async def read_body(request: Request, limit: int) -> Any:
    """The decoded body; 400 when it cannot be decoded, 413 past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    raw = b"".join(chunks)
    media_type = _media_type(request.headers.get("content-type"))
    if media_type in MSGPACK_TYPES:
        try:
            return msgpack.unpackb(raw, raw=False)
        except Exception as error:
            raise MalformedBody(f"body is not valid MessagePack: {type(error).__name__}") from None
    if media_type not in JSON_COMPATIBLE and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"content type {media_type!r} is not supported; send application/json or application/msgpack"
        )
    if not raw:
        raise MalformedBody("request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedBody(f"body is not valid JSON: {error}") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def render(payload: Any, *, msgpack_body: bool, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise `payload` as msgpack or JSON."""
    if msgpack_body:
        body = msgpack.packb(payload, use_bin_type=True, default=_json_default)
        return Response(body, status_code=status, media_type="application/msgpack", headers=headers)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
    return Response(body.encode(), status_code=status, media_type="application/json", headers=headers)
