"""Sizes: `--memory-budget 6GB`, and how much memory a checkpoint will take before it is loaded.

The budget counts the weights actually loaded (`LoadedModel.memory_bytes`, adapters'
tensors). Before a load, the registry needs an estimate to decide what to evict: the
safetensors headers give every tensor's shape and dtype, so the estimate is exact for the
weights (in the dtype they will be loaded in) without reading them.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import torch

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")
# safetensors dtype names -> bytes per element
_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
_FLOATS = {"F64", "F32", "F16", "BF16"}


def parse_size(text: str) -> int:
    """Bytes in `6GB`, `1.5GiB`, `512MB`, `800M` or a plain number (GB = 10^9, GiB = 2^30)."""
    match = _SIZE.match(str(text))
    unit = match["unit"].lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size; use e.g. 6GB, 1.5GiB, 512MB")
    value = int(float(match["number"]) * _UNITS[unit])
    if value <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return value


def format_size(nbytes: int) -> str:
    """`123.4 MB`: for messages."""
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _safetensors_bytes(path: Path, float_bytes: int) -> int:
    """Bytes of the tensors in one safetensors file, floats counted at `float_bytes` each."""
    with path.open("rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        dtype = info["dtype"]
        total += count * (float_bytes if dtype in _FLOATS else _DTYPE_BYTES.get(dtype, 4))
    return total


def estimate_weight_bytes(directory: Path, dtype: torch.dtype) -> int:
    """Memory the weights in `directory` will take once loaded in `dtype` (best effort, never raises)."""
    float_bytes = torch.empty((), dtype=dtype).element_size()
    total = 0
    try:
        files = sorted(directory.glob("*.safetensors"))
        for path in files:
            total += _safetensors_bytes(path, float_bytes)
        if not files:  # pickled weights: their file size, scaled from fp32
            total = sum(path.stat().st_size for path in directory.glob("pytorch_model*.bin")) * float_bytes // 4
    except (OSError, ValueError, KeyError, struct.error):
        return 0  # a corrupt file fails its load; the estimate just stays unknown
    return total
