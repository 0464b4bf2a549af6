"""Cross-request batching for one loaded model.

Every unit (a query-document pair, or one text for a bi-encoder) of every waiting request is
work for the same queue. When the compute thread has room, the scheduler cuts the next batch
from the longest waiting units first, across requests:

* requests pre-sort their units by length (longest first), and a batch is as wide as the
  longest waiting unit and holds the next longest ones, whichever request they belong to,
  as many as fit the padded-token budget (`units x longest`), so it spans as narrow a band
  of lengths as the queue allows. Eight 100-passage TREC requests at once, 2,048-token
  batches: 3.5 % of the computed positions are padding, against 11 % cut one request at a
  time (and 8 % when the oldest request set each batch's width). The sort and the capacity
  are `batch_plan.py`'s, so a request alone is cut exactly as `batch_plan.lone_batches`
  says (what `rerankd.ray` splits requests along);
* the oldest request leads: among equal lengths its units go first, and once it has been
  passed over for `fair_share_batches` batches in a row (its units all shorter than the
  others'), the next batch is cut at its own longest unit. A request that has led
  `fair_share_batches` batches in a row yields the lead to the next one, so a 10-item request
  behind a 10,000-item one waits a few batches, not the whole big request;
* only requests with the same `batch_key` share a batch, and at most `FILL_SCAN` waiting
  requests are looked at per batch.

Admission (`admission.py`): the queue is bounded in tokens. A request reserves its estimated
tokens before it is tokenized (`reserve`) and is refused with `QueueFull` when the tokens
ahead of it would pass the bound; once tokenized, its real tokens are checked again on entry
(`run`). Every finished batch feeds the drain rate that sizes the default bound and the
refusal's `retry_after`.

Batch formation is a few numpy operations on the event loop; collation and the forward pass
run on the device's single compute thread; results are scattered back per request.

Lifetime: every dispatched batch takes the model version's `pins` (core `Holds`) before it is
queued on the compute thread and releases them when it has finished there, whether its
requests are still waiting, failed or were cancelled. The registry frees weights only when
no hold is left, so no batch ever runs on freed weights.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from rerankd.core.errors import InternalError
from rerankd.core.holds import Holds
from rerankd.core.observer import NO_OBSERVER, Observer
from rerankd.engine.admission import FLOOR_BATCHES, TARGET_QUEUE_SECONDS, QueueBound
from rerankd.engine.batch_plan import BatchLimits, cost_lengths, longest_first, unit_order
from rerankd.models.base import Family, Prepared

log = logging.getLogger(__name__)


# Padded tokens per batch when not configured. On CPUs small batches win: activations stay in
# cache and length buckets stay tight (MiniLM-L6 on 2 cores: 1,024 tokens ran 100-document
# requests 1.3x faster than 4,096 and 1.8x faster than 8,192). GPUs need large batches to fill.
CPU_BATCH_TOKENS = 1024
ACCELERATOR_BATCH_TOKENS = 32768


def default_batch_tokens(device: torch.device) -> int:
    return CPU_BATCH_TOKENS if device.type == "cpu" else ACCELERATOR_BATCH_TOKENS


@dataclass(frozen=True)
class SchedulerConfig:
    """Batching and admission limits; `rerankd serve` exposes them as flags (None: the default)."""

    max_batch_tokens: int | None = None
    max_batch_size: int = 256
    max_inflight_batches: int = 2
    fair_share_batches: int = 4
    # Tokens waiting per model before new requests are refused; None: the drain rate x
    # `target_queue_seconds` (at least FLOOR_BATCHES full batches), see admission.py.
    max_queued_tokens: int | None = None
    target_queue_seconds: float = TARGET_QUEUE_SECONDS
    # Tokens one request may make the network read (413 beyond); None: no limit.
    max_tokens_per_request: int | None = None


@dataclass
class SchedulerStats:
    batches: int = 0
    units: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    requests: int = 0

    @property
    def padding_waste(self) -> float:
        """Share of computed positions that were padding."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


# Waiting requests looked at when a batch is cut: bounds the work of cutting one batch however
# many small requests wait (the oldest are looked at first).
FILL_SCAN = 64


def _output_buffer(outputs: np.ndarray | list[np.ndarray], n_units: int) -> np.ndarray | list:
    """Where a request's unit outputs collect: an array, or a list for ragged outputs."""
    if isinstance(outputs, list):
        return [None] * n_units
    return np.empty((n_units, *outputs.shape[1:]), dtype=np.float32)


