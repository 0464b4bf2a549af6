"""LoRA adapters of a model: chosen per request, loaded on demand or by the admin API, replaced, removed.

An adapter *name* (`AdapterEntry`) lives on its model's entry; what serves is a
`LoadedAdapter` attached to one loaded version. After the model is evicted or swapped, the
name stays: a swap re-applies every adapter to the new version, and after an eviction the
first request for `model:adapter` attaches it again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from rerankd.core.errors import AdapterLoading, AdapterNotFound
from rerankd.core.observer import NO_OBSERVER, ModelEvent, Observer
from rerankd.registry.adapters import AdapterEntry, LoadedAdapter, check_adapter_name
from rerankd.registry.entries import LoadedModel, ModelEntry, RegistrySettings
from rerankd.registry.failures import LoadFailure, load_failed, translated_load_errors
from rerankd.registry.lifecycle import Lifecycle, State
from rerankd.registry.versions import Versions

log = logging.getLogger(__name__)

ADAPTER_LOAD_FAILED = "AdapterLoadFailed"


def _not_found(entry: ModelEntry, name: str, param: str) -> AdapterNotFound:
    return AdapterNotFound(f"model '{entry.name}' has no adapter '{name}'", param=param)


class AdapterLoads:
    """Every change to the adapters of the registry's models."""

    def __init__(self, settings: RegistrySettings, versions: Versions, observer: Observer = NO_OBSERVER) -> None:
        self.settings = settings
        self.versions = versions
        self.observer = observer

    def _report(self, entry: ModelEntry, name: str, event: ModelEvent) -> None:
        self.observer.model_event(f"{entry.name}:{name}", event, kind="adapter")

    async def acquire(self, entry: ModelEntry, version: LoadedModel, name: str, param: str) -> LoadedAdapter:
        """`name` on `version` (which the caller holds), attached first if needed; held for the caller."""
        while True:
            adapter_entry = entry.adapters.get(name)
            if adapter_entry is None:
                raise _not_found(entry, name, param)
            loaded = version.adapters.get(name)
            if loaded is not None:
                loaded.holds.acquire()
                adapter_entry.requests_served += 1
                adapter_entry.last_used = time.monotonic()
                return loaded
            if adapter_entry.state is State.FAILED:
                failure = LoadFailure(adapter_entry.error or "unknown error", ADAPTER_LOAD_FAILED)
                raise load_failed(f"adapter '{entry.name}:{name}'", failure, param=param)
            task = version.adapter_loads.get(name)
            if task is None or task.done():
                version.holds.acquire()  # the load holds the version (released by the task) even if we time out
                task = asyncio.create_task(self._load_on_demand(entry, version, adapter_entry), name=f"adapter:{name}")
                version.adapter_loads[name] = task
            adapter_entry.waiters += 1
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.load_timeout)
            except TimeoutError:
                raise AdapterLoading(
                    f"adapter '{entry.name}:{name}' is still loading; retry shortly", param=param, retry_after=1
                ) from None
            finally:
                adapter_entry.waiters -= 1

    async def _load_on_demand(self, entry: ModelEntry, version: LoadedModel, adapter_entry: AdapterEntry) -> None:
        """(Re)attach a registered adapter to `version`, which the caller acquired for this task."""
        name = adapter_entry.name
        if entry.adapters.get(name) is not adapter_entry:  # unloaded before this task's first step
            version.holds.release()
            raise _not_found(entry, name, "model")
        # Only a load from `registered` reports on the name; when the name is already loading or
        # loaded onto another version (one a swap just replaced), that load reports instead.
        drives_state = adapter_entry.state is State.REGISTERED
        if drives_state:
            adapter_entry.lifecycle.move(State.LOADING)

        def failed(failure: LoadFailure) -> None:
            if drives_state and adapter_entry.state is State.LOADING:  # else unloaded meanwhile
                adapter_entry.lifecycle.move(State.FAILED)
            adapter_entry.error = failure.message
            self._report(entry, name, ModelEvent.FAILED)

        def no_room() -> None:
            if drives_state and adapter_entry.state is State.LOADING:
                adapter_entry.lifecycle.move(State.REGISTERED)

        subject = f"adapter '{entry.name}:{name}'"
        try:
            with translated_load_errors(
                subject, param="model", error_class=ADAPTER_LOAD_FAILED, on_failure=failed, on_no_room=no_room
            ):
                loaded = await self.versions.attach_adapter(version, name, adapter_entry.source)
        finally:
            version.holds.release()
        if entry.adapters.get(name) is not adapter_entry:  # unloaded or replaced meanwhile
            self.versions.evict_adapter(version, loaded)
            raise _not_found(entry, name, "model")
        version.adapters[name] = loaded
        if adapter_entry.state is State.LOADING:  # the first load to finish reports it loaded
            adapter_entry.lifecycle.move(State.LOADED)
        adapter_entry.loads += 1
        adapter_entry.last_used = time.monotonic()
        self._report(entry, name, ModelEvent.LOADED)

    async def put(self, entry: ModelEntry, version: LoadedModel, name: str, source: str) -> None:
        """Attach `source` as `name` on `version` (held by the caller), replacing any adapter of that name."""
        check_adapter_name(name)
        existing = entry.adapters.get(name)
        serving = existing is not None and existing.state is State.LOADED
        adapter_entry = existing or AdapterEntry(name, source, Lifecycle(f"adapter '{entry.name}:{name}'"))
        if not serving:
            adapter_entry.lifecycle.move(State.LOADING)

        def failed(failure: LoadFailure) -> None:
            self._report(entry, name, ModelEvent.FAILED)
            if not serving:  # a failed replacement leaves the serving adapter as it is
                adapter_entry.error = failure.message
                adapter_entry.lifecycle.move(State.FAILED)
                entry.adapters[name] = adapter_entry

        def no_room() -> None:
            if not serving:
                adapter_entry.lifecycle.move(State.REGISTERED)

        with translated_load_errors(
            f"adapter '{entry.name}:{name}'",
            param="source",
            error_class=ADAPTER_LOAD_FAILED,
            on_failure=failed,
            on_no_room=no_room,
            consequence="" if not serving else "the previous adapter keeps serving",
        ):
            loaded = await self.versions.attach_adapter(version, name, source)
        entry.adapters[name] = adapter_entry
        adapter_entry.source, adapter_entry.error = source, None
        if not serving:
            adapter_entry.lifecycle.move(State.LOADED)
        adapter_entry.loads += 1
        adapter_entry.last_used = time.monotonic()
        previous = version.adapters.get(name)
        version.adapters[name] = loaded  # the switch: requests from here on use the new weights
        self._report(entry, name, ModelEvent.LOADED)
        if previous is not None:
            self.versions.retire_adapter(version, previous)
            self._report(entry, name, ModelEvent.SWAPPED)
        log.info("adapter %s:%s loaded from %s (%.1f MB)", entry.name, name, source, loaded.memory_bytes / 1e6)

    async def unload(self, entry: ModelEntry, name: str) -> None:
        """Stop taking requests for `name` now, let its in-flight work finish, then detach it."""
        adapter_entry = entry.adapters.pop(name, None)
        if adapter_entry is None:
            raise _not_found(entry, name, "adapter")
        if adapter_entry.state is not State.DRAINING:
            adapter_entry.lifecycle.move(State.DRAINING)
        version = entry.current
        loaded = version.adapters.pop(name, None) if version is not None else None
        if version is not None and loaded is not None:
            await self.versions.retire_adapter_and_wait(version, loaded)
        adapter_entry.lifecycle.move(State.UNLOADED)
        self._report(entry, name, ModelEvent.UNLOADED)
        log.info("adapter %s:%s unloaded", entry.name, name)

    def evict(self, entry: ModelEntry, version: LoadedModel, loaded: LoadedAdapter) -> None:
        """Detach an idle adapter to make room; its name stays and a later request attaches it again."""
        version.adapters.pop(loaded.name, None)
        self.versions.evict_adapter(version, loaded)
        adapter_entry = entry.adapters.get(loaded.name)
        if adapter_entry is not None and adapter_entry.state is State.LOADED:
            adapter_entry.lifecycle.move(State.REGISTERED)
            adapter_entry.evictions += 1
            self._report(entry, loaded.name, ModelEvent.EVICTED)

    def model_evicted(self, entry: ModelEntry) -> None:
        """The model's version went: its adapters are no longer attached anywhere."""
        for adapter_entry in entry.adapters.values():
            if adapter_entry.state is State.LOADED:
                adapter_entry.lifecycle.move(State.REGISTERED)
                adapter_entry.evictions += 1
                self._report(entry, adapter_entry.name, ModelEvent.EVICTED)
