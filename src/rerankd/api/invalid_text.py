"""Which field of a refused body holds text that is not Unicode, so the 400 can name it.

`"a\\ud800b"` is legal JSON but not a Unicode string (a lone UTF-16 surrogate), and a
MessagePack `str` must be UTF-8 (CESU-8 surrogates such as `ED A0 80` are not). rerankd
refuses both, anywhere in a body (texts, query, ids, `model`, metadata, admin bodies): the
tokenizers cannot encode them, and replacing them would score (and echo) a text the client did
not send. msgspec refuses them while parsing, without a path ("Input data was truncated",
"Invalid UTF-8 encoded string"); only then is the body parsed again, leniently, to find the
first such string in document order. Runs on refused bodies only, after the nesting check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgpack


def _is_text_invalid(value: str) -> bool:
    """Lone surrogates (JSON's `\\udXXX`) and undecodable bytes (`surrogateescape`) alike."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(value: Any) -> Iterator[tuple[str, str]]:
    """(path, problem) of every string that is not valid Unicode, in document order; iterative."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if _is_text_invalid(node):
                yield path, "value"
        elif isinstance(node, dict):
            children = []
            for key, child in node.items():
                if isinstance(key, str) and _is_text_invalid(key):
                    yield path, "key"
                    return
                children.append((_child(path, key if isinstance(key, str) else repr(key)), child))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend((_child(path, index), child) for index, child in reversed(list(enumerate(node))))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _lenient(raw: bytes, encoding: str) -> Any:
    """The body parsed so that bad text survives as surrogates; None if it does not parse at all."""
    if encoding == "JSON" and raw.isascii() and b"\\u" not in raw:
        return None  # no escapes and no bytes past ASCII: every string in it is valid text
    try:
        if encoding == "JSON":
            return json.loads(raw.decode("utf-8", "surrogateescape"), parse_constant=_refuse_constant)
        return msgpack.unpackb(raw, raw=False, unicode_errors="surrogateescape", strict_map_key=False)
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException):
        return None


def find(raw: bytes, encoding: str) -> tuple[str, str] | None:
    """(param, message) for the first string of `raw` that is not valid Unicode, or None."""
    for path, where in _walk(_lenient(raw, encoding)):
        if where == "key":
            place = f"an object key in '{path}'" if path else "an object key of the body"
        else:
            place = f"'{path}'" if path else "the body"
        message = (
            f"{place} is not valid Unicode text (a lone UTF-16 surrogate such as \\ud800, "
            "or bytes that are not UTF-8); send UTF-8 text"
        )
        return path or None, message
    return None
