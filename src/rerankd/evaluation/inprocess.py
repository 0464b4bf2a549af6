"""Systems run in this process: the engine itself, through `api.service.Service`, as `rerankd score` does.

The same registry, engine and numerics as `rerankd serve` with the same settings, so an in-process
evaluation scores exactly what a server would. Each MODEL is loaded once; its adapters (PEFT
directories) attach to it as they would through `PUT /v1/models/{m}/adapters/{a}`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rerankd.api.service import Service
from rerankd.core.errors import RerankdError
from rerankd.core.types import Item, ScoreRequest
from rerankd.evaluation.errors import BadInput
from rerankd.evaluation.systems import SystemSpec
from rerankd.models.runtime import configure_threads
from rerankd.registry.registry import RegistrySettings


@dataclass
class InProcessScorer:
    """`settings`: the registry's (device, backend...), defaults as `rerankd serve`'s; `threads`: torch's."""

    settings: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    _runner: asyncio.Runner | None = None
    _service: Service | None = None
    _names: dict[str, str] = field(default_factory=dict)  # MODEL -> registry name (MODEL itself)
    _adapters: dict[tuple[str, str], str] = field(default_factory=dict)  # (MODEL, dir) -> adapter name

    def open(self, systems: list[SystemSpec]) -> None:
        configure_threads(self.threads)
        self._runner = asyncio.Runner()
        self._service = self._runner.run(self._create())
        for system in systems:
            try:
                self._runner.run(self._load(system))
            except RerankdError as error:
                what = f"{system.model}:{system.adapter}" if system.adapter else system.model
                raise BadInput(f"--model {what}: {error.message}") from None

    async def _create(self) -> Service:
        return Service.create(RegistrySettings(**self.settings))

    async def _load(self, system: SystemSpec) -> None:
        assert self._service is not None
        registry = self._service.registry
        name = self._names.get(system.model)
        if name is None:
            name = self._names[system.model] = system.model  # its registry name: errors then name it
            registry.register(name, system.model, allow_download=False)
            await registry.load(name)
        if system.adapter is not None and (system.model, system.adapter) not in self._adapters:
            adapter = f"a{len(self._adapters) + 1}"
            await registry.put_adapter(name, adapter, system.adapter)
            self._adapters[(system.model, system.adapter)] = adapter

    def _model_id(self, system: SystemSpec) -> str:
        name = self._names[system.model]
        return f"{name}:{self._adapters[(system.model, system.adapter)]}" if system.adapter else name

    def score(self, system: SystemSpec, query: str, texts: list[str]) -> list[float]:
        assert self._runner is not None and self._service is not None
        request = ScoreRequest(
            model=self._model_id(system), query=Item(text=query), items=[Item(text=t) for t in texts]
        )
        try:
            result = self._runner.run(self._service.engine.score(request))
        except RerankdError as error:
            raise BadInput(f"{system.label}: {error.message}") from None
        scores = [0.0] * len(texts)
        for entry in result.entries:
            scores[entry.index] = float(entry.score)
        return scores

    def close(self) -> None:
        if self._runner is None:
            return
        if self._service is not None:
            self._runner.run(self._service.close())
        self._runner.close()
        self._runner = None
        self._service = None