class _Job:
    """One request's units while they wait, run and come back."""

    __slots__ = (
        "costs",
        "cursor",
        "enqueued",
        "future",
        "led",
        "order",
        "outputs",
        "passed_over",
        "prepared",
        "remaining",
        "sorted_lengths",
        "started",
    )

    def __init__(self, prepared: Prepared, future: asyncio.Future) -> None:
        self.prepared = prepared
        self.future = future
        self.costs = cost_lengths(prepared)
        self.order = unit_order(self.costs)
        self.sorted_lengths = self.costs[self.order]
        self.cursor = 0
        self.remaining = prepared.n_units
        self.outputs: np.ndarray | list | None = None
        self.led = 0  # batches in a row it led (fair share)
        self.passed_over = 0  # batches in a row cut while it led the queue but gave no unit
        self.enqueued = time.perf_counter()
        self.started = False  # its first batch was dispatched (queue wait reported)

    @property
    def waiting(self) -> int:
        return len(self.order) - self.cursor

    @property
    def head_length(self) -> int:
        return int(self.sorted_lengths[self.cursor])

    def take(self, count: int) -> np.ndarray:
        units = self.order[self.cursor : self.cursor + count]
        self.cursor += len(units)
        return units

    @property
    def abandoned(self) -> bool:
        return self.future.done()


class Reservation:
    """Room a request holds in the queue's bound while it is tokenized; released once it is queued or gone."""

    __slots__ = ("_scheduler", "tokens")

    def __init__(self, scheduler: Scheduler, tokens: int) -> None:
        self._scheduler = scheduler
        self.tokens = tokens
        scheduler._reserved_tokens += tokens

    def release(self) -> None:
        self._scheduler._reserved_tokens -= self.tokens
        self.tokens = 0


@dataclass
class _Batch:
    parts: list[tuple[_Job, np.ndarray]]
    width: int
    tokens: int = 0  # real (unpadded) tokens
    dispatched_at: float = 0.0
    seconds: float = 0.0  # collate + forward on the compute thread

    @property
    def size(self) -> int:
        return sum(len(units) for _, units in self.parts)


