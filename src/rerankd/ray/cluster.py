"""The gateway's view of the cluster: the model table, the replicas' reports, and scoring through them.

`ClusterService` stands where a plain server's `Service` stands, so the gateway runs the same
`create_app` (every route, dialect, error, middleware and the OpenAPI document):

* `ClusterRegistry` answers what the routes ask a registry. Names and sources live in a
  `ModelRegistry` used as a table only (it never loads: `resolve`, catalog, on-demand
  registration work unchanged), each with a generation that admin writes advance. What a model
  is doing (state, loads, memory) comes from every replica's report, collected by broadcast
  every `report_seconds` and after each admin write. Admin writes are broadcast to every live
  replica; replicas that miss one catch up from the record each shard carries.
* `ClusterEngine.score` sends a request to a replica through Serve's multiplexed routing; past
  the threshold it first has one replica tokenize it (`units`), cuts it into shards of whole
  batches of the one-process plan (`shards.plan_shards`), scores them concurrently, retries a
  shard whose replica died, and merges.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import ray.exceptions
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle, ReplicaSelection

from rerankd.api.app import ServerConfig
from rerankd.api.service import Service
from rerankd.core.compute import ComputeThreads
from rerankd.core.errors import AdapterNotFound, ReplicaUnavailable, RerankdError
from rerankd.core.types import ScoreRequest, ScoreResult
from rerankd.engine.batch_plan import RequestUnits
from rerankd.ray.options import RayOptions
from rerankd.ray.shards import (
    AdapterState,
    ModelState,
    Shard,
    ShardAnswer,
    ShardItems,
    located,
    merge,
    plan_shards,
    shard_count,
)
from rerankd.registry.registry import ModelRegistry

log = logging.getLogger(__name__)

# A replica that died or cannot be reached: its shard is sent again (to another replica, once
# Serve's routers have dropped the dead one), never answered in part.
REPLICA_GONE = (
    ray.exceptions.RayActorError,
    ray.exceptions.ActorUnavailableError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,  # a replica chosen for a shard (`choose_replica`) died before the shard was sent
)
# What a model's state is across replicas: the best any replica has.
STATE_ORDER = ("loaded", "loading", "registered", "available", "unloading", "draining", "failed")


class ClusterRegistry:
    """The registry surface the routes use, over the model table and the replicas' reports."""

    def __init__(self, config: ServerConfig, options: RayOptions, replicas: DeploymentHandle) -> None:
        self.settings = config.registry
        self.options = options
        self.replicas = replicas
        self.table = ModelRegistry(config.registry)  # names and sources only: never loads
        self.generations: dict[str, int] = {}
        self.adapters: dict[str, dict[str, AdapterState]] = {}
        self._generation = itertools.count(1)  # config models are generation 0
        self.reports: list[dict[str, Any]] = []
        self.shard_retries = 0  # shards sent again after their replica died (GET /v1/models: hardware)
        self._refresher: asyncio.Task | None = None
        for model in config.models:
            self.register(model.name, model.source, lazy=model.lazy)

    # ------------------------------------------------------------------------- the table
    def names(self) -> list[str]:
        return self.table.names()

    def __contains__(self, name: str) -> bool:
        return name in self.table

    def resolve(self, model_id: str, adapter: str | None = None) -> tuple[str, str | None, str]:
        return self.table.resolve(model_id, adapter)

    def register(self, name: str, source: str, *, revision: str | None = None, lazy: bool = False, **_: Any) -> None:
        self.table.register(name, source, revision=revision, lazy=lazy, allow_download=self.settings.allow_download)
        self.generations.setdefault(name, 0)

    def state(self, name: str) -> ModelState:
        entry = self.table.entry(name)
        return ModelState(name, entry.source, entry.revision, self.generations.get(name, 0))

    def adapter_state(self, name: str, adapter: str, param: str) -> AdapterState:
        state = self.adapters.get(name, {}).get(adapter)
        if state is None:
            raise AdapterNotFound(f"model '{name}' has no adapter '{adapter}'", param=param)
        return state

    def replica_count(self) -> int:
        return max(1, len(self.reports))

    # ----------------------------------------------------------------------- reports
    def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_forever(), name="rerankd-ray-reports")

    async def _refresh_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a replica starting or stopping: the next round sees it
                await self.refresh()
            await asyncio.sleep(self.options.report_seconds)

    async def refresh(self) -> None:
        """Every live replica's report, now."""
        answers = await self.replicas.broadcast("report").results_async(return_exceptions=True)
        self.reports = [answer for answer in answers if isinstance(answer, dict)]

    async def load(self, name: str) -> None:
        """The start-up load of a `--model`: the replicas load their own; here, wait for their first reports."""
        while not self.reports:
            await self.refresh()
            if not self.reports:
                await asyncio.sleep(self.options.report_seconds)

    def _records(self, name: str) -> list[dict[str, Any]]:
        return [
            {**report["models"][name], "replica": report["replica"]}
            for report in self.reports
            if name in report["models"]
        ]

    def describe(self, name: str) -> dict:
        """A plain server's record of `name`, from its best replica, with use summed over replicas and each listed."""
        info = self.table.describe(name)
        records = self._records(name)
        if records:
            best = min(records, key=lambda r: STATE_ORDER.index(r["state"]) if r["state"] in STATE_ORDER else 99)
            info = {key: value for key, value in best.items() if key != "replica"}
            for counter in ("requests_served", "loads", "evictions", "swaps", "memory_bytes", "adapters_memory_bytes"):
                info[counter] = sum(record.get(counter, 0) for record in records)
        info["generation"] = self.generations.get(name, 0)
        info["adapters"] = [self._describe_adapter(name, adapter, records) for adapter in self.adapters.get(name, {})]
        info["replicas"] = [
            {key: record.get(key) for key in ("replica", "state", "loads", "requests_served", "memory_bytes", "source")}
            for record in records
        ]
        return info

    def _describe_adapter(self, name: str, adapter: str, records: list[dict[str, Any]]) -> dict:
        state = self.adapters[name][adapter]
        on_replicas = [a for record in records for a in record.get("adapters", []) if a["name"] == adapter]
        loaded = [a for a in on_replicas if a["state"] == "loaded"]
        return {
            "id": f"{name}:{adapter}",
            "name": adapter,
            "model": name,
            "object": "adapter",
            "source": state.source,
            "state": "loaded" if loaded else "registered",
            "memory_bytes": sum(a.get("memory_bytes", 0) for a in loaded),
            "requests_served": sum(a.get("requests_served", 0) for a in on_replicas),
            "loads": sum(a.get("loads", 0) for a in on_replicas),
            "evictions": sum(a.get("evictions", 0) for a in on_replicas),
            "replicas": len(loaded),
        }

    def describe_adapter(self, name: str, adapter: str) -> dict:
        self.table.entry(name)
        self.adapter_state(name, adapter, "adapter")
        return self._describe_adapter(name, adapter, self._records(name))

    def describe_catalog(self, model_id: str | None = None) -> list[dict]:
        return self.table.describe_catalog(model_id)

    def current(self, name: str) -> None:
        """No weights live in the gateway (metrics of loaded models come from the replicas)."""
        return None

    def hardware(self) -> dict:
        """The first replica's machine, how many replicas answer, and how many shards were sent again."""
        first = self.reports[0]["hardware"] if self.reports else {}
        return {**first, "replicas": len(self.reports), "shard_retries": self.shard_retries}

    def memory(self) -> dict:
        memories = [report["memory"] for report in self.reports]
        return {
            "used_bytes": sum(m["used_bytes"] for m in memories),
            "budget_bytes": self.settings.memory_budget,
            "loaded_models": sum(m["loaded_models"] for m in memories),
            "max_loaded_models": self.settings.max_loaded_models,
            "replicas": len(memories),
        }

    # ----------------------------------------------------------------------- admin writes
    async def put_model(self, name: str, source: str, revision: str | None = None) -> dict:
        """Load or hot-swap `name` on every replica that has it loaded (and on one, if none has)."""
        old = self.state(name) if name in self.table else None
        state = ModelState(name, source, revision, next(self._generation))
        answers = await self._broadcast("apply_model", state, False)
        loaded = [a for a in answers if "info" in a and a["info"]["state"] == "loaded"]
        if not _first_error(answers) and not loaded:
            answers.append(await self._routed(name, "apply_model", state, True))
        error = _first_error(answers)
        if error is not None:
            if old is not None and any("info" in a for a in answers):  # put the replicas that moved back
                back = ModelState(old.name, old.source, old.revision, next(self._generation))
                await self._broadcast("apply_model", back, False)
                self.generations[name] = back.generation
            raise error
        self.table.register(name, source, revision=revision, allow_download=self.settings.allow_download)
        self.generations[name] = state.generation
        await self.refresh()
        return self.describe(name)

    async def unload(self, name: str) -> None:
        """Stop routing `name` now; every replica unloads it once its in-flight requests finish."""
        await self.table.unload(name)
        self.generations.pop(name, None)
        self.adapters.pop(name, None)
        await self._broadcast("remove_model", name)
        await self.refresh()

    async def put_adapter(self, name: str, adapter: str, source: str) -> dict:
        model = self.state(name)
        state = AdapterState(adapter, source, next(self._generation))
        first = await self._routed(name, "apply_adapter", model, state, True)
        error = _first_error([first])
        if error is not None:
            raise error
        answers = await self._broadcast("apply_adapter", model, state, False)
        error = _first_error(answers)
        if error is not None:
            raise error
        self.adapters.setdefault(name, {})[adapter] = state
        await self.refresh()
        return self.describe_adapter(name, adapter)

    async def unload_adapter(self, name: str, adapter: str) -> None:
        self.table.entry(name)
        self.adapter_state(name, adapter, "adapter")
        del self.adapters[name][adapter]
        await self._broadcast("remove_adapter", name, adapter)
        await self.refresh()

    async def _broadcast(self, method: str, *args: Any) -> list[dict[str, Any]]:
        answers = await self.replicas.broadcast(method, *args).results_async(return_exceptions=True)
        return [a if isinstance(a, dict) else {"replica": None, "unreachable": repr(a)} for a in answers]

    async def _routed(self, name: str, method: str, *args: Any) -> dict[str, Any]:
        handle = self.replicas.options(multiplexed_model_id=name)
        return await getattr(handle, method).remote(*args)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()


