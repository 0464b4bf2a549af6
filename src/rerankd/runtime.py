"""Device, dtype and thread choices, decided once per process.

Kept apart from the models so that every family gets the same answers, and so that the CLI
can report what it chose.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def cpu_has_native_bf16() -> bool:
    """AMX or AVX-512-BF16: bf16 matrix math is several times faster than fp32 there."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(requested: str | None = None) -> torch.device:
    """`auto` (or None) picks CUDA when present, then Apple MPS, else CPU."""
    if requested and requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(requested: str | None, device: torch.device, preferred: str | None = None) -> torch.dtype:
    """Explicit `--dtype` wins; `auto` uses fp32 on CPU and the catalog's preference (or bf16/fp16) on GPUs.

    fp32 is the CPU default because it reproduces the reference scores to 1e-5. bf16 on a CPU
    with AVX-512-BF16 or AMX (`--dtype bfloat16`, mixed precision) is faster but moves scores
    by up to ~0.01 and reorders near-ties: on the benchmark's MiniLM cross-encoder its per-query
    Kendall tau against fp32 dips to 0.985, under the 0.99 we require of a default (README,
    "Numerics").
    """
    if requested and requested != "auto":
        if requested not in DTYPES:
            raise ValueError(f"unknown dtype {requested!r}; choose one of {sorted(set(DTYPES))} or auto")
        return DTYPES[requested]
    if device.type == "cuda":
        if preferred in DTYPES:
            return DTYPES[preferred]
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def configure_threads(threads: int | None = None) -> int:
    """Use every core for intra-op math unless told otherwise; returns the count in use."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = max(1, int(threads or 1))
    torch.set_num_threads(count)
    return count


@dataclass(frozen=True)
class Placement:
    """Where and how a model runs."""

    device: torch.device
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def mixed_precision(self) -> bool:
        """Half weights on a CPU run under autocast: matrix products in bf16, layer norms,
        softmax and the residual stream in fp32, which keeps rankings close to fp32's."""
        return self.device.type == "cpu" and self.dtype in (torch.bfloat16, torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.mixed_precision:
            return torch.autocast(self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()
