"""The machine a bench ran on: CPU features and caps, torch, and the matmul rate model FLOP/s are held to."""

from __future__ import annotations

import os
import sys

import torch

from rerankd.bench.flops import matmul_rates
from rerankd.bench.progress import QUIET, Progress
from rerankd.core.cpu import detect
from rerankd.models.runtime import Placement


def machine_info(placement: Placement, progress: Progress = QUIET) -> dict:
    """What the report's machine line prints; `matmul_reference` is the fastest native dtype's rate."""
    device = placement.device
    cpu = detect()
    info: dict = {
        "device": str(device),
        "dtype": placement.dtype_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": sys.version.split()[0],
        "cpu": cpu.model,
        "cpu_description": cpu.describe(),
        "cpu_summary": cpu.summary(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    rates = []
    for rate in matmul_rates(device, cpu, progress):
        rates.append(rate)
        info[f"matmul_flops_{_short(rate.dtype)}"] = rate.flops_per_s
    best = max(rates, key=lambda rate: rate.flops_per_s)
    info["matmul_rates"] = [vars(rate) for rate in rates]
    info["matmul_reference"] = {"dtype": best.dtype, "flops_per_s": best.flops_per_s}
    return info


def _short(dtype: str) -> str:
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
