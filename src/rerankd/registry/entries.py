"""The registry's records: settings, a name clients can ask for, and one loaded version of it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from rerankd.core.errors import InvalidRequest
from rerankd.core.holds import Holds
from rerankd.models import ExecutionOptions, Family
from rerankd.models.catalog import ModelSpec, lookup
from rerankd.models.lora import LoraHost
from rerankd.models.runtime import Placement
from rerankd.registry.adapters import AdapterEntry, LoadedAdapter
from rerankd.registry.failures import LoadFailure
from rerankd.registry.lifecycle import Lifecycle, State


@dataclass(frozen=True)
class RegistrySettings:
    """Process-wide choices for every model the registry loads."""

    device: str = "auto"
    dtype: str = "auto"
    # "exact" (reference scores) or "fast" (calibrated reduced precision); see models/execution.py.
    precision: str = "exact"
    # CPU execution backend for encoder families: "auto", "torch" or "openvino".
    backend: str = "auto"
    # Compiled models and calibrations (None: $XDG_CACHE_HOME/rerankd).
    cache_dir: Path | None = None
    # JSONL of {query, documents} for --precision fast's calibration (None: the built-in set).
    calibration_data: Path | None = None
    # Catalog ids never registered load on first request only when set; also governs
    # whether sources given at run time (PUT) may be fetched from the hub.
    allow_download: bool = False
    load_timeout: float = 60.0
    max_loaded_models: int | None = None
    memory_budget: int | None = None
    # With roots, a local source (model or adapter) must resolve inside one (sources.py).
    model_roots: tuple[Path, ...] = ()
    # Pickled weights (pytorch_model.bin, adapter_model.bin) load only when set.
    allow_pickle: bool = False

    @property
    def execution(self) -> ExecutionOptions:
        return ExecutionOptions(self.precision, self.backend, self.cache_dir, self.calibration_data)


@dataclass(eq=False)  # identity: versions are hashed and compared by `is` (the engine keys schedulers by them)
class LoadedModel:
    """One loaded version of a model: its network (in a family) and the adapters attached to it.

    `holds` counts the requests and the dispatched batches that use it; the weights are freed
    only once it is zero (lifecycle `draining` -> `unloaded`).
    """

    name: str
    spec: ModelSpec
    family: Family
    placement: Placement
    directory: Path
    source: str
    revision: str | None
    loaded_at: float
    memory_bytes: int
    holds: Holds
    lifecycle: Lifecycle
    requests: int = 0  # requests in flight on it (its holds also count their dispatched batches)
    host: LoraHost | None = None
    adapters: dict[str, LoadedAdapter] = field(default_factory=dict)
    adapter_loads: dict[str, asyncio.Task] = field(default_factory=dict)
    retiring_adapters: list[LoadedAdapter] = field(default_factory=list)

    @property
    def pins(self) -> tuple[Holds, ...]:
        return (self.holds,)

    @property
    def adapter_bytes(self) -> int:
        return sum(a.memory_bytes for a in self.adapters.values())

    @property
    def total_bytes(self) -> int:
        return self.memory_bytes + self.adapter_bytes + sum(a.memory_bytes for a in self.retiring_adapters)


@dataclass(eq=False)
class ModelEntry:
    """A name clients can ask for, whether or not it is loaded right now."""

    name: str
    source: str
    spec: ModelSpec | None
    allow_download: bool
    lifecycle: Lifecycle
    revision: str | None = None
    lazy: bool = False
    current: LoadedModel | None = None
    failure: LoadFailure | None = None
    requests_served: int = 0
    last_used: float = field(default_factory=time.monotonic)
    load_task: asyncio.Task | None = None
    loads: int = 0
    evictions: int = 0
    swaps: int = 0
    swap_source: str | None = None  # a hot-swap to this source is loading
    last_swap_error: str | None = None
    waiters: int = 0  # requests waiting for this model's load: it must not be evicted under them
    adapters: dict[str, AdapterEntry] = field(default_factory=dict)
    admin: asyncio.Lock = field(default_factory=asyncio.Lock)  # one admin change at a time

    @property
    def state(self) -> State:
        return self.lifecycle.state


def make_spec(name: str, source: str) -> ModelSpec | None:
    """The catalog's spec when NAME (or else SOURCE) is a catalog id; None means detect at load."""
    known = lookup(name) or lookup(source)
    return known.with_source(name, source) if known is not None else None


def check_model_name(name: str) -> None:
    """Names given at run time must stay addressable as `/v1/models/{name}` and `name:adapter`."""
    bad = (
        not name
        or len(name) > 256
        or ":" in name
        or name.startswith("/")
        or name.endswith("/")
        or "//" in name
        or f"/{name}/".find("/adapters/") >= 0
        or any(ch.isspace() or ord(ch) < 32 for ch in name)
    )
    if bad:
        raise InvalidRequest(
            f"model name {name!r} is not usable: no ':', whitespace, empty segments or '/adapters/' segment, "
            f"at most 256 characters",
            param="name",
        )