class Scheduler:
    """Queues units of concurrent requests for one model and runs them in token-budget batches."""

    def __init__(
        self,
        family: Family,
        executor: Executor,
        config: SchedulerConfig | None = None,
        pins: tuple[Holds, ...] = (),
        observer: Observer = NO_OBSERVER,
        label: str = "",
    ) -> None:
        self.family = family
        self.observer = observer
        self.label = label  # the model (or `model:adapter`) its metrics are reported under
        self.config = config or SchedulerConfig()
        self.max_batch_tokens = (
            self.config.max_batch_tokens or family.batch_tokens or default_batch_tokens(family.placement.device)
        )
        self.limits = BatchLimits(self.config.max_batch_size, self.max_batch_tokens)
        self._executor = executor
        self._pins = pins
        self._waiting: deque[_Job] = deque()
        self._queued_units = 0
        self._queued_tokens = 0
        self._reserved_tokens = 0
        self.bound = QueueBound(
            self.config.max_queued_tokens, FLOOR_BATCHES * self.max_batch_tokens, self.config.target_queue_seconds
        )
        self._inflight = 0
        self._active = 0
        self.stats = SchedulerStats()

    @property
    def active_requests(self) -> int:
        return self._active

    @property
    def inflight_batches(self) -> int:
        return self._inflight

    @property
    def queued_units(self) -> int:
        """Units waiting for a batch (not yet dispatched to the compute thread)."""
        return self._queued_units

    @property
    def queued_tokens(self) -> int:
        """Tokens of units waiting for a batch (not those of requests still being tokenized)."""
        return self._queued_tokens

    @property
    def reserved_tokens(self) -> int:
        """Estimated tokens of admitted requests still being tokenized."""
        return self._reserved_tokens

    def reserve(self, estimate: int) -> Reservation:
        """Admit a request about to be tokenized, or raise `QueueFull` (with `retry_after`)."""
        self.bound.check(self._queued_tokens + self._reserved_tokens, estimate)
        return Reservation(self, estimate)

    async def run(self, prepared: Prepared, reservation: Reservation | None = None) -> np.ndarray | list[np.ndarray]:
        """Outputs for all units of `prepared`, in unit order; `QueueFull` if its tokens no longer fit."""
        if reservation is not None:
            reservation.release()
        if prepared.n_units == 0:
            return np.zeros((0, 1), dtype=np.float32)
        job = _Job(prepared, asyncio.get_running_loop().create_future())
        tokens = int(job.costs.sum())
        self.bound.check(self._queued_tokens, tokens)
        self._waiting.append(job)
        self._queued_units += prepared.n_units
        self._queued_tokens += tokens
        self._active += 1
        self.stats.requests += 1
        self._pump()
        try:
            return await job.future
        finally:
            if not job.future.done():
                job.future.cancel()  # the caller went away: its waiting units are skipped
            if job.waiting:
                self._queued_units -= job.waiting
                self._queued_tokens -= int(job.sorted_lengths[job.cursor :].sum())
                job.cursor = len(job.order)
            self._active -= 1

    def _pump(self) -> None:
        while self._inflight < self.config.max_inflight_batches:
            batch = self._next_batch()
            if batch is None:
                return
            for pin in self._pins:  # released in `_finished`, after the compute thread is done with it
                pin.acquire()
            self._inflight += 1
            batch.dispatched_at = time.monotonic()
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._execute, batch)
            future.add_done_callback(partial(self._finished, batch))

    def _next_batch(self) -> _Batch | None:
        while self._waiting and (self._waiting[0].abandoned or not self._waiting[0].waiting):
            self._waiting.popleft()
        if not self._waiting:
            return None
        leader = self._waiting[0]
        jobs = [leader]
        for job in itertools.islice(self._waiting, 1, FILL_SCAN):
            if not job.abandoned and job.waiting and job.prepared.batch_key == leader.prepared.batch_key:
                jobs.append(job)
        if leader.passed_over < self.config.fair_share_batches:
            width = max(job.head_length for job in jobs)
        else:  # its turn: a batch as wide as its own longest unit
            width = leader.head_length
        jobs = [job for job in jobs if job.head_length <= width]
        capacity = self.limits.capacity(width)
        counts = longest_first([job.sorted_lengths[job.cursor : job.cursor + capacity] for job in jobs], capacity)
        parts = [(job, job.take(count)) for job, count in zip(jobs, counts, strict=True) if count]
        if parts[0][0] is not leader:
            leader.passed_over += 1
        else:
            leader.passed_over = 0
            leader.led += 1
            if leader.waiting and leader.led >= self.config.fair_share_batches and len(self._waiting) > 1:
                leader.led = 0
                self._waiting.rotate(-1)  # the next request leads: fairness for small requests
        taken = sum(len(units) for _, units in parts)
        tokens = int(sum(job.costs[units].sum() for job, units in parts))
        self._queued_units -= taken
        self._queued_tokens -= tokens
        self.stats.batches += 1
        self.stats.units += taken
        self.stats.padded_tokens += taken * width
        self.stats.real_tokens += tokens
        now = time.perf_counter()
        for job, _ in parts:
            if not job.started:
                job.started = True
                self.observer.queue_wait(self.label, now - job.enqueued)
        return _Batch(parts, width, tokens)

    def _execute(self, batch: _Batch) -> np.ndarray | list[np.ndarray]:
        """Collate and run one batch; on the compute thread."""
        ids: list[list[int]] = []
        token_tags: list[list[int]] | None = [] if batch.parts[0][0].prepared.token_tags is not None else None
        for job, units in batch.parts:
            rows = job.prepared.ids
            ids.extend(rows[u] for u in units)
            if token_tags is not None:
                types = job.prepared.token_tags
                token_tags.extend(types[u] for u in units)  # type: ignore[index]
        started = time.perf_counter()
        with torch.inference_mode():
            inputs = self.family.collate(ids, token_tags)
            outputs = self.family.forward(inputs)
        batch.seconds = time.perf_counter() - started
        if isinstance(outputs, list):
            return [row.numpy() for row in outputs]
        return outputs.numpy()

    def _finished(self, batch: _Batch, future: asyncio.Future) -> None:
        self._inflight -= 1
        self.bound.rate.finished(batch.tokens, batch.dispatched_at)
        try:
            self._deliver(batch, future)
        finally:
            for pin in self._pins:
                pin.release()
        self._pump()

    def _deliver(self, batch: _Batch, future: asyncio.Future) -> None:
        """Scatter a finished batch's outputs to its requests (or its failure)."""
        if future.cancelled():  # the compute thread was shut down before it ran
            failure: Exception = InternalError("the server is shutting down")
        else:
            error = future.exception()
            if error is None:
                self.observer.batch(self.label, batch.size, batch.tokens, batch.size * batch.width, batch.seconds)
                self._scatter(batch, future.result())
                return
            log.error("batch of %d units failed", batch.size, exc_info=error)
            failure = InternalError(f"inference failed: {type(error).__name__}: {error}")
        for job, _ in batch.parts:  # one bad batch fails its requests, never the server
            if not job.future.done():
                job.future.set_exception(failure)

    @staticmethod
    def _scatter(batch: _Batch, outputs: np.ndarray | list[np.ndarray]) -> None:
        offset = 0
        for job, units in batch.parts:
            count = len(units)
            if not job.future.done():
                if job.outputs is None:
                    job.outputs = _output_buffer(outputs, job.prepared.n_units)
                if isinstance(outputs, list):
                    for unit, row in zip(units.tolist(), outputs[offset : offset + count], strict=True):
                        job.outputs[unit] = row
                else:
                    job.outputs[units] = outputs[offset : offset + count]
                job.remaining -= count
                if job.remaining == 0:
                    job.future.set_result(job.outputs)
            offset += count
