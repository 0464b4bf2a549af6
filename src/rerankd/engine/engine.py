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
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rerankd.core.compute import ComputeThreads
from rerankd.core.types import ScoreEntry, ScoreRequest, ScoreResult, Usage, item_id
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
    ) -> None:
        self.models = models
        self.compute = compute
        self.config = config or SchedulerConfig()
        workers = tokenizer_threads or max(2, min(8, os.cpu_count() or 2))
        self._tokenize = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rerankd-tokenize")
        # Keyed weakly: when the registry drops a freed version, its scheduler goes with it.
        self._schedulers: weakref.WeakKeyDictionary[Servable, Scheduler] = weakref.WeakKeyDictionary()

    def scheduler(self, served: Servable) -> Scheduler:
        """The scheduler of one loaded version (or adapter); every request for it shares its batches."""
        scheduler = self._schedulers.get(served)
        if scheduler is None:
            family = served.family
            executor = self.compute.executor(family.placement.device)
            scheduler = Scheduler(family, executor, self.config, pins=served.pins)
            self._schedulers[served] = scheduler
        return scheduler

    def queue(self, served: Servable) -> Scheduler | None:
        """The scheduler of `served` if it has run anything (for reports), else None."""
        return self._schedulers.get(served)

    async def score(self, request: ScoreRequest) -> ScoreResult:
        loop = asyncio.get_running_loop()
        # `model:adapter` or the request's adapter option picks a LoRA adapter: its own scheduler, same family API.
        async with self.models.use(request.model, request.options.adapter) as served:
            family = served.family
            texts = [item.text for item in request.items]
            prepared = await loop.run_in_executor(
                self._tokenize, family.prepare, request.query.text, texts, request.instruction, request.options
            )
            outputs = await self.scheduler(served).run(prepared)
            # Scores (MaxSim, cosine...) and sorting can be real work on big requests: off the loop too.
            return await loop.run_in_executor(self._tokenize, postprocess, family, request, prepared, outputs)

    def close(self) -> None:
        self._tokenize.shutdown(wait=False, cancel_futures=True)


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
            item_id=item_id(items[index], index),
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
