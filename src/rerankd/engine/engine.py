"""Tokenize -> batch -> infer -> postprocess for one `ScoreRequest`; the engine's single entry point.

Tokenization and post-processing run in a thread pool (fast tokenizers release the GIL),
inference on the device's compute thread through the scheduler of the model version (or
adapter) the request resolved to; the event loop only moves requests between them.

The engine owns batching: one `Scheduler` per loaded version and adapter, created on first
use and dropped when the registry lets go of the version. It never frees or loads weights.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rerankd.core.compute import ComputeThreads
from rerankd.core.memory import IdleTrim
from rerankd.core.observer import NO_OBSERVER, Observer
from rerankd.core.types import ScoreEntry, ScoreRequest, ScoreResult, Usage
from rerankd.engine.scheduler import Scheduler, SchedulerConfig
from rerankd.engine.serving import ModelProvider, Servable
from rerankd.models.base import Family, Prepared


class Engine:
    """Scores requests against the models a `ModelProvider` serves."""

    def __init__(
        self,
        models: ModelProvider,
        compute: ComputeThreads,
        config: SchedulerConfig | None = None,
        tokenizer_threads: int | None = None,
        observer: Observer = NO_OBSERVER,
        idle_trim: IdleTrim | None = None,
    ) -> None:
        self.models = models
        self.observer = observer
        # Told when requests start and end: gives freed heap back to the OS once the engine is idle.
        self.idle_trim = idle_trim or IdleTrim(None)
        self.compute = compute
        self.config = config or SchedulerConfig()
        workers = tokenizer_threads or max(2, min(8, os.cpu_count() or 2))
        self._tokenize = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rerankd-tokenize")
        # Keyed weakly: when the registry drops a freed version, its scheduler goes with it.
        self._schedulers: weakref.WeakKeyDictionary[Servable, Scheduler] = weakref.WeakKeyDictionary()

    def scheduler(self, served: Servable, label: str = "") -> Scheduler:
        """The scheduler of one loaded version (or adapter); every request for it shares its batches.

        `label` names the model (or `model:adapter`) in metrics.
        """
        scheduler = self._schedulers.get(served)
        if scheduler is None:
            family = served.family
            executor = self.compute.executor(family.placement.device)
            scheduler = Scheduler(family, executor, self.config, pins=served.pins, observer=self.observer, label=label)
            self._schedulers[served] = scheduler
        return scheduler

    def queues(self) -> list[Scheduler]:
        """Every live scheduler (for metrics)."""
        return list(self._schedulers.values())

    def queue(self, served: Servable) -> Scheduler | None:
        """The scheduler of `served` if it has run anything (for reports), else None."""
        return self._schedulers.get(served)

    async def score(self, request: ScoreRequest) -> ScoreResult:
        self.idle_trim.enter()
        try:
            return await self._score(request)
        finally:
            self.idle_trim.leave()

    async def _score(self, request: ScoreRequest) -> ScoreResult:
        loop = asyncio.get_running_loop()
        # `model:adapter` or the request's adapter option picks a LoRA adapter: its own scheduler, same family API.
        async with self.models.use(request.model, request.options.adapter) as served:
            family = served.family
            label = _label(request)
            texts = [item.text for item in request.items]
            prepared, seconds = await loop.run_in_executor(
                self._tokenize, _timed, family.prepare, request.query.text, texts, request.instruction, request.options
            )
            self.observer.tokenized(label, seconds, prepared.n_items, prepared.n_units)
            outputs = await self.scheduler(served, label).run(prepared)
            # Scores (MaxSim, cosine...) and sorting can be real work on big requests: off the loop too.
            return await loop.run_in_executor(self._tokenize, postprocess, family, request, prepared, outputs)

    def close(self) -> None:
        self._tokenize.shutdown(wait=False, cancel_futures=True)


def _label(request: ScoreRequest) -> str:
    """The model a request ran on, as metrics name it: `model`, or `model:adapter`."""
    adapter = request.options.adapter
    if adapter is None or request.model.endswith(f":{adapter}"):
        return request.model
    return f"{request.model}:{adapter}"


def _timed(function, *args):
    """(function(*args), seconds it took), measured in the worker thread (not the pool's queue)."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def postprocess(family: Family, request: ScoreRequest, prepared: Prepared, outputs) -> ScoreResult:
    """Unit outputs -> item scores -> the sorted result."""
    return build_result(request, family.scores(prepared, outputs, request.options.raw_scores), prepared)


def build_result(request: ScoreRequest, scores: np.ndarray, prepared: Prepared) -> ScoreResult:
    """Sort best first (stable: ties keep request order), cut to top_k, attach ids and usage."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    top_k = request.options.top_k
    if top_k is not None:
        order = order[:top_k]
    values = np.asarray(scores, dtype=np.float64)[order].tolist()
    truncated = prepared.truncated[order].tolist()
    items = request.items
    entries = [
        ScoreEntry(
            item_id=items[index].id if items[index].id is not None else f"item-{index}",
            index=index,
            score=value,
            rank=rank,
            truncated=cut,
        )
        for rank, (index, value, cut) in enumerate(zip(order.tolist(), values, truncated, strict=True))
    ]
    usage = Usage(
        input_tokens=prepared.input_tokens,
        content_tokens=prepared.content_tokens,
        pairs=prepared.n_items,
        truncated_items=int(prepared.truncated.sum()),
        chunks=prepared.n_units - prepared.n_query_units,
    )
    return ScoreResult(model=request.model, query_id=request.query.id, entries=entries, usage=usage)
