"""msgspec's validation errors, reworded for humans and pointed at the field the client wrote.

msgspec says "Expected `int | null`, got `str` - at `$.options.top_k`"; a client gets
INVALID_REQUEST with `param` "options.top_k" and "'options.top_k' must be an integer, got a
string". A missing field's param is its own path (`items[0].text`), an unknown field's too
(`options.foo`); a body that is not an object has no param at all.
"""

from __future__ import annotations

import re

import msgspec
import msgspec.inspect as mi

from rerankd.core.errors import InvalidRequest

_AT = re.compile(r"^(?P<what>.*?) - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]+)`(?P<rest>.*)$", re.DOTALL)
_GOT = re.compile(r"^, got `(?P<got>[^`]+)`$")

_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
    "bytes": "binary data",
}


def _name(kind: str) -> str:
    return _NAMES.get(kind, f"`{kind}`")


def _expected(union: str) -> str:
    """`int | null` -> "an integer": null means "absent", which an optional field always allows."""
    kinds = [kind.strip() for kind in union.split("|")]
    named = [_name(kind) for kind in kinds if kind != "null"] or ["null"]
    return " or ".join(named)


def _join(base: str, field: str) -> str:
    return f"{base}.{field}" if base else field


def _struct_at(schema: object, path: str) -> mi.StructType | None:
    """The Struct the error's path points into, to list the fields it does accept."""
    node: mi.Type | None = mi.type_info(schema)  # type: ignore[arg-type]
    for step in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        node = _unwrap(node, list_item=bool(step[1]))
        if node is None:
            return None
        if step[0]:
            fields = {field.encode_name: field.type for field in node.fields} if isinstance(node, mi.StructType) else {}
            node = fields.get(step[0])
    node = _unwrap(node, list_item=False)
    return node if isinstance(node, mi.StructType) else None


def _unwrap(node: mi.Type | None, *, list_item: bool) -> mi.Type | None:
    """Look through Annotated metadata and `| None`; into a list's items when indexing."""
    while True:
        if isinstance(node, mi.Metadata):
            node = node.type
        elif isinstance(node, mi.UnionType):
            wanted = (mi.ListType,) if list_item else (mi.StructType,)
            node = next((kind for kind in node.types if isinstance(kind, wanted)), None)
        elif list_item and isinstance(node, mi.ListType):
            return node.item_type
        else:
            return node


def invalid_request(error: msgspec.ValidationError, schema: object) -> InvalidRequest:
    """The INVALID_REQUEST a client sees for msgspec's `error` decoding `schema`."""
    text = str(error)
    match = _AT.match(text)
    what, path, in_key = (match["what"], match["path"].lstrip("."), bool(match["key"])) if match else (text, "", False)
    if in_key:
        where = f"'{path}'" if path else "the request body"
        return InvalidRequest(f"keys of {where} must be strings: {what}", param=path or None)
    if missing := _MISSING.match(what):
        param = _join(path, missing["field"])
        return InvalidRequest(f"'{param}' is required", param=param)
    if unknown := _UNKNOWN.match(what):
        param = _join(path, unknown["field"])
        struct = _struct_at(schema, f".{path}" if path else "")
        supported = f"; supported: {', '.join(sorted(f.encode_name for f in struct.fields))}" if struct else ""
        return InvalidRequest(f"unknown field '{param}'{supported}", param=param)
    where = f"'{path}'" if path else "the request body"
    if expected := _EXPECTED.match(what):
        got = _GOT.match(expected["rest"])
        if got:
            message = f"{where} must be {_expected(expected['expected'])}, got {_name(got['got'])}"
        else:  # a constraint: "Expected `int` >= 1"
            message = f"{where} must be {_expected(expected['expected'])}{expected['rest']}"
        return InvalidRequest(message, param=path or None)
    return InvalidRequest(f"{where}: {what}", param=path or None)
