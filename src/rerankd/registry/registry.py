"""What is loaded where: named models and adapters, their lifecycle, and every change to them.

A model's name is what clients send; `name:adapter` picks one of its LoRA adapters. A name
has at most one current version; requests (and every batch the engine dispatches for them)
hold the version they started on, so changing versions never fails a request:

* on-demand load: the first request for an unloaded model starts its load and waits up to
  `load_timeout`; later requests share that load;
* hot-swap (`put_model` on a serving name): the new version loads beside the old one and
  becomes current in one step once ready; the old one is retired (freed once drained);
* eviction: to fit a load under `--max-loaded-models` / `--memory-budget`, the least recently
  used model or adapter that nothing holds is freed (see capacity.py);
* unload: the name stops resolving at once; the weights go once in-flight work is done.

The registry never batches or scores: the engine does, through `use`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rerankd.core.compute import ComputeThreads
from rerankd.core.errors import AdapterNotFound, InvalidRequest, ModelLoading, ModelNotFound, RerankdError
from rerankd.core.observer import NO_OBSERVER, ModelEvent, Observer
from rerankd.models.catalog import catalog
from rerankd.models.runtime import hardware_report
from rerankd.registry.adapter_loads import AdapterLoads
from rerankd.registry.adapters import LoadedAdapter
from rerankd.registry.capacity import Capacity, Resident
from rerankd.registry.entries import LoadedModel, ModelEntry, RegistrySettings, check_model_name, make_spec
from rerankd.registry.failures import LoadFailure, load_failed, translated_load_errors
from rerankd.registry.lifecycle import Lifecycle, State
from rerankd.registry.reports import describe_adapter, describe_catalog_model, describe_model
from rerankd.registry.residents import describe_residents
from rerankd.registry.sources import check_inside_roots
from rerankd.registry.versions import Versions

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "ModelEntry", "ModelRegistry", "RegistrySettings"]


class ModelRegistry:
    """Named models, their adapters, and their lifecycle."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        compute: ComputeThreads | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self.settings = settings or RegistrySettings()
        self.compute = compute or ComputeThreads()
        self.observer = observer  # told of loads, swaps, evictions, failures, unloads (metrics)
        self._entries: dict[str, ModelEntry] = {}
        self.capacity = Capacity(self.settings.max_loaded_models, self.settings.memory_budget, self._residents)
        self.versions = Versions(self.settings, self.capacity, self.compute)
        self.adapters = AdapterLoads(self.settings, self.versions, observer)

    # ----------------------------------------------------------------------------- names
    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entry(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None or entry.lifecycle.gone:
            raise ModelNotFound(f"model '{name}' is not served here", param="model")
        return entry

    def resolve(self, model_id: str, adapter: str | None = None) -> tuple[str, str | None, str]:
        """(model name, adapter or None, request field naming the adapter) for a request's model id.

        `name:adapter` picks an adapter (errors about it name `model`); so does `adapter`, the
        request's own adapter option (errors name `adapter`). No side effects.
        """
        name, chosen, param = model_id, None, "model"
        entry = self._entries.get(model_id)
        if entry is None or entry.lifecycle.gone:
            base, sep, suffix = model_id.rpartition(":")
            known = self._entries.get(base) if sep else None
            if known is None or known.lifecycle.gone:
                raise ModelNotFound(f"model '{model_id}' is not served here", param="model")
            name, chosen = base, suffix
        if adapter is not None:
            if chosen is not None and chosen != adapter:
                raise InvalidRequest(
                    f"adapter '{adapter}' contradicts the adapter '{chosen}' in the model id '{model_id}'",
                    param="adapter",
                )
            chosen, param = adapter, "adapter"
        return name, chosen, param

    def register(
        self,
        name: str,
        source: str,
        *,
        allow_download: bool = True,
        revision: str | None = None,
        lazy: bool = False,
    ) -> ModelEntry:
        """Declare `name` (loaded later, by `load` or on first use)."""
        entry = ModelEntry(
            name=name,
            source=source,
            spec=make_spec(name, source),
            allow_download=allow_download,
            lifecycle=Lifecycle(f"model '{name}'"),
            revision=revision,
            lazy=lazy,
        )
        self._entries[name] = entry
        return entry

    def register_on_demand(self, model_id: str) -> bool:
        """With `--allow-download`, a catalog id never registered becomes a lazy model; True if it did."""
        if model_id in self._entries or not self.settings.allow_download or model_id not in catalog():
            return False
        self.register(model_id, model_id, allow_download=True, lazy=True)
        log.info("model %s requested: loading it on demand from the catalog", model_id)
        return True

    # ------------------------------------------------------------------------------- load
    async def load(self, name: str) -> LoadedModel:
        """Load `name` if it is not loaded; concurrent callers share one load."""
        entry = self.entry(name)
        if entry.current is not None:
            return entry.current
        if entry.load_task is None or entry.load_task.done():
            entry.load_task = asyncio.create_task(self._load(entry), name=f"load:{name}")
        return await asyncio.shield(entry.load_task)

    async def _load(self, entry: ModelEntry) -> LoadedModel:
        if entry.lifecycle.gone:  # deleted between this task's creation and its first step
            raise ModelNotFound(f"model '{entry.name}' is not served here", param="model")
        entry.lifecycle.move(State.LOADING)
        entry.failure = None
        started = time.perf_counter()
        log.info("loading model %s from %s ...", entry.name, entry.source)  # "... loaded in 12.3s" ends it

        def gone() -> bool:  # deleted while it loads
            return entry.lifecycle.gone

        def failed(failure: LoadFailure) -> None:
            entry.failure = failure
            self.observer.model_event(entry.name, ModelEvent.FAILED)
            if not gone():
                entry.lifecycle.move(State.FAILED)

        def no_room() -> None:
            if not gone():
                entry.lifecycle.move(State.REGISTERED)  # nothing wrong with it: a later request retries

        try:
            with translated_load_errors(f"model '{entry.name}'", param="model", on_failure=failed, on_no_room=no_room):
                version = await self.versions.bring_up(
                    entry.name,
                    entry.source,
                    entry.revision,
                    entry.spec,
                    [],
                    slot=True,
                    allow_download=entry.allow_download,
                    abandoned=gone,
                )
        except RerankdError:
            if gone():  # deleted while it loaded: whatever went wrong, the answer is that it is gone
                raise ModelNotFound(f"model '{entry.name}' was unloaded while it loaded", param="model") from None
            raise
        if gone():
            self.versions.evict(version)
            raise ModelNotFound(f"model '{entry.name}' was unloaded while it loaded", param="model")
        entry.current = version
        entry.lifecycle.move(State.LOADED)
        entry.loads += 1
        entry.last_used = time.monotonic()
        self.observer.model_event(entry.name, ModelEvent.LOADED)
        self.capacity.trim(frozenset({entry.name}))
        log.info(
            "model %s loaded from %s (%s, %s on %s, %.1f MB) in %.1fs",
            entry.name,
            entry.source,
            version.spec.family,
            version.placement.dtype_name,
            version.placement.device,
            version.memory_bytes / 1e6,
            time.perf_counter() - started,
        )
        return version

    # -------------------------------------------------------------------------------- use
    @asynccontextmanager
    async def use(self, model_id: str, adapter: str | None = None) -> AsyncIterator[LoadedModel | LoadedAdapter]:
        """What scores one request (a version, or an adapter on it): loaded first if needed, held until done."""
        self.register_on_demand(model_id)
        name, adapter, param = self.resolve(model_id, adapter)
        entry = self._entries[name]
        version = await self._acquire_version(entry)
        version.requests += 1
        try:
            served: LoadedModel | LoadedAdapter = version
            if adapter is not None:
                served = await self.adapters.acquire(entry, version, adapter, param)
            entry.requests_served += 1
            entry.last_used = time.monotonic()
            try:
                yield served
            finally:
                if served is not version:
                    served.holds.release()
        finally:
            version.requests -= 1
            version.holds.release()

    async def _acquire_version(self, entry: ModelEntry) -> LoadedModel:
        while True:
            if entry.lifecycle.gone:
                raise ModelNotFound(f"model '{entry.name}' is not served here", param="model")
            if entry.current is not None:
                entry.current.holds.acquire()  # no await since reading it: it cannot have changed
                return entry.current
            entry.waiters += 1
            try:
                await self._await_load(entry)
            finally:
                entry.waiters -= 1

    async def _await_load(self, entry: ModelEntry) -> None:
        if entry.state is State.FAILED and entry.failure is not None:
            raise load_failed(f"model '{entry.name}'", entry.failure, param="model")
        try:
            await asyncio.wait_for(self.load(entry.name), timeout=self.settings.load_timeout)
        except TimeoutError:
            raise ModelLoading(
                f"model '{entry.name}' is still loading; retry shortly",
                param="model",
                retry_after=max(1.0, min(self.settings.load_timeout, 5.0)),
            ) from None

    # ------------------------------------------------------------------------------ admin
    async def put_model(self, name: str, source: str, revision: str | None = None) -> dict:
        """Load `name` from `source`, or hot-swap it when it is serving; its info once the new version serves."""
        check_model_name(name)
        check_inside_roots(source, self.settings.model_roots)  # before the name or the disk is touched
        while True:
            entry = self._entries.get(name)
            if entry is None:
                entry = self.register(name, source, allow_download=self.settings.allow_download, revision=revision)
            async with entry.admin:
                if entry.lifecycle.gone:
                    continue  # it was unloaded while this waited: register it afresh
                if entry.load_task is not None and not entry.load_task.done():
                    await asyncio.wait([entry.load_task])
                if entry.current is None:
                    entry.source, entry.revision = source, revision
                    entry.spec = make_spec(name, source)
                    entry.allow_download = self.settings.allow_download
                    await self.load(name)
                else:
                    await self._swap(entry, source, revision)
                return self.describe(name)

    async def _swap(self, entry: ModelEntry, source: str, revision: str | None) -> None:
        old = entry.current
        assert old is not None
        entry.swap_source = source
        started = time.perf_counter()
        log.info("hot-swapping model %s to %s ...", entry.name, source)

        def failed(failure: LoadFailure) -> None:
            entry.last_swap_error = failure.message
            self.observer.model_event(entry.name, ModelEvent.FAILED)
            log.error("hot-swap of %s to %s failed; %s keeps serving", entry.name, source, old.source)

        try:
            with translated_load_errors(
                f"model '{entry.name}' from {source!r}",
                param="source",
                on_failure=failed,
                consequence="the previous version keeps serving",
            ):
                new = await self.versions.bring_up(
                    entry.name,
                    source,
                    revision,
                    make_spec(entry.name, source),
                    list(old.adapters.values()),
                    slot=False,
                    allow_download=self.settings.allow_download,
                )
        finally:
            entry.swap_source = None
        # The switch: one synchronous step, so every request that starts from here on gets `new`.
        entry.current = new
        entry.source, entry.revision, entry.spec = source, revision, make_spec(entry.name, source)
        entry.swaps += 1
        entry.loads += 1
        self.observer.model_event(entry.name, ModelEvent.LOADED)
        self.observer.model_event(entry.name, ModelEvent.SWAPPED)
        entry.last_swap_error = None
        entry.last_used = time.monotonic()
        in_flight = old.holds.count
        self.versions.retire(old)
        self.capacity.trim(frozenset({entry.name}))
        log.info(
            "model %s hot-swapped to %s in %.1fs; the old version finishes %d in-flight holds",
            entry.name,
            source,
            time.perf_counter() - started,
            in_flight,
        )

    async def unload(self, name: str) -> None:
        """Stop taking requests for `name` now, let in-flight work finish, then free the weights."""
        entry = self.entry(name)
        async with entry.admin:
            if entry.lifecycle.gone:
                raise ModelNotFound(f"model '{name}' is not served here", param="model")
            entry.lifecycle.move(State.DRAINING)
            version, entry.current = entry.current, None
            try:
                if version is not None:
                    await self.versions.retire_and_wait(version)
            finally:
                entry.lifecycle.move(State.UNLOADED)
                if self._entries.get(name) is entry:
                    del self._entries[name]
        self.observer.model_event(name, ModelEvent.UNLOADED)
        log.info("model %s unloaded", name)

    async def put_adapter(self, name: str, adapter: str, source: str) -> dict:
        """Load (or replace, without failing requests) LoRA adapter `adapter` of model `name`."""
        check_inside_roots(source, self.settings.model_roots, local=True)
        entry = self.entry(name)
        async with entry.admin:
            version = await self._acquire_version(entry)
            try:
                await self.adapters.put(entry, version, adapter, source)
            finally:
                version.holds.release()
        return self.describe_adapter(name, adapter)

    async def unload_adapter(self, name: str, adapter: str) -> None:
        """Stop taking requests for `name:adapter`, let in-flight ones finish, then free it."""
        entry = self.entry(name)
        async with entry.admin:
            await self.adapters.unload(entry, adapter)

    # -------------------------------------------------------------------------- eviction
    def _evict_model(self, entry: ModelEntry) -> None:
        version, entry.current = entry.current, None
        entry.lifecycle.move(State.REGISTERED)
        entry.evictions += 1
        self.observer.model_event(entry.name, ModelEvent.EVICTED)
        self.adapters.model_evicted(entry)
        if version is not None:
            self.versions.evict(version)

    def _residents(self, protect: frozenset[str]) -> list[Resident]:
        return describe_residents(
            self._entries.values(), self.versions.retiring, protect, self._evict_model, self.adapters.evict
        )

    async def close(self) -> None:
        for name in list(self._entries):
            entry = self._entries.get(name)
            if entry is not None and not entry.lifecycle.gone:
                await self.unload(name)
        self.versions.cancel_background()

    # --------------------------------------------------------------------------- reports
    def current(self, name: str) -> LoadedModel | None:
        """The version serving `name` now (None when not loaded)."""
        entry = self._entries.get(name)
        return entry.current if entry is not None else None

    def describe_catalog(self, model_id: str | None = None) -> list[dict]:
        """Catalog models not registered here (all, or just `model_id`): listed as available to load."""
        ids = catalog() if model_id is None else [model_id] if model_id in catalog() else []
        return [describe_catalog_model(catalog()[i]) for i in ids if i not in self._entries]

    def describe(self, name: str) -> dict:
        """What `GET /v1/models/{name}` reports (unloading models included)."""
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not served here", param="model")
        return describe_model(entry)

    def describe_adapter(self, name: str, adapter: str) -> dict:
        entry = self.entry(name)
        adapter_entry = entry.adapters.get(adapter)
        if adapter_entry is None:
            raise AdapterNotFound(f"model '{name}' has no adapter '{adapter}'", param="adapter")
        return describe_adapter(entry, adapter_entry)

    def hardware(self) -> dict:
        """What `GET /v1/models` says about the machine every dtype and backend choice starts from."""
        return hardware_report()

    def memory(self) -> dict:
        """Totals for `GET /v1/models`: what is resident against the limits."""
        used, slots = self.capacity.usage()
        return {
            "used_bytes": used,
            "budget_bytes": self.settings.memory_budget,
            "loaded_models": slots,
            "max_loaded_models": self.settings.max_loaded_models,
        }
