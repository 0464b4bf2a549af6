"""FLOP accounting: the machine's measured matmul rate and a transformer's FLOPs per sequence."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from rerankd.bench.progress import QUIET, Progress
from rerankd.core.cpu import CpuInfo

# Bounded by work, not by a clock: on a CPU whose bf16 is emulated one 2048³ product took a
# minute, so only native dtypes are measured, on 1024³ products, at most ROUNDS × RUNS of them.
CPU_SIZE, GPU_SIZE = 1024, 8192
ROUNDS, RUNS = 3, 8
ROUND_SECONDS = 0.5  # a round also stops early once this long has passed (fast enough already)


@dataclass(frozen=True)
class MatmulRate:
    dtype: str
    flops_per_s: float
    size: int
    products: int


def native_dtypes(device: torch.device, cpu: CpuInfo) -> list[torch.dtype]:
    """The float dtypes this device multiplies in hardware: fp32, plus bf16 where native (and fp16 on GPUs)."""
    if device.type == "cuda":
        dtypes = [torch.float32, torch.float16]
        return [*dtypes, torch.bfloat16] if torch.cuda.is_bf16_supported() else dtypes
    if device.type == "cpu":
        return [torch.float32, torch.bfloat16] if cpu.native_bf16 else [torch.float32]
    return [torch.float32]


def matmul_rate(dtype: torch.dtype, device: torch.device, size: int | None = None) -> MatmulRate:
    """Sustained FLOP/s of square matrix multiplies in `dtype` on `device`: the best of `ROUNDS` rounds.

    The best round, so that a moment of contention does not set the reference.
    """
    size = size or (CPU_SIZE if device.type == "cpu" else GPU_SIZE)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    _sync(device)
    best, products = 0.0, 0
    for _ in range(ROUNDS):
        runs = 0
        start = time.perf_counter()
        while runs < RUNS and (runs == 0 or time.perf_counter() - start < ROUND_SECONDS):
            a @ b
            _sync(device)
            runs += 1
        products += runs
        best = max(best, 2 * size**3 * runs / (time.perf_counter() - start))
    return MatmulRate(_name(dtype), best, size, products)


def matmul_rates(device: torch.device, cpu: CpuInfo, progress: Progress = QUIET) -> list[MatmulRate]:
    rates = []
    for dtype in native_dtypes(device, cpu):
        with progress.stage(f"matmul {_name(dtype)}"):
            rates.append(matmul_rate(dtype, device))
    return rates


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encoder_flops(config: dict, tokens: int, sequences: int) -> float:
    """Forward FLOPs of a BERT-style encoder reading `tokens` real tokens in `sequences` sequences.

    Per token and layer: QKV and output projections (4·h²) plus the feed-forward (2·h·i), two
    FLOPs per multiply-add, plus attention scores and mixing (2·2·L·h at the mean length L).
    Padding is not counted (it is waste, not work); embeddings and the classifier head are
    negligible and left out.
    """
    hidden = int(config.get("hidden_size", 0))
    inner = int(config.get("intermediate_size", 4 * hidden))
    layers = int(config.get("num_hidden_layers", 0))
    mean_length = tokens / max(sequences, 1)
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inner) + 4 * mean_length * hidden
    return float(layers * per_token * tokens)
