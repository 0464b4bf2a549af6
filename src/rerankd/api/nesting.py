"""How deeply a body nests, checked on its bytes before any parser recurses into it.

msgspec (and the stdlib's json) decode recursively, guarded only by Python's recursion limit:
100,000 `[` raise `RecursionError` (which used to be a 500), and on Python < 3.14 a raised
recursion limit or a small thread stack turns that into a crash (msgspec issue #1033). So a body
nested deeper than `MAX_DEPTH` containers is refused as MALFORMED_BODY before it is decoded.

Both checks run at C speed, without building a single Python object:

* MessagePack: msgpack's C `Unpacker` walks a body with `skip()` on an explicit stack of fixed
  size (1024 containers; measured at import, not assumed) and raises `StackError` past it. The
  body is fed behind `capacity - MAX_DEPTH` one-element arrays, so that stack overflows exactly
  when the body itself nests deeper than `MAX_DEPTH`.
* JSON: everything but quotes and brackets (and escapes, when there are any) is deleted with
  `bytes.translate`, escaped quotes are blanked, and numpy's running sums give the depth outside
  strings. A body with at most `MAX_DEPTH` brackets in all skips the sums.

Hand-written because neither msgspec nor any JSON library installed here has a depth option.
"""

from __future__ import annotations

import msgpack
import numpy as np

# Containers (objects/maps and arrays) inside one another, the body's own object included.
# Rerankd's bodies need 3 (`items[0].metadata`); free-form metadata gets the rest.
MAX_DEPTH = 64

_ARRAY_OF_ONE = b"\x91"


def _msgpack_capacity() -> int | None:
    """How many nested containers msgpack's C unpacker holds (None: no C extension, no bound)."""
    if msgpack.Unpacker.__module__ != "msgpack._cmsgpack":
        return None
    for depth in (1024, 512, 256, 128):
        unpacker = msgpack.Unpacker()
        unpacker.feed(_ARRAY_OF_ONE * depth + b"\xc0")
        try:
            unpacker.skip()
        except msgpack.StackError:
            continue
        unpacker = msgpack.Unpacker()
        unpacker.feed(_ARRAY_OF_ONE * (depth + 1) + b"\xc0")
        try:
            unpacker.skip()
        except msgpack.StackError:
            return depth
        return None
    return None


_CAPACITY = _msgpack_capacity()


def msgpack_too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True if the MessagePack `raw` nests more than `limit` containers (malformed bodies: False)."""
    if _CAPACITY is None or limit >= _CAPACITY:
        return False
    padding = _ARRAY_OF_ONE * (_CAPACITY - limit)
    unpacker = msgpack.Unpacker(max_buffer_size=len(raw) + len(padding) + 1)
    unpacker.feed(padding)
    unpacker.feed(raw)
    try:
        unpacker.skip()
    except msgpack.StackError:
        return True
    except (ValueError, msgpack.UnpackException):  # truncated or not MessagePack: msgspec says which
        return False
    return False


_NOT_MARKS = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_NOT_MARKS_OR_ESCAPES = bytes(byte for byte in range(256) if byte not in b'[]{}"\\/bfnrtu')
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_CHUNK = 1 << 22


def json_too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True if the JSON `raw` nests more than `limit` containers; brackets inside strings do not count."""
    if b"\\" in raw:
        # An escape is a backslash and the character after it, which is one of `"\\/bfnrtu`: kept
        # with them, every escaper stays next to what it escapes. Blanking `\\` pairs then leaves
        # every remaining `\"` an escaped quote, and every other quote opens or closes a string.
        # (Same-length replacements: bytes.replace deletes ten times slower than it overwrites.)
        marks = raw.translate(None, _NOT_MARKS_OR_ESCAPES)
        for escape in (b"\\\\", b'\\"'):
            if escape in marks:
                marks = marks.replace(escape, b"__")
    else:
        marks = raw.translate(None, _NOT_MARKS)
    if len(marks) - marks.count(b'"') <= limit:  # too few brackets to nest that deep, strings or not
        return False
    codes = np.frombuffer(marks, np.uint8)
    in_string = depth = 0
    for start in range(0, len(codes), _CHUNK):
        chunk = codes[start : start + _CHUNK]
        steps = _STEP.take(chunk)
        is_quote = chunk == ord('"')
        if in_string or is_quote.any():
            inside = (np.cumsum(is_quote, dtype=np.int32) + in_string) & 1
            steps[inside.astype(bool)] = 0  # a closing quote's own step is 0 already
            in_string = int(inside[-1])
        levels = np.cumsum(steps, dtype=np.int32) + depth
        if int(levels.max()) > limit:
            return True
        depth = int(levels[-1])
    return False
