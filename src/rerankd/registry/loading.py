"""The slow parts of a load, run in worker threads: find the weights, size them, build the network.

Nothing here touches the event loop or a network another thread is using: `build` attaches
adapters to a network no request can see yet.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rerankd.models import ExecutionOptions, Family, build_family
from rerankd.models.catalog import ModelSpec, detect_spec
from rerankd.models.execution import likely_compiled
from rerankd.models.lora import LoraAdapter, LoraHost
from rerankd.models.runtime import Placement, resolve_device, resolve_placement
from rerankd.models.safetensors_files import refuse_pickled_weights
from rerankd.registry.budget import estimate_weight_bytes
from rerankd.registry.sources import resolve_source

_keys = itertools.count(1)


def adapter_key(name: str) -> str:
    """A key no other attachment on any network ever used: reloads and replacements never collide."""
    return f"{name}#{next(_keys)}"


@dataclass
class Located:
    directory: Path
    spec: ModelSpec
    placement: Placement
    estimate: int
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)


@dataclass
class Built:
    family: Family
    memory_bytes: int
    host: LoraHost | None
    adapters: list[tuple[str, str, LoraAdapter, int]]  # (name, key, weights, bytes)


def locate(
    name: str,
    source: str,
    revision: str | None,
    spec: ModelSpec | None,
    *,
    device: str,
    dtype: str,
    allow_download: bool,
    roots: Sequence[Path] = (),
    allow_pickle: bool = False,
    execution: ExecutionOptions | None = None,
) -> Located:
    """Find the weights (downloading only if allowed) and decide how to place them."""
    directory = resolve_source(source, allow_download=allow_download, revision=revision, roots=roots)
    if not allow_pickle:
        refuse_pickled_weights(directory)
    spec = spec or detect_spec(name, source, directory)
    placement_device = resolve_device(device)
    placement = resolve_placement(dtype, placement_device, spec.dtype)
    execution = execution or ExecutionOptions()
    estimate = estimate_weight_bytes(directory, placement.dtype)
    if likely_compiled(spec.family, placement, execution):
        estimate *= 2  # the compiled copy beside the torch weights (kept for LoRA adapters)
    return Located(directory, spec, placement, estimate, execution)


def build(located: Located, adapters: list[tuple[str, LoraAdapter]]) -> Built:
    """Read and place the weights, then attach `adapters` (a hot-swap re-applies the old version's)."""
    family = build_family(located.spec, located.placement, located.directory, located.execution)
    # A compiled backend holds its own copy of the weights (the torch ones stay for adapters).
    memory = family.parameters_bytes() + int(family.execution.get("compiled_bytes", 0))
    host = None
    attached: list[tuple[str, str, LoraAdapter, int]] = []
    if adapters:
        if not family.supports_adapters:
            family.close()
            raise ValueError(f"model family {located.spec.family!r} does not support the LoRA adapters it serves")
        host = LoraHost(family.network)
        for name, weights in adapters:
            key = adapter_key(name)
            try:
                attached.append((name, key, weights, host.attach(key, weights)))
            except Exception as error:
                family.close()
                raise ValueError(f"adapter '{name}' cannot be applied to the new weights: {error}") from error
    return Built(family, memory, host, attached)


def adapter_estimate(weights: LoraAdapter, dtype: torch.dtype) -> int:
    """Bytes an adapter read from disk will take once attached in `dtype` (for the budget)."""
    size = torch.empty((), dtype=dtype).element_size()
    count = sum(a.numel() + b.numel() for a, b, _ in weights.lora.values()) + sum(
        t.numel() for t in weights.saved.values()
    )
    return count * size