def _first_error(answers: list[dict[str, Any]]) -> RerankdError | None:
    return next((a["error"] for a in answers if isinstance(a.get("error"), RerankdError)), None)


class ClusterEngine:
    """`Engine.score` for the gateway: replicas score, shards are retried, answers merge."""

    def __init__(self, registry: ClusterRegistry, options: RayOptions) -> None:
        self.registry = registry
        self.options = options

    async def score(self, request: ScoreRequest) -> ScoreResult:
        registry = self.registry
        registry.table.register_on_demand(request.model)
        name, adapter, param = registry.resolve(request.model, request.options.adapter)
        registry.generations.setdefault(name, 0)
        model = registry.state(name)
        adapter_state = registry.adapter_state(name, adapter, param) if adapter is not None else None
        count = shard_count(len(request.items), self.options.shard_items, registry.replica_count())
        whole = Shard(request, model, adapter_state)
        if count == 1:
            return await self._ask("score", whole)
        # Tokenized once on a replica: the batches one process would run, cut into shards of whole batches.
        units: RequestUnits = await self._ask("units", whole)
        plan = plan_shards(units, count)
        if len(plan) == 1:
            return await self._ask("score", whole)
        parts = enumerate(plan)
        shards = [Shard(items.request(request), model, adapter_state, (part, len(plan))) for part, items in parts]
        handle = self.registry.replicas.options(multiplexed_model_id=name).score
        async with contextlib.AsyncExitStack() as held:
            # Replicas chosen one after another: each choice holds a slot on its replica, so the router
            # sees it busy and puts the next shard elsewhere (Serve's power of two choices alone, with
            # every shard probing idle replicas at once, often puts two on one).
            selections = [await self._hold(held, handle, shard) for shard in shards]
            calls = [
                asyncio.ensure_future(self._ask("score", shard, items, selection))
                for shard, items, selection in zip(shards, plan, selections, strict=True)
            ]
            try:
                results = await asyncio.gather(*calls)
            finally:
                for call in calls:
                    call.cancel()
        return merge(request, list(zip(plan, results, strict=True)), units.usage)

    @staticmethod
    async def _hold(held: contextlib.AsyncExitStack, handle: DeploymentHandle, shard: Shard) -> ReplicaSelection | None:
        """A slot on the replica Serve's router picks for `shard`, held until `held` closes (None: none now)."""
        try:
            return await held.enter_async_context(handle.choose_replica(shard))
        except REPLICA_GONE:
            return None  # `_ask` routes it the usual way, with retries

    async def _ask(
        self, method: str, shard: Shard, items: ShardItems | None = None, selection: ReplicaSelection | None = None
    ) -> Any:
        """A replica's answer to `method(shard)`, sent again while replicas die; their client errors raised.

        `selection`: a replica already chosen (and a slot held) for the first attempt.
        """
        handle = self.registry.replicas.options(multiplexed_model_id=shard.model.name)
        failure: BaseException | None = None
        for attempt in range(self.options.retries + 1):
            if attempt:
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
            response = None
            try:
                if attempt == 0 and selection is not None:
                    response = handle.dispatch(selection, shard)
                else:
                    response = getattr(handle, method).remote(shard)
                answer: ShardAnswer = await response
            except asyncio.CancelledError:
                if response is not None:
                    response.cancel()
                raise
            except REPLICA_GONE as error:
                failure = error
                self.registry.shard_retries += 1
                items_count = len(shard.request.items)
                log.warning("a replica failed on %s of %d items (%s); retrying", method, items_count, error)
                continue
            if answer.error is not None:
                raise answer.error if items is None else located(answer.error, items.indices)
            assert answer.result is not None
            return answer.result
        raise ReplicaUnavailable(
            f"no replica could score the request after {self.options.retries + 1} attempts: {type(failure).__name__}",
            retry_after=1.0,
        )

    def queue(self, served: object) -> None:
        return None

    def queues(self) -> list:
        return []

    def close(self) -> None:
        pass


class ClusterService(Service):
    """A `Service` whose registry and engine are the cluster's (the routes cannot tell)."""

    @classmethod
    def connect(cls, config: ServerConfig, options: RayOptions, replicas: DeploymentHandle) -> ClusterService:
        registry = ClusterRegistry(config, options, replicas)
        engine = ClusterEngine(registry, options)  # --max-tokens-per-request: checked by the replica that plans
        registry.start()
        return cls(registry, engine, ComputeThreads())  # type: ignore[arg-type]

    def describe(self, name: str) -> dict:
        return self.registry.describe(name)

    async def close(self) -> None:
        await self.registry.close()
