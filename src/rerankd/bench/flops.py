"""FLOP accounting: the machine's measured matmul rate and a transformer's FLOPs per sequence."""

from __future__ import annotations

import time

import torch


def matmul_rate(dtype: torch.dtype, device: torch.device, seconds: float = 1.5) -> float:
    """Sustained FLOP/s of square matrix multiplies in `dtype` on `device` (measured now).

    The best of three windows, so that a moment of contention does not set the reference.
    """
    size = 2048 if device.type == "cpu" else 8192
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    best = 0.0
    for _ in range(3):
        runs = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            runs += 1
            _sync(device)
        best = max(best, 2 * size**3 * runs / (time.perf_counter() - start))
    return best


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
