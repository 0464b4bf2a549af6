"""Field-by-field validation that names the offending field in every 400.

Hand-written rather than schema-generated so that msgpack and JSON bodies get the same checks
and every message says which field (`items[3].text`) was wrong and why.
"""

from __future__ import annotations

from typing import Any

from rerankd.core.errors import EmptyItems, InvalidRequest, RequestTooLarge
from rerankd.core.types import Item

_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        where = f"'{field}'" if field else "the request body"
        raise InvalidRequest(f"{where} must be an object, got {type_name(value)}", param=field or None)
    return value


def require(body: dict, key: str, field: str) -> Any:
    """The value of a required field (which may then be of any type)."""
    if body.get(key) is None:
        raise _missing(field)
    return body[key]


def _missing(field: str) -> InvalidRequest:
    return InvalidRequest(f"'{field}' is required", param=field)


def _wrong(field: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(f"'{field}' must be {expected}, got {type_name(value)}", param=field)


def get_str(body: dict, key: str, field: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _missing(field)
        return None
    if not isinstance(value, str):
        raise _wrong(field, "a string", value)
    return value


def get_bool(body: dict, key: str, field: str, default: bool = False) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong(field, "a boolean", value)
    return value


def get_positive_int(body: dict, key: str, field: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(field, "a positive integer", value)
    if value < 1:
        raise InvalidRequest(f"'{field}' must be at least 1, got {value}", param=field)
    return value


def get_list(body: dict, key: str, field: str, *, max_items: int) -> list:
    value = body.get(key)
    if value is None:
        raise _missing(field)
    if not isinstance(value, list):
        raise _wrong(field, "an array", value)
    if not value:
        raise EmptyItems(f"'{field}' must contain at least one entry", param=field)
    if len(value) > max_items:
        raise RequestTooLarge(
            f"'{field}' has {len(value)} entries; this server accepts at most {max_items} per request",
            param=field,
        )
    return value


def parse_item(value: Any, field: str) -> Item:
    """`{"id"?: str, "text": str, "metadata"?: object}`."""
    body = require_object(value, field)
    text = get_str(body, "text", f"{field}.text", required=True)
    item_id = body.get("id")
    if item_id is not None and not isinstance(item_id, str):
        raise _wrong(f"{field}.id", "a string", item_id)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _wrong(f"{field}.metadata", "an object", metadata)
    return Item(text=text, id=item_id, metadata=metadata)  # type: ignore[arg-type]


def parse_document(value: Any, field: str) -> Item:
    """A Cohere/Jina/TEI document: a plain string or an object with `text`."""
    if isinstance(value, str):
        return Item(text=value)
    if isinstance(value, dict):
        return Item(text=get_str(value, "text", f"{field}.text", required=True))  # type: ignore[arg-type]
    raise _wrong(field, "a string or an object with 'text'", value)


def reject_unknown(body: dict, allowed: set[str], field: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        name = f"{field}.{unknown[0]}" if field else unknown[0]
        raise InvalidRequest(f"unknown field '{name}'; supported: {', '.join(sorted(allowed))}", param=name)
