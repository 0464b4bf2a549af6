"""Device, dtype and thread choices, decided once per process.

Kept apart from the models so that every family gets the same answers, and so that the CLI
can report what it chose.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


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
    """Explicit `--dtype` wins; `auto` is fp32 on CPU and the catalog's preference (else bf16/fp16) on GPUs."""
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


def resolve_placement(requested: str | None, device: torch.device, preferred: str | None = None) -> Placement:
    """Where and in what precision a model runs.

    On a CPU, `auto` is fp32: it reproduces the reference scores to 1e-5. A half dtype on a CPU
    (`--dtype bfloat16`, fast on AVX-512-BF16 and AMX) runs the feed-forward blocks (two thirds
    of an encoder's FLOPs) in that dtype and everything else in fp32. Rounding every matrix
    product's inputs to bf16 was 1.9x faster than fp32 on the benchmark's MiniLM cross-encoder
    but let rankings drift (Kendall tau down to 0.985 per query); bf16 in the feed-forward
    blocks alone was 1.4x faster and kept tau >= 0.99 and |score change| <= 0.0035 on all 43
    TREC DL 2019 queries (README, "Numerics"; tests/test_numerics.py).
    """
    dtype = resolve_dtype(requested, device, preferred)
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        from rerankd.core.cpu import detect

        cpu = detect()
        if dtype == torch.bfloat16 and not cpu.native_bf16:
            log.warning(
                "--dtype bfloat16 on a CPU without native bf16 (%s): it is emulated, slower than fp32", cpu.describe()
            )
        return Placement(device, torch.float32, feed_forward_dtype=dtype)
    return Placement(device, dtype)


def hardware_report() -> dict:
    """The CPU as rerankd sees it (core/cpu.py), PyTorch's kernel level and the CPU backends present."""
    from rerankd.core.cpu import detect
    from rerankd.models import openvino_runtime

    report = detect().summary()
    report["torch_capability"] = torch.backends.cpu.get_cpu_capability()
    report["torch_threads"] = torch.get_num_threads()
    report["openvino"] = openvino_runtime.version() if openvino_runtime.available() else None
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name()
    return report


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
    # CPU mixed precision: feed-forward linear layers in this dtype, the rest in `dtype`.
    feed_forward_dtype: torch.dtype | None = None

    @property
    def dtype_name(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        if self.feed_forward_dtype is not None:
            return f"{name}+{str(self.feed_forward_dtype).removeprefix('torch.')}-feed-forward"
        return name
