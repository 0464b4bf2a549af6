"""Tokenize -> batch -> infer -> postprocess for one `ScoreRequest`; the engine's single entry point.

Tokenization and post-processing run in a thread pool (fast tokenizers release the GIL),
inference on the device's compute thread through the scheduler of the model version (or
adapter) the request resolved to; the event loop only moves requests between them.

The engine owns batching: one `Scheduler` per loaded version and adapter, created on first
use and dropped when the registry lets go of the version. It never frees or loads weights.

Admission happens before any work: a request reserves its estimated tokens in its model's
queue (refused at once with `QueueFull` past the bound), is tokenized, and past
`max_tokens_per_request` is refused (413). Tokenization is fair: a request whose texts are
large (`LARGE_REQUEST_CHARS`) takes one of `workers - 1` large-request slots first, so
however many huge requests arrive, one tokenizer thread is always left for the small ones
(and families cut over-long texts before tokenizing them, see `models/tokenization.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rerankd.core.compute import ComputeThreads
from rerankd.core.errors import RequestTooLarge
from rerankd.core.memory import IdleTrim
from rerankd.core.observer import NO_OBSERVER, Observer
from rerankd.core.types import ScoreEntry, ScoreRequest, ScoreResult, Usage, item_id
from rerankd.engine.batch_plan import RequestUnits, cost_lengths, unit_items
from rerankd.engine.scheduler import Reservation, Scheduler, SchedulerConfig
from rerankd.engine.serving import ModelProvider, Servable
from rerankd.models.base import Family, Prepared

# A request with more text than this (query and items, in characters) is "large": at most
# `workers - 1` large requests are tokenized at once.
LARGE_REQUEST_CHARS = 256 * 1024
# Characters per token assumed when estimating a request's tokens before tokenizing it
# (English averages 4-5 per BERT/XLM-R token: 4 overestimates a little, refusing early rather than late).
CHARS_PER_TOKEN = 4


def estimate_tokens(family: Family, request: ScoreRequest, text_lengths: np.ndarray) -> int:
    """The tokens `request` will likely queue, from its items' text lengths, before tokenizing it."""
    options = request.options
    chunked = options.max_tokens_per_doc is not None or options.max_chunks_per_doc is not None
    cap = family.max_length
    if chunked:
        cap = cap * options.max_chunks_per_doc if options.max_chunks_per_doc is not None else None
    tokens = (len(request.query.text) + text_lengths) // CHARS_PER_TOKEN + 2
    if cap is not None:
        tokens = np.minimum(tokens, cap)
    return int(tokens.sum())


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
        # Created on first use, on the serving event loop.
        self._large_slots: asyncio.Semaphore | None = None
        self._large_slot_count = max(1, workers - 1)
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

    async def score(self, request: ScoreRequest, *, alone: bool = False) -> ScoreResult:
        """Score `request`; batched with concurrent requests' units, or `alone`.

        `alone`: its units share no batch with another request's, so it runs exactly the batches
        `batch_plan.lone_batches` predicts whatever else is running (what a shard of a request
        split across replicas needs to score bit for bit as one process scores the whole).
        """
        self.idle_trim.enter()
        try:
            return await self._score(request, alone)
        finally:
            self.idle_trim.leave()

    async def _score(self, request: ScoreRequest, alone: bool) -> ScoreResult:
        loop = asyncio.get_running_loop()
        # `model:adapter` or the request's adapter option picks a LoRA adapter: its own scheduler, same family API.
        async with self.models.use(request.model, request.options.adapter) as served:
            family = served.family
            label = _label(request)
            scheduler = self.scheduler(served, label)
            reservation = self._admit(family, scheduler, request)
            try:
                prepared = await self._tokenized(family, request, reservation, label)
                if alone:  # a batch key no other request has (the scheduler never mixes keys)
                    prepared = dataclasses.replace(prepared, batch_key=object())
                outputs = await scheduler.run(prepared, reservation)
            finally:
                reservation.release()
            # Scores (MaxSim, cosine...) and sorting can be real work on big requests: off the loop too.
            return await loop.run_in_executor(self._tokenize, postprocess, family, request, prepared, outputs)

    async def units(self, request: ScoreRequest) -> RequestUnits:
        """`request` tokenized but not run: its units' costs and items, its usage and its scheduler's limits.

        What `rerankd.ray` cuts a big request along (`batch_plan.lone_batches`) before scoring its
        parts on several replicas. Refused past `--max-tokens-per-request` (413) as `score` is; it
        queues nothing, so it takes no room in the queue (the parts are admitted where they run).
        """
        async with self.models.use(request.model, request.options.adapter) as served:
            family = served.family
            label = _label(request)
            scheduler = self.scheduler(served, label)
            prepared = await self._tokenized(family, request, Reservation(scheduler, 0), label)  # holds no room
            return RequestUnits(
                costs=cost_lengths(prepared),
                unit_item=unit_items(prepared),
                n_items=prepared.n_items,
                limits=scheduler.limits,
                usage=request_usage(prepared),
            )

    @staticmethod
    def _admit(family: Family, scheduler: Scheduler, request: ScoreRequest) -> Reservation:
        """Room in the model's queue for the request's estimated tokens, or `QueueFull`."""
        text_lengths = np.fromiter((len(item.text) for item in request.items), np.int64, len(request.items))
        return scheduler.reserve(estimate_tokens(family, request, text_lengths))

    async def _tokenized(self, family: Family, request: ScoreRequest, reservation: Reservation, label: str) -> Prepared:
        """The request's units, within `--max-tokens-per-request` (413 beyond)."""
        chars = len(request.query.text) + sum(len(item.text) for item in request.items)
        prepared, seconds = await self._prepare(family, request, reservation, chars > LARGE_REQUEST_CHARS)
        self.observer.tokenized(label, seconds, prepared.n_items, prepared.n_units)
        self._check_tokens(prepared)
        return prepared

    async def _prepare(
        self, family: Family, request: ScoreRequest, reservation: Reservation, large: bool
    ) -> tuple[Prepared, float]:
        """Tokenize in the pool (and the seconds it took there); a large request first waits for a large-request slot.

        A large request cancelled (client gone, deadline) while its thread runs gives its queue
        reservation back at once but keeps its slot until the thread has finished, so the slots
        stay a true bound (a small one's reservation goes back as the cancellation unwinds `score`).
        """
        loop = asyncio.get_running_loop()
        texts = [item.text for item in request.items]
        args = (_timed, family.prepare, request.query.text, texts, request.instruction, request.options)
        if not large:
            return await loop.run_in_executor(self._tokenize, *args)
        if self._large_slots is None:
            self._large_slots = asyncio.Semaphore(self._large_slot_count)
        async with self._large_slots:
            work = loop.run_in_executor(self._tokenize, *args)
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                reservation.release()
                await asyncio.wait({work})
                raise

    def _check_tokens(self, prepared: Prepared) -> None:
        limit = self.config.max_tokens_per_request
        if limit is not None and prepared.input_tokens > limit:
            raise RequestTooLarge(
                f"the request makes {prepared.input_tokens} tokens; this server accepts at most {limit} per request",
                param="items",
                extra={"tokens": prepared.input_tokens, "max_tokens": limit},
            )

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
    """Sort best first, cut to top_k, attach ids and usage."""
    entries = ranked_entries(request, scores, prepared.truncated)
    return ScoreResult(model=request.model, query_id=request.query.id, entries=entries, usage=request_usage(prepared))


