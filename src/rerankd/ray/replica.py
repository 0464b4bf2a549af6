"""One engine replica: the same registry, schedulers and families as `rerankd serve`, called by the gateway.

Each replica builds its `Service` with `api.app.local_service` (the `--model`s registered, the
start-up ones loaded up to its model slots). Serve's model multiplexing routes a request to a
replica that already has its model (`model_slot`, keyed by the model name); the replica's
registry evicts least-recently-used models at the same slot count, so both LRUs agree.

Model changes reach a replica two ways: the gateway broadcasts admin writes to every live
replica (`apply_model`, `remove_model`, `apply_adapter`, `remove_adapter`), and every shard
carries the gateway's record of its model (and adapter) with a generation, so a replica that
missed a write (started later, restarted) catches up before it scores. Generations only move
forward: a replica never goes back to an older record a request still carries.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from typing import Any

from ray import serve

from rerankd.api.app import ServerConfig, local_service
from rerankd.core.errors import RerankdError
from rerankd.core.observer import NO_OBSERVER
from rerankd.models.runtime import configure_threads
from rerankd.ray.options import RayOptions
from rerankd.ray.shards import AdapterState, ModelState, Shard, ShardAnswer

log = logging.getLogger(__name__)


class ModelSlot:
    """What `serve.multiplexed` keeps per model: the weights themselves live in the replica's registry."""

    def __init__(self, name: str) -> None:
        self.name = name


