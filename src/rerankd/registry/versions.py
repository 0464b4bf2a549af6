"""Loaded versions and adapters from birth to freeing: bring up, attach, retire, free.

A version is built beside whatever serves (room reserved first, see capacity.py), becomes
current in one synchronous step elsewhere, and when replaced, evicted or unloaded it is
*retired*: it takes no new requests and is freed once its holds drain. Holds count both the
requests that resolved to it and every batch the engine dispatched for it, so freeing can
never happen under a running or queued batch. Eviction only ever picks idle versions, so
it frees at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import torch

from rerankd.core.compute import ComputeThreads
from rerankd.core.errors import ModelNotFound
from rerankd.core.holds import Holds
from rerankd.models.catalog import ModelSpec
from rerankd.models.lora import LoraAdapter, LoraHost, read_adapter
from rerankd.registry.adapters import AdapterFamily, LoadedAdapter
from rerankd.registry.capacity import Capacity
from rerankd.registry.entries import LoadedModel, RegistrySettings
from rerankd.registry.lifecycle import Lifecycle, State
from rerankd.registry.loading import adapter_estimate, adapter_key, build, locate
from rerankd.registry.sources import local_directory

log = logging.getLogger(__name__)


class Versions:
    """Creates versions and adapters, and frees them once nothing holds them."""

    def __init__(self, settings: RegistrySettings, capacity: Capacity, compute: ComputeThreads) -> None:
        self.settings = settings
        self.capacity = capacity
        self.compute = compute
        self.retiring: set[LoadedModel] = set()  # replaced or unloaded, draining
        self._background: set[asyncio.Task] = set()

    # ---------------------------------------------------------------------------- birth
    async def bring_up(
        self,
        name: str,
        source: str,
        revision: str | None,
        spec: ModelSpec | None,
        adapters: list[LoadedAdapter],
        *,
        slot: bool,
        allow_download: bool,
        abandoned: Callable[[], bool] = lambda: False,
    ) -> LoadedModel:
        """A new version of `name` from `source`, with `adapters` re-applied; not yet current.

        `abandoned` says the name was deleted meanwhile: then no room is taken (and nothing
        evicted) for a version nobody will serve, and the load ends as `ModelNotFound`.
        """
        located = await asyncio.to_thread(
            locate,
            name,
            source,
            revision,
            spec,
            device=self.settings.device,
            dtype=self.settings.dtype,
            allow_download=allow_download,
            roots=self.settings.model_roots,
            allow_pickle=self.settings.allow_pickle,
            execution=self.settings.execution,
        )
        estimate = located.estimate + sum(a.memory_bytes for a in adapters)
        _check_wanted(name, abandoned)
        reservation = await self.capacity.reserve(
            f"model '{name}'", estimate, slot=slot, protect=frozenset({name}), timeout=self.settings.load_timeout
        )
        try:
            _check_wanted(name, abandoned)
            built = await asyncio.to_thread(build, located, [(a.name, a.weights) for a in adapters])
        finally:
            self.capacity.release(reservation)
        version = LoadedModel(
            name=name,
            spec=located.spec,
            family=built.family,
            placement=located.placement,
            directory=located.directory,
            source=source,
            revision=revision,
            loaded_at=time.time(),
            memory_bytes=built.memory_bytes,
            holds=Holds(self.capacity.notify),
            lifecycle=Lifecycle(f"version of '{name}' from {source!r}", State.LOADED),
            host=built.host,
        )
        sources = {a.name: a.source for a in adapters}
        for adapter_name, key, weights, nbytes in built.adapters:
            version.adapters[adapter_name] = self._loaded_adapter(
                version, adapter_name, key, sources[adapter_name], weights, nbytes
            )
        return version

    async def attach_adapter(self, version: LoadedModel, name: str, source: str) -> LoadedAdapter:
        """Read an adapter (worker thread) and attach it to `version` (compute thread); not yet chosen."""
        network = getattr(version.family, "network", None)
        if not version.family.supports_adapters or not isinstance(network, torch.nn.Module):
            raise ValueError(f"model family {version.spec.family!r} does not support LoRA adapters")
        directory = local_directory(source, self.settings.model_roots)
        weights = await asyncio.to_thread(read_adapter, directory, allow_pickle=self.settings.allow_pickle)
        reservation = await self.capacity.reserve(
            f"adapter '{version.name}:{name}'",
            adapter_estimate(weights, version.placement.dtype),
            slot=False,
            protect=frozenset({version.name}),
            timeout=self.settings.load_timeout,
        )
        try:
            if version.host is None:
                version.host = LoraHost(network)
            key = adapter_key(name)
            # On the compute thread: hooks change only between two forward passes.
            executor = self.compute.executor(version.placement.device)
            nbytes = await asyncio.get_running_loop().run_in_executor(executor, version.host.attach, key, weights)
        finally:
            self.capacity.release(reservation)
        return self._loaded_adapter(version, name, key, source, weights, nbytes)

    def _loaded_adapter(
        self, version: LoadedModel, name: str, key: str, source: str, weights: LoraAdapter, nbytes: int
    ) -> LoadedAdapter:
        assert version.host is not None
        return LoadedAdapter(
            name=name,
            key=key,
            source=source,
            weights=weights,
            family=AdapterFamily(version.family, version.host, key),
            base_holds=version.holds,
            memory_bytes=nbytes,
            loaded_at=time.time(),
            holds=Holds(self.capacity.notify),
            lifecycle=Lifecycle(f"adapter '{version.name}:{name}'", State.LOADED),
        )

    # ---------------------------------------------------------------------------- death
    def retire(self, version: LoadedModel) -> None:
        """Stop `version` taking new work now; free it in the background once nothing holds it."""
        self._start_draining(version)
        self._spawn(self._free_when_drained(version))

    async def retire_and_wait(self, version: LoadedModel) -> None:
        """`retire`, returning once it is freed."""
        self._start_draining(version)
        await self._free_when_drained(version)

    def _start_draining(self, version: LoadedModel) -> None:
        version.lifecycle.move(State.DRAINING)
        self.retiring.add(version)  # still counted against the budget until freed

    async def _free_when_drained(self, version: LoadedModel) -> None:
        await version.holds.drain()
        self._free(version)

    def evict(self, version: LoadedModel) -> None:
        """Free an idle version now (eviction only picks versions nothing holds)."""
        assert not version.holds.busy, "evicting a version in use"
        version.lifecycle.move(State.DRAINING)
        self._free(version)

    def retire_adapter(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        """Stop a replaced adapter taking new work now; detach it once nothing holds it."""
        self._start_draining_adapter(version, loaded)
        self._spawn(self._drop_adapter_when_drained(version, loaded))

    async def retire_adapter_and_wait(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        self._start_draining_adapter(version, loaded)
        await self._drop_adapter_when_drained(version, loaded)

    @staticmethod
    def _start_draining_adapter(version: LoadedModel, loaded: LoadedAdapter) -> None:
        loaded.lifecycle.move(State.DRAINING)
        version.retiring_adapters.append(loaded)

    async def _drop_adapter_when_drained(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        await loaded.holds.drain()
        if not loaded.lifecycle.is_(State.UNLOADED):  # else its version was freed first, with it
            self.drop_adapter(version, loaded)

    def evict_adapter(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        assert not loaded.holds.busy, "evicting an adapter in use"
        loaded.lifecycle.move(State.DRAINING)
        self.drop_adapter(version, loaded)

    def drop_adapter(self, version: LoadedModel, loaded: LoadedAdapter) -> None:
        """Detach an adapter nothing holds (its tensors leave the hooks; no batch of it is queued)."""
        loaded.lifecycle.move(State.UNLOADED)
        if loaded in version.retiring_adapters:
            version.retiring_adapters.remove(loaded)
        if version.host is not None:
            version.host.detach(loaded.key)
        self.capacity.notify()

    def _free(self, version: LoadedModel) -> None:
        """Drop every reference to `version`'s weights; nothing holds it, no batch of it is queued."""
        assert not version.holds.busy, "freeing a version in use"
        version.lifecycle.move(State.UNLOADED)
        for loaded in [*version.adapters.values(), *version.retiring_adapters]:
            _end(loaded.lifecycle)  # its tensors go with the hooks below
        version.adapters.clear()
        version.retiring_adapters.clear()
        if version.host is not None:
            version.host.close()
            version.host = None
        version.family.close()
        self.retiring.discard(version)
        if version.placement.device.type == "cuda":
            torch.cuda.empty_cache()
        self.capacity.notify()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def cancel_background(self) -> None:
        for task in list(self._background):
            task.cancel()


def _check_wanted(name: str, abandoned: Callable[[], bool]) -> None:
    if abandoned():
        raise ModelNotFound(f"model '{name}' was unloaded while it loaded", param="model")


def _end(lifecycle: Lifecycle) -> None:
    """Whatever stage it is at (serving or draining), move it to its end."""
    if lifecycle.is_(State.LOADED):
        lifecycle.move(State.DRAINING)
    lifecycle.move(State.UNLOADED)
