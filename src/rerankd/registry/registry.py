"""What is loaded where: named models, their state, and the loads that bring them up.

A model's name is what clients send; its spec says how to score it; its current version is
the loaded network with its scheduler. Loads run in worker threads (never on the event loop
or a compute thread), so a slow or failing load never stalls other models.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from rerankd.engine.request import ModelLoadFailed, ModelLoading, ModelNotFound
from rerankd.engine.scheduler import Scheduler, SchedulerConfig
from rerankd.models import Family, build_family
from rerankd.models.catalog import ModelSpec, detect_spec, lookup
from rerankd.registry.devices import ComputeThreads
from rerankd.registry.sources import resolve_source
from rerankd.runtime import Placement, resolve_device, resolve_dtype

log = logging.getLogger(__name__)


class ModelState(str, Enum):
    AVAILABLE = "available"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"
    FAILED = "failed"


@dataclass(frozen=True)
class RegistrySettings:
    """Process-wide choices for every model the registry loads."""

    device: str = "auto"
    dtype: str = "auto"
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    allow_download: bool = False
    load_timeout: float = 60.0


@dataclass
class LoadedModel:
    """One loaded version of a model: its network (in a family) and the scheduler feeding it."""

    spec: ModelSpec
    family: Family
    scheduler: Scheduler
    placement: Placement
    directory: Path
    loaded_at: float
    memory_bytes: int
    in_use: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    def acquire(self) -> None:
        self.in_use += 1
        self._idle.clear()

    def release(self) -> None:
        self.in_use -= 1
        if self.in_use == 0:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until no request holds this version (queued work included)."""
        await self._idle.wait()


@dataclass
class ModelEntry:
    """A name clients can ask for, whether or not it is loaded right now."""

    name: str
    source: str
    spec: ModelSpec | None
    allow_download: bool
    revision: str | None = None
    state: ModelState = ModelState.AVAILABLE
    current: LoadedModel | None = None
    error: str | None = None
    error_class: str | None = None
    requests_served: int = 0
    last_used: float = 0.0
    load_task: asyncio.Task | None = None


def make_spec(name: str, source: str) -> ModelSpec | None:
    """The catalog's spec when NAME (or else SOURCE) is a catalog id; None means detect at load."""
    known = lookup(name) or lookup(source)
    return known.with_source(name, source) if known is not None else None


