"""Request bodies in, responses out: JSON or MessagePack, chosen by the request's headers.

A body is read up to the size limit, then decoded by msgspec straight into the route's schema
Struct, so both encodings get the same validation; a failure becomes an `InvalidRequest` that
names the field the way the client wrote it (`items[3].text`), see `validation.py`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from rerankd.api import invalid_text, nesting
from rerankd.api.validation import invalid_request
from rerankd.core.errors import InvalidRequest, MalformedBody, RequestTooLarge, UnsupportedMediaType

T = TypeVar("T")

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


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body; 413 past `limit` bytes, whether declared up front or streamed."""
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
    return b"".join(chunks)


def decode(raw: bytes, media_type: str, schema: type[T]) -> T:
    """`raw` as an instance of `schema`: 400 MALFORMED_BODY or INVALID_REQUEST, 415 for other media."""
    if media_type in MSGPACK_TYPES:
        if nesting.msgpack_too_deep(raw):
            raise _too_deep("MessagePack")
        return _decode(msgspec.msgpack.decode, raw, schema, "MessagePack")
    if media_type not in JSON_COMPATIBLE and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"content type {media_type!r} is not supported; send application/json or application/msgpack"
        )
    if not raw:
        raise MalformedBody("request body is empty; expected a JSON object")
    if nesting.json_too_deep(raw):
        raise _too_deep("JSON")
    return _decode(msgspec.json.decode, raw, schema, "JSON")


def _too_deep(encoding: str) -> MalformedBody:
    return MalformedBody(f"{encoding} body nests more than {nesting.MAX_DEPTH} objects or arrays inside one another")


def _decode(decoder: Any, raw: bytes, schema: type[T], encoding: str) -> T:
    try:
        try:
            return decoder(raw, type=schema)
        except msgspec.ValidationError as error:
            # msgspec validates while it parses, so `garbage` fails as "expected an object" before the
            # parser reaches the bytes that are not MessagePack at all: tell the two apart.
            try:
                decoder(raw)
            except msgspec.DecodeError as malformed:
                raise _malformed(raw, encoding, malformed) from None
            raise invalid_request(error, schema) from None
        except msgspec.DecodeError as error:
            raise _malformed(raw, encoding, error) from None
    except RecursionError:  # the nesting check runs first; this stays a 400 should msgspec still recurse
        raise _too_deep(encoding) from None


def _malformed(raw: bytes, encoding: str, error: msgspec.DecodeError) -> InvalidRequest:
    """MALFORMED_BODY, or INVALID_REQUEST naming the field whose text is not Unicode."""
    found = invalid_text.find(raw, encoding)
    if found is not None:
        param, message = found
        return InvalidRequest(message, param=param)
    return MalformedBody(f"body is not valid {encoding}: {error}")


async def read(request: Request, schema: type[T], limit: int) -> T:
    """Read, size-check and decode the request's body into `schema`."""
    raw = await read_body(request, limit)
    return decode(raw, _media_type(request.headers.get("content-type")), schema)


def _enc_hook(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise NotImplementedError(f"cannot serialise {type(value).__name__}")


_JSON = msgspec.json.Encoder(enc_hook=_enc_hook)
_MSGPACK = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


def render(payload: Any, *, msgpack_body: bool, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise `payload` (a schema Struct, or the registry's plain dicts) as msgpack or JSON."""
    if msgpack_body:
        return Response(_MSGPACK.encode(payload), status_code=status, media_type="application/msgpack", headers=headers)
    return Response(_JSON.encode(payload), status_code=status, media_type="application/json", headers=headers)