class EngineReplica:
    """The Serve deployment class of the engine replicas (wrapped by `application.build`)."""

    async def __init__(self, config: ServerConfig, options: RayOptions) -> None:
        configure_threads(options.replica_threads())
        self.service = local_service(config, NO_OBSERVER)
        self.registry = self.service.registry
        self.engine = self.service.engine
        self.replica = serve.get_replica_context().replica_id.unique_id
        # Model name -> the generation of the gateway's record this replica serves (0: the config).
        self.generations: dict[str, int] = {model.name: 0 for model in config.models}
        self.adapter_generations: dict[tuple[str, str], int] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.shards_scored = 0  # shards of split requests this replica scored (its report says)
        eager = [model.name for model in config.models if not model.lazy]
        slots = options.slots(len(config.models), config.registry.max_loaded_models)
        for name in eager[:slots]:
            try:
                await self.model_slot(name)
            except RerankdError as error:  # recorded on the model (GET /v1/models says why); the replica serves on
                log.error("start-up model %s failed to load on replica %s: %s", name, self.replica, error.message)

    async def model_slot(self, name: str) -> ModelSlot:
        """Load `name` into the registry (evicting its least recently used idle model past the slots).

        Wrapped in `serve.multiplexed` by `replica_class`: calls go through Serve's LRU, which tells
        the routers this replica has `name`.
        """
        await self.registry.load(name)
        return ModelSlot(name)

    # ----------------------------------------------------------------------------- scoring
    async def score(self, shard: Shard) -> ShardAnswer:
        """Score one shard (or a whole request); client-facing errors come back as values, not raised."""
        try:
            await self._catch_up(shard.model, shard.adapter)
            await self.model_slot(shard.model.name)
            # A shard runs alone (no other request's units in its batches): the one-process plan's batches.
            result = await self.engine.score(shard.request, alone=shard.part is not None)
        except RerankdError as error:
            return ShardAnswer(self.replica, os.getpid(), error=error)
        if shard.part is not None:
            self.shards_scored += 1
        return ShardAnswer(self.replica, os.getpid(), result=result)

    async def units(self, shard: Shard) -> ShardAnswer:
        """A whole request tokenized, not run (`Engine.units`): what the gateway cuts it into shards along."""
        try:
            await self._catch_up(shard.model, shard.adapter)
            await self.model_slot(shard.model.name)
            result = await self.engine.units(shard.request)
        except RerankdError as error:
            return ShardAnswer(self.replica, os.getpid(), error=error)
        return ShardAnswer(self.replica, os.getpid(), result=result)

    async def _catch_up(self, model: ModelState, adapter: AdapterState | None) -> None:
        if self.generations.get(model.name, -1) < model.generation:
            async with self.locks[model.name]:
                if self.generations.get(model.name, -1) < model.generation:
                    await self._apply(model, load=False)
        if adapter is not None:
            key = (model.name, adapter.name)
            if self.adapter_generations.get(key, -1) < adapter.generation:
                async with self.locks[model.name]:
                    if self.adapter_generations.get(key, -1) < adapter.generation:
                        await self.registry.put_adapter(model.name, adapter.name, adapter.source)
                        self.adapter_generations[key] = adapter.generation

    async def _apply(self, model: ModelState, *, load: bool) -> None:
        """Serve `model`'s record: hot-swap where loaded (or `load`), else register it to load on demand."""
        registry = self.registry
        if load or registry.current(model.name) is not None:
            await registry.put_model(model.name, model.source, model.revision)
        else:
            registry.register(
                model.name,
                model.source,
                revision=model.revision,
                allow_download=registry.settings.allow_download,
                lazy=True,
            )
        self.generations[model.name] = model.generation
        for key in [key for key in self.adapter_generations if key[0] == model.name]:
            if registry.current(model.name) is None:
                del self.adapter_generations[key]  # a fresh entry has no adapters: attach again on demand

    # ------------------------------------------------------------------------- admin (broadcast)
    async def apply_model(self, model: ModelState, load: bool) -> dict[str, Any]:
        """An admin PUT of a model: {"replica", "loaded", "info"} or {"replica", "error"}."""
        try:
            async with self.locks[model.name]:
                if self.generations.get(model.name, -1) < model.generation or load:
                    await self._apply(model, load=load)
            if load:
                await self.model_slot(model.name)
            return {"replica": self.replica, "info": self.registry.describe(model.name)}
        except RerankdError as error:
            return {"replica": self.replica, "error": error}

    async def remove_model(self, name: str) -> dict[str, Any]:
        async with self.locks[name]:
            self.generations.pop(name, None)
            if name in self.registry:
                try:
                    await self.registry.unload(name)
                except RerankdError as error:
                    return {"replica": self.replica, "error": error}
        return {"replica": self.replica}

    async def apply_adapter(self, model: ModelState, adapter: AdapterState, load: bool) -> dict[str, Any]:
        """An admin PUT of an adapter: attached where the model is loaded (or `load`), else on demand."""
        try:
            await self._catch_up(model, None)
            if not load and self.registry.current(model.name) is None:
                return {"replica": self.replica, "info": None}
            async with self.locks[model.name]:
                info = await self.registry.put_adapter(model.name, adapter.name, adapter.source)
                self.adapter_generations[(model.name, adapter.name)] = adapter.generation
            return {"replica": self.replica, "info": info}
        except RerankdError as error:
            return {"replica": self.replica, "error": error}

    async def remove_adapter(self, name: str, adapter: str) -> dict[str, Any]:
        async with self.locks[name]:
            self.adapter_generations.pop((name, adapter), None)
            entry_adapters = self.registry.describe(name)["adapters"] if name in self.registry else []
            if any(info["name"] == adapter for info in entry_adapters):
                try:
                    await self.registry.unload_adapter(name, adapter)
                except RerankdError as error:
                    return {"replica": self.replica, "error": error}
        return {"replica": self.replica}

    # ------------------------------------------------------------------------------ reports
    def report(self) -> dict[str, Any]:
        """This replica's models (what `GET /v1/models` says per replica), memory and machine."""
        return {
            "replica": self.replica,
            "pid": os.getpid(),
            "shards_scored": self.shards_scored,
            "models": {name: self.registry.describe(name) for name in self.registry.names()},
            "memory": self.registry.memory(),
            "hardware": self.registry.hardware(),
        }

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Queue depth for a custom Serve autoscaling policy: tokens waiting in this replica's queues."""
        queues = self.engine.queues()
        return {
            "queued_tokens": float(sum(q.queued_tokens + q.reserved_tokens for q in queues)),
            "active_requests": float(sum(q.active_requests for q in queues)),
        }

    async def __del__(self) -> None:
        await self.service.close()


def replica_class(slots: int) -> type[EngineReplica]:
    """`EngineReplica` with `model_slot` multiplexed over `slots` models (fixed per class by Serve's decorator)."""
    return type(
        "EngineReplica",
        (EngineReplica,),
        {
            "model_slot": serve.multiplexed(max_num_models_per_replica=slots)(EngineReplica.model_slot),
            "__module__": __name__,
            "__doc__": EngineReplica.__doc__,
        },
    )