class ModelRegistry:
    """Named models and their lifecycle."""

    def __init__(self, settings: RegistrySettings | None = None, compute: ComputeThreads | None = None) -> None:
        self.settings = settings or RegistrySettings()
        self.compute = compute or ComputeThreads()
        self._entries: dict[str, ModelEntry] = {}

    # ----------------------------------------------------------------------------- queries
    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not served here", param="model")
        return entry

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    # -------------------------------------------------------------------------- lifecycle
    def register(
        self, name: str, source: str, *, allow_download: bool = True, revision: str | None = None
    ) -> ModelEntry:
        """Declare `name` (loaded later, by `load` or on first use)."""
        entry = ModelEntry(
            name=name,
            source=source,
            spec=make_spec(name, source),
            allow_download=allow_download,
            revision=revision,
        )
        self._entries[name] = entry
        return entry

    async def load(self, name: str) -> LoadedModel:
        """Load `name` if it is not loaded; concurrent callers share one load."""
        entry = self.entry(name)
        if entry.state is ModelState.LOADED and entry.current is not None:
            return entry.current
        if entry.load_task is None or entry.load_task.done():
            entry.load_task = asyncio.create_task(self._load(entry), name=f"load:{name}")
        return await asyncio.shield(entry.load_task)

    async def _load(self, entry: ModelEntry) -> LoadedModel:
        entry.state = ModelState.LOADING
        entry.error = entry.error_class = None
        started = time.perf_counter()
        try:
            loaded = await asyncio.to_thread(self._build, entry)
        except Exception as error:
            entry.state = ModelState.FAILED
            entry.error = f"{type(error).__name__}: {error}"
            entry.error_class = type(error).__name__
            log.error("model %s failed to load from %s: %s", entry.name, entry.source, entry.error)
            raise ModelLoadFailed(
                f"model '{entry.name}' failed to load: {entry.error}",
                param="model",
                extra={"error_class": entry.error_class, "permanent": True},
            ) from error
        entry.current = loaded
        entry.state = ModelState.LOADED
        log.info(
            "model %s loaded from %s (%s, %s on %s) in %.1fs",
            entry.name,
            entry.source,
            loaded.spec.family,
            loaded.placement.dtype_name,
            loaded.placement.device,
            time.perf_counter() - started,
        )
        return loaded

    def _build(self, entry: ModelEntry) -> LoadedModel:
        """Resolve, read and place the weights; runs in a worker thread."""
        directory = resolve_source(entry.source, allow_download=entry.allow_download, revision=entry.revision)
        spec = entry.spec or detect_spec(entry.name, entry.source, directory)
        device = resolve_device(self.settings.device)
        placement = Placement(device, resolve_dtype(self.settings.dtype, device, spec.dtype))
        family = build_family(spec, placement, directory)
        scheduler = Scheduler(family, self.compute.executor(device), self.settings.scheduler)
        return LoadedModel(
            spec=spec,
            family=family,
            scheduler=scheduler,
            placement=placement,
            directory=directory,
            loaded_at=time.time(),
            memory_bytes=family.parameters_bytes(),
        )

    async def unload(self, name: str) -> None:
        """Stop taking requests for `name`, let queued work finish, then free the weights."""
        entry = self.entry(name)
        current = entry.current
        entry.state = ModelState.UNLOADING
        del self._entries[name]
        if current is not None:
            await current.drain()
            current.scheduler.close()
            current.family.close()

    async def close(self) -> None:
        for name in list(self._entries):
            await self.unload(name)
        self.compute.shutdown()

    # ------------------------------------------------------------------------------- use
    @asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[LoadedModel]:
        """The loaded version of `name` for one request, loading it first if needed."""
        entry = self.entry(name)
        loaded = entry.current if entry.state is ModelState.LOADED else None
        if loaded is None:
            loaded = await self._await_load(entry)
        entry.requests_served += 1
        entry.last_used = time.monotonic()
        loaded.acquire()
        try:
            yield loaded
        finally:
            loaded.release()

    async def _await_load(self, entry: ModelEntry) -> LoadedModel:
        if entry.state is ModelState.FAILED:
            raise ModelLoadFailed(
                f"model '{entry.name}' failed to load: {entry.error}",
                param="model",
                extra={"error_class": entry.error_class, "permanent": True},
            )
        try:
            return await asyncio.wait_for(self.load(entry.name), timeout=self.settings.load_timeout)
        except asyncio.TimeoutError:
            raise ModelLoading(
                f"model '{entry.name}' is still loading; retry shortly", param="model", retry_after=5
            ) from None

    # --------------------------------------------------------------------------- reports
    def describe(self, name: str) -> dict:
        """What `GET /v1/models/{name}` reports."""
        entry = self.entry(name)
        spec = entry.current.spec if entry.current else entry.spec
        info: dict = {
            "id": entry.name,
            "name": entry.name,
            "object": "model",
            "source": entry.source,
            "state": entry.state.value,
            "loaded": entry.state is ModelState.LOADED,
            "family": spec.family if spec else None,
            "catalog_id": spec.catalog_id if spec else None,
            "requests_served": entry.requests_served,
        }
        if entry.current is not None:
            family = entry.current.family
            info.update(
                device=str(entry.current.placement.device),
                dtype=entry.current.placement.dtype_name,
                memory_bytes=entry.current.memory_bytes,
                max_sequence_length=family.max_length,
                accepts_instruction=family.accepts_instruction,
                queue={
                    "active_requests": entry.current.scheduler.active_requests,
                    "batches": entry.current.scheduler.stats.batches,
                    "padding_waste": round(entry.current.scheduler.stats.padding_waste, 4),
                    "real_tokens": entry.current.scheduler.stats.real_tokens,
                    "padded_tokens": entry.current.scheduler.stats.padded_tokens,
                },
            )
        if entry.state is ModelState.FAILED:
            info["last_error"] = {"message": entry.error, "error_class": entry.error_class}
        return info
