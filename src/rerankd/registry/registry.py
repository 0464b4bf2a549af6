"""What is loaded where: named models and adapters, their states, and every change to them.

A model's name is what clients send; `name:adapter` picks one of its LoRA adapters. A name
has at most one current version (the loaded network with its schedulers); requests hold the
version they started on until their last batch, so changing versions never fails a request:

* on-demand load: the first request for an unloaded model starts its load and waits up to
  `load_timeout`; later requests share that load;
* hot-swap (`put_model` on a serving name): the new version loads beside the old one and
  becomes current in one step once ready; the old one finishes its in-flight requests and
  is then freed;
* eviction: to fit a load under `--max-loaded-models` / `--memory-budget`, the least recently
  used model or adapter that no request holds is freed (see capacity.py);
* unload: the name disappears at once; the weights go once in-flight work is done.

Every load runs in worker threads (adapter attachment on the compute thread); a load that
fails marks only its own name failed, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch

from rerankd.core.compute import ComputeThreads
from rerankd.core.errors import (
    AdapterLoading,
    AdapterNotFound,
    InvalidRequest,
    ModelLoadFailed,
    ModelLoading,
    ModelNotFound,
    NoCapacity,
    RerankdError,
)
from rerankd.core.holds import Holds
from rerankd.engine.scheduler import Scheduler
from rerankd.models.catalog import ModelSpec, catalog
from rerankd.models.lora import LoraAdapter, LoraHost, read_adapter
from rerankd.registry.adapters import AdapterEntry, AdapterFamily, LoadedAdapter, check_adapter_name
from rerankd.registry.capacity import Capacity, Resident
from rerankd.registry.entries import LoadedModel, ModelEntry, RegistrySettings, check_model_name, make_spec
from rerankd.registry.loading import adapter_estimate, adapter_key, build, locate
from rerankd.registry.reports import describe_adapter, describe_model
from rerankd.registry.state import ModelState

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "ModelEntry", "ModelRegistry", "ModelState", "RegistrySettings"]


def _draining(label: str, nbytes: int) -> Resident:
    """An old version or adapter finishing its requests: counts as used, freed soon, never evicted."""
    return Resident(label, nbytes, slot=False, last_used=0.0, busy=True, evict=None, retiring=True)


class ModelRegistry:
    """Named models, their adapters, and their lifecycle."""

    def __init__(self, settings: RegistrySettings | None = None, compute: ComputeThreads | None = None) -> None:
        self.settings = settings or RegistrySettings()
        self.compute = compute or ComputeThreads()
        self._entries: dict[str, ModelEntry] = {}
        self._retiring: set[LoadedModel] = set()
        self._background: set[asyncio.Task] = set()
        self.capacity = Capacity(self.settings.max_loaded_models, self.settings.memory_budget, self._residents)

    # ----------------------------------------------------------------------------- queries
    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None or entry.removed:
            raise ModelNotFound(f"model '{name}' is not served here", param="model")
        return entry

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def resolve(self, model_id: str, adapter: str | None = None) -> tuple[str, str | None, str]:
        """(model name, adapter or None, request field naming the adapter) for a request's model id.

        `name:adapter` picks an adapter (errors about it name `model`); so does `adapter`, the
        request's own adapter option (errors name `adapter`). No side effects: a name that is
        not registered is `ModelNotFound`.
        """
        name, chosen, param = model_id, None, "model"
        entry = self._entries.get(model_id)
        if entry is None or entry.removed:
            base, sep, suffix = model_id.rpartition(":")
            known = self._entries.get(base) if sep else None
            if known is None or known.removed:
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

    def register_on_demand(self, model_id: str) -> bool:
        """With `--allow-download`, a catalog id never registered becomes a lazy model; True if it did."""
        if model_id in self._entries or not self.settings.allow_download or model_id not in catalog():
            return False
        self.register(model_id, model_id, allow_download=True, lazy=True)
        log.info("model %s requested: loading it on demand from the catalog", model_id)
        return True

    # -------------------------------------------------------------------------- registration
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
            revision=revision,
            lazy=lazy,
        )
        self._entries[name] = entry
        return entry

    # ------------------------------------------------------------------------------ loading
    async def load(self, name: str) -> LoadedModel:
        """Load `name` if it is not loaded; concurrent callers share one load."""
        entry = self.entry(name)
        if entry.current is not None:
            return entry.current
        if entry.load_task is None or entry.load_task.done():
            entry.load_task = asyncio.create_task(self._load(entry), name=f"load:{name}")
        return await asyncio.shield(entry.load_task)

    async def _load(self, entry: ModelEntry) -> LoadedModel:
        entry.state = ModelState.LOADING
        entry.error = entry.error_class = None
        started = time.perf_counter()
        try:
            version = await self._bring_up(
                entry, entry.source, entry.revision, entry.spec, [], slot=True, allow_download=entry.allow_download
            )
        except NoCapacity:
            entry.state = ModelState.AVAILABLE
            raise
        except Exception as error:
            entry.state = ModelState.FAILED
            entry.error, entry.error_class = self._reason(error)
            log.error("model %s failed to load from %s: %s", entry.name, entry.source, entry.error)
            raise self._load_failed(entry.name, entry.error, entry.error_class) from error
        if entry.removed:
            self._free(version)
            raise ModelNotFound(f"model '{entry.name}' was unloaded while it loaded", param="model")
        entry.current = version
        entry.state = ModelState.LOADED
        entry.loads += 1
        entry.last_used = time.monotonic()
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

    @staticmethod
    def _reason(error: BaseException) -> tuple[str, str]:
        if isinstance(error, RerankdError):
            return error.message, type(error).__name__
        return f"{type(error).__name__}: {error}", type(error).__name__

    @staticmethod
    def _load_failed(what: str, reason: str | None, error_class: str | None, param: str = "model") -> ModelLoadFailed:
        return ModelLoadFailed(
            f"model '{what}' failed to load: {reason}",
            param=param,
            extra={"error_class": error_class, "permanent": True},
        )

    async def _bring_up(
        self,
        entry: ModelEntry,
        source: str,
        revision: str | None,
        spec: ModelSpec | None,
        adapters: list[LoadedAdapter],
        *,
        slot: bool,
        allow_download: bool,
    ) -> LoadedModel:
        """A new version of `entry` from `source`, with `adapters` re-applied; not yet current."""
        located = await asyncio.to_thread(
            locate,
            entry.name,
            source,
            revision,
            spec,
            device=self.settings.device,
            dtype=self.settings.dtype,
            allow_download=allow_download,
        )
        estimate = located.estimate + sum(a.memory_bytes for a in adapters)
        reservation = await self.capacity.reserve(
            f"model '{entry.name}'",
            estimate,
            slot=slot,
            protect=frozenset({entry.name}),
            timeout=self.settings.load_timeout,
        )
        try:
            built = await asyncio.to_thread(build, located, [(a.name, a.weights) for a in adapters])
        finally:
            self.capacity.release(reservation)
        executor = self.compute.executor(located.placement.device)
        version = LoadedModel(
            name=entry.name,
            spec=located.spec,
            family=built.family,
            scheduler=Scheduler(built.family, executor, self.settings.scheduler),
            placement=located.placement,
            directory=located.directory,
            source=source,
            revision=revision,
            loaded_at=time.time(),
            memory_bytes=built.memory_bytes,
            holds=Holds(self.capacity.notify),
            host=built.host,
        )
        sources = {a.name: a.source for a in adapters}
        for name, key, weights, nbytes in built.adapters:
            version.adapters[name] = self._loaded_adapter(version, name, key, sources[name], weights, nbytes)
        return version

    def _loaded_adapter(
        self, version: LoadedModel, name: str, key: str, source: str, weights: LoraAdapter, nbytes: int
    ) -> LoadedAdapter:
        assert version.host is not None
        view = AdapterFamily(version.family, version.host, key)
        executor = self.compute.executor(version.placement.device)
        return LoadedAdapter(
            name=name,
            key=key,
            source=source,
            weights=weights,
            family=view,
            scheduler=Scheduler(view, executor, self.settings.scheduler),  # type: ignore[arg-type]
            memory_bytes=nbytes,
            loaded_at=time.time(),
            holds=Holds(self.capacity.notify),
        )

    # ---------------------------------------------------------------------------------- use
    @asynccontextmanager
    async def use(self, model_id: str, adapter: str | None = None) -> AsyncIterator[LoadedModel | LoadedAdapter]:
        """What scores one request (a version, or an adapter on it): loaded first if needed, held until done."""
        self.register_on_demand(model_id)
        name, adapter, param = self.resolve(model_id, adapter)
        entry = self._entries[name]
        version = await self._acquire_version(entry)
        try:
            served: LoadedModel | LoadedAdapter = version
            if adapter is not None:
                served = await self._acquire_adapter(entry, version, adapter, param)
            entry.requests_served += 1
            entry.last_used = time.monotonic()
            try:
                yield served
            finally:
                if served is not version:
                    served.holds.release()
        finally:
            version.holds.release()

    async def _acquire_version(self, entry: ModelEntry) -> LoadedModel:
        while True:
            if entry.removed:
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
        if entry.state is ModelState.FAILED:
            raise self._load_failed(entry.name, entry.error, entry.error_class)
        try:
            await asyncio.wait_for(self.load(entry.name), timeout=self.settings.load_timeout)
        except asyncio.TimeoutError:
            raise ModelLoading(
                f"model '{entry.name}' is still loading; retry shortly",
                param="model",
                retry_after=max(1.0, min(self.settings.load_timeout, 5.0)),
            ) from None

    async def _acquire_adapter(self, entry: ModelEntry, version: LoadedModel, name: str, param: str) -> LoadedAdapter:
        while True:
            adapter_entry = entry.adapters.get(name)
            if adapter_entry is None:
                raise AdapterNotFound(f"model '{entry.name}' has no adapter '{name}'", param=param)
            loaded = version.adapters.get(name)
            if loaded is not None:
                loaded.holds.acquire()
                adapter_entry.requests_served += 1
                adapter_entry.last_used = time.monotonic()
                return loaded
            if adapter_entry.state is ModelState.FAILED:
                raise self._load_failed(f"{entry.name}:{name}", adapter_entry.error, "AdapterLoadFailed", param)
            task = version.adapter_loads.get(name)
            if task is None or task.done():
                version.holds.acquire()  # the load holds the version (released by the task) even if we time out
                task = asyncio.create_task(self._load_adapter(entry, version, adapter_entry), name=f"adapter:{name}")
                version.adapter_loads[name] = task
            adapter_entry.waiters += 1
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.load_timeout)
            except asyncio.TimeoutError:
                raise AdapterLoading(
                    f"adapter '{entry.name}:{name}' is still loading; retry shortly",
                    param=param,
                    retry_after=1,
                ) from None
            finally:
                adapter_entry.waiters -= 1

    async def _load_adapter(self, entry: ModelEntry, version: LoadedModel, adapter_entry: AdapterEntry) -> None:
        """On-demand (re)load of a registered adapter onto `version`, which the caller acquired for it."""
        name = adapter_entry.name
        adapter_entry.state = ModelState.LOADING
        try:
            loaded = await self._attach_adapter(entry, version, name, adapter_entry.source)
        except NoCapacity:
            adapter_entry.state = ModelState.AVAILABLE
            raise
        except Exception as error:
            adapter_entry.state = ModelState.FAILED
            adapter_entry.error = self._reason(error)[0]
            log.error("adapter %s:%s failed to load from %s: %s", entry.name, name, adapter_entry.source, error)
            raise self._load_failed(f"{entry.name}:{name}", adapter_entry.error, "AdapterLoadFailed") from error
        finally:
            version.holds.release()
        if entry.adapters.get(name) is not adapter_entry:  # unloaded or replaced meanwhile
            self._drop_adapter(version, loaded)
            raise AdapterNotFound(f"model '{entry.name}' has no adapter '{name}'", param="model")
        version.adapters[name] = loaded
        adapter_entry.state = ModelState.LOADED
        adapter_entry.loads += 1
        adapter_entry.last_used = time.monotonic()

    async def _attach_adapter(self, entry: ModelEntry, version: LoadedModel, name: str, source: str) -> LoadedAdapter:
        """Read an adapter (worker thread) and attach it to `version` (compute thread); not yet chosen."""
        network = getattr(version.family, "network", None)
        if not version.family.supports_adapters or not isinstance(network, torch.nn.Module):
            raise ValueError(f"model family {version.spec.family!r} does not support LoRA adapters")
        weights = await asyncio.to_thread(read_adapter, Path(source).expanduser())
        reservation = await self.capacity.reserve(
            f"adapter '{entry.name}:{name}'",
            adapter_estimate(weights, version.placement.dtype),
            slot=False,
            protect=frozenset({entry.name}),
            timeout=self.settings.load_timeout,
        )
        try:
            if version.host is None:
                version.host = LoraHost(network)
            key = adapter_key(name)
            executor = self.compute.executor(version.placement.device)
            nbytes = await asyncio.get_running_loop().run_in_executor(executor, version.host.attach, key, weights)
        finally:
            self.capacity.release(reservation)
        return self._loaded_adapter(version, name, key, source, weights, nbytes)

    # ------------------------------------------------------------------------------- admin
    async def put_model(self, name: str, source: str, revision: str | None = None) -> dict:
        """Load `name` from `source`, or hot-swap it when it is serving; its info once the new version serves."""
        check_model_name(name)
        while True:
            entry = self._entries.get(name)
            if entry is None:
                entry = self.register(name, source, allow_download=self.settings.allow_download, revision=revision)
            async with entry.admin:
                if entry.removed:
                    continue  # it was unloaded while this waited: register it afresh
                if entry.load_task is not None and not entry.load_task.done():
                    await asyncio.wait([entry.load_task])
                if entry.current is None:
                    entry.source, entry.revision = source, revision
                    entry.spec = make_spec(name, source)
                    entry.allow_download = self.settings.allow_download
                    entry.state, entry.error, entry.error_class = ModelState.AVAILABLE, None, None
                    await self.load(name)
                else:
                    await self._swap(entry, source, revision)
                return self.describe(name)

    async def _swap(self, entry: ModelEntry, source: str, revision: str | None) -> None:
        old = entry.current
        assert old is not None
        entry.pending_source = source
        started = time.perf_counter()
        try:
            new = await self._bring_up(
                entry,
                source,
                revision,
                make_spec(entry.name, source),
                list(old.adapters.values()),
                slot=False,
                allow_download=self.settings.allow_download,
            )
        except NoCapacity:
            raise
        except Exception as error:
            reason, error_class = self._reason(error)
            entry.last_swap_error = reason
            log.error("hot-swap of %s to %s failed; %s keeps serving: %s", entry.name, source, old.source, reason)
            raise ModelLoadFailed(
                f"model '{entry.name}' failed to load from {source!r}: {reason}; the previous version keeps serving",
                param="source",
                extra={"error_class": error_class},
            ) from error
        finally:
            entry.pending_source = None
        # The switch: one synchronous step, so every request that starts from here on gets `new`.
        entry.current = new
        entry.source, entry.revision, entry.spec = source, revision, make_spec(entry.name, source)
        entry.swaps += 1
        entry.loads += 1
        entry.last_swap_error = None
        entry.last_used = time.monotonic()
        in_flight = old.holds.count
        self._retire(old)
        self.capacity.trim(frozenset({entry.name}))
        log.info(
            "model %s hot-swapped to %s in %.1fs; the old version finishes %d in-flight requests",
            entry.name,
            source,
            time.perf_counter() - started,
            in_flight,
        )

    async def unload(self, name: str) -> None:
        """Stop taking requests for `name` now, let in-flight work finish, then free the weights."""
        entry = self.entry(name)
        async with entry.admin:
            if entry.removed:
                raise ModelNotFound(f"model '{name}' is not served here", param="model")
            entry.removed = True
            entry.state = ModelState.UNLOADING
            version, entry.current = entry.current, None
            try:
                if version is not None:
                    version.retired = True
                    self._retiring.add(version)
                    await version.holds.drain()
                    self._free(version)
            finally:
                if self._entries.get(name) is entry:
                    del self._entries[name]
        log.info("model %s unloaded", name)

    async def put_adapter(self, name: str, adapter: str, source: str) -> dict:
        """Load (or replace, without failing requests) LoRA adapter `adapter` of model `name`."""
        check_adapter_name(adapter)
        entry = self.entry(name)
        async with entry.admin:
            version = await self._acquire_version(entry)
            try:
                existing = entry.adapters.get(adapter)
                try:
                    loaded = await self._attach_adapter(entry, version, adapter, source)
                except NoCapacity:
                    raise
                except Exception as error:
                    reason = self._reason(error)[0]
                    if existing is None or existing.state is not ModelState.LOADED:
                        entry.adapters[adapter] = AdapterEntry(adapter, source, state=ModelState.FAILED, error=reason)
                    log.error("adapter %s:%s failed to load from %s: %s", name, adapter, source, reason)
                    raise ModelLoadFailed(
                        f"adapter '{name}:{adapter}' failed to load: {reason}",
                        param="source",
                        extra={"error_class": "AdapterLoadFailed"},
                    ) from error
                adapter_entry = existing or AdapterEntry(adapter, source)
                entry.adapters[adapter] = adapter_entry
                adapter_entry.source, adapter_entry.state, adapter_entry.error = source, ModelState.LOADED, None
                adapter_entry.loads += 1
                adapter_entry.last_used = time.monotonic()
                previous = version.adapters.get(adapter)
                version.adapters[adapter] = loaded  # the switch: requests from here on use the new weights
                if previous is not None:
                    self._retire_adapter(version, previous)
                log.info("adapter %s:%s loaded from %s (%.1f MB)", name, adapter, source, loaded.memory_bytes / 1e6)
            finally:
                version.holds.release()
        return self.describe_adapter(name, adapter)

    async def unload_adapter(self, name: str, adapter: str) -> None:
        """Stop taking requests for `name:adapter`, let in-flight ones finish, then free it."""
        entry = self.entry(name)
        async with entry.admin:
            if entry.adapters.pop(adapter, None) is None:
                raise AdapterNotFound(f"model '{name}' has no adapter '{adapter}'", param="adapter")
            version = entry.current
            loaded = version.adapters.pop(adapter, None) if version is not None else None
            if version is not None and loaded is not None:
                version.retiring_adapters.append(loaded)
                await loaded.holds.drain()
                self._drop_adapter(version, loaded)
        log.info("adapter %s:%s unloaded", name, adapter)

    # ------------------------------------------------------------------------ freeing memory
    def _retire(self, version: LoadedModel) -> None:
        """Free `version` once the requests holding it are done (it no longer takes new ones)."""
        version.retired = True
        self._retiring.add(version)
        self._spawn(self._drain_and_free(version))

    async def _drain_and_free(self, version: LoadedModel) -> None:
        await version.holds.drain()
        self._free(version)

    def _retire_adapter(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        version.retiring_adapters.append(loaded)

        async def drain_and_drop() -> None:
            await loaded.holds.drain()
            self._drop_adapter(version, loaded)

        self._spawn(drain_and_drop())

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _drop_adapter(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        """Free one adapter no request holds (its tensors leave the hooks; safe off the compute thread)."""
        loaded.scheduler.close()
        if loaded in version.retiring_adapters:
            version.retiring_adapters.remove(loaded)
        if version.host is not None:
            version.host.detach(loaded.key)
        self.capacity.notify()

    def _free(self, version: LoadedModel) -> None:
        """Drop every reference to `version`'s weights; no request holds it."""
        version.retired = True
        for loaded in [*version.adapters.values(), *version.retiring_adapters]:
            loaded.scheduler.close()
        version.adapters.clear()
        version.retiring_adapters.clear()
        version.scheduler.close()
        if version.host is not None:
            version.host.close()
            version.host = None
        version.family.close()
        self._retiring.discard(version)
        if version.placement.device.type == "cuda":
            torch.cuda.empty_cache()
        self.capacity.notify()

    def _evict_model(self, entry: ModelEntry) -> None:
        version, entry.current = entry.current, None
        entry.state = ModelState.AVAILABLE
        entry.evictions += 1
        for adapter_entry in entry.adapters.values():
            if adapter_entry.state is ModelState.LOADED:
                adapter_entry.state = ModelState.AVAILABLE
                adapter_entry.evictions += 1
        if version is not None:
            self._free(version)

    def _evict_adapter(self, entry: ModelEntry, version: LoadedModel, name: str) -> None:
        loaded = version.adapters.pop(name)
        self._drop_adapter(version, loaded)
        adapter_entry = entry.adapters.get(name)
        if adapter_entry is not None:
            adapter_entry.state = ModelState.AVAILABLE
            adapter_entry.evictions += 1

    def _residents(self, protect: frozenset[str]) -> list[Resident]:
        """What holds memory now, for the capacity planner."""
        residents: list[Resident] = []
        for entry in self._entries.values():
            version = entry.current
            if version is None:
                continue
            protected = entry.name in protect or entry.pending_source is not None or entry.removed
            residents.append(
                Resident(
                    label=f"model '{entry.name}'",
                    nbytes=version.memory_bytes,
                    slot=True,
                    last_used=entry.last_used,
                    busy=version.holds.busy or entry.waiters > 0,
                    evict=None if protected else (lambda e=entry: self._evict_model(e)),
                )
            )
            for name, loaded in version.adapters.items():
                adapter_entry = entry.adapters.get(name)
                residents.append(
                    Resident(
                        label=f"adapter '{entry.name}:{name}'",
                        nbytes=loaded.memory_bytes,
                        slot=False,
                        last_used=adapter_entry.last_used if adapter_entry else 0.0,
                        busy=loaded.holds.busy or bool(adapter_entry and adapter_entry.waiters),
                        evict=lambda e=entry, v=version, n=name: self._evict_adapter(e, v, n),
                    )
                )
            for loaded in version.retiring_adapters:
                residents.append(_draining(f"old adapter '{entry.name}:{loaded.name}'", loaded.memory_bytes))
        for version in self._retiring:
            residents.append(_draining(f"old version of '{version.name}'", version.total_bytes))
        return residents

    async def close(self) -> None:
        for name in list(self._entries):
            entry = self._entries.get(name)
            if entry is not None and not entry.removed:
                await self.unload(name)
        for task in list(self._background):
            task.cancel()
        self.compute.shutdown()

    # --------------------------------------------------------------------------- reports
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

    def memory(self) -> dict:
        """Totals for `GET /v1/models`: what is resident against the limits."""
        used, slots = self.capacity.usage()
        return {
            "used_bytes": used,
            "budget_bytes": self.settings.memory_budget,
            "loaded_models": slots,
            "max_loaded_models": self.settings.max_loaded_models,
        }