def request_usage(prepared: Prepared) -> Usage:
    """What a request's units cost, as its answer reports it."""
    return Usage(
        input_tokens=prepared.input_tokens,
        content_tokens=prepared.content_tokens,
        pairs=prepared.n_items,
        truncated_items=int(prepared.truncated.sum()),
        chunks=prepared.n_units - prepared.n_query_units,
        query_input_tokens=int(prepared.lengths[: prepared.n_query_units].sum()),
        query_content_tokens=prepared.query_content_tokens,
    )


def ranked_entries(request: ScoreRequest, scores: np.ndarray, truncated: np.ndarray) -> list[ScoreEntry]:
    """One score per item of `request` -> entries best first (stable: ties keep request order), cut to top_k.

    The one ranking rule: the engine applies it to a request, `rerankd.ray` to the merged
    scores of a request scored in shards, so both answer the same order.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    top_k = request.options.top_k
    if top_k is not None:
        order = order[:top_k]
    values = np.asarray(scores, dtype=np.float64)[order].tolist()
    cut = np.asarray(truncated, dtype=bool)[order].tolist()
    items = request.items
    return [
        ScoreEntry(item_id=item_id(items[index], index), index=index, score=value, rank=rank, truncated=flag)
        for rank, (index, value, flag) in enumerate(zip(order.tolist(), values, cut, strict=True))
    ]
