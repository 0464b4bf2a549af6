"""Scatter-gather without Ray: how a big request is cut into shards, what a shard carries, how answers merge.

Exactness. A float32 network's output for a row moves in its last bits with the batch it runs
in (padded width, rows per batch); the row's own tokens, the thread count and running twice do
not move it. So a shard is made of *whole batches of the one-process plan*: the request is
tokenized once on a replica (`Engine.units`), the gateway recomputes how one process alone
would batch it (`engine.batch_plan.lone_batches`, the scheduler's own rule) and gives each
shard a run of consecutive whole batches, balanced by padded tokens. A replica's scheduler,
given exactly that run's items in their original order (and no other traffic on that model),
cuts exactly those batches, so every score is the one process's bit for bit.

An item whose units fall in several batches ties those batches together: the windows of a long
document (`max_tokens_per_doc` / `max_chunks_per_doc`), and the query's own unit that a
bi-encoder or ColBERT encodes once per request. A shard must then hold all the tied batches:

* batches tied by a document's windows form one group that goes whole to one shard (requests
  where windows tie most batches together split unevenly, or not at all, but stay exact);
* the group holding the query's unit is scored by *every* shard (each needs the query's
  vector, computed in the same batch as one process computes it); its items are answered for
  by the first shard only, the others score them as helpers and their answers are dropped.

The merge puts every answered score back at its item's index in the whole request and applies
the engine's own ranking rule (`ranked_entries`); usage is the whole request's, from the plan.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from rerankd.core.errors import RerankdError
from rerankd.core.types import ScoreRequest, ScoreResult, Usage
from rerankd.engine.batch_plan import RequestUnits
from rerankd.engine.engine import ranked_entries


@dataclass(frozen=True, slots=True)
class ModelState:
    """The gateway's record of a model name: replicas whose `generation` is older catch up first."""

    name: str
    source: str
    revision: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class AdapterState:
    name: str
    source: str
    generation: int


@dataclass(frozen=True, slots=True)
class Shard:
    """What one replica is asked about: a request (the whole one, or a shard of it) and its model's record."""

    request: ScoreRequest
    model: ModelState
    adapter: AdapterState | None = None
    # (this shard, of how many) when `request` is a shard of a bigger one; None for a whole request.
    part: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ShardAnswer:
    """A replica's answer: a value (`ScoreResult` for `score`, `RequestUnits` for `units`) or the client-facing
    error it raised (never both)."""

    replica: str
    pid: int
    result: ScoreResult | RequestUnits | None = None
    error: RerankdError | None = None


@dataclass(frozen=True, slots=True)
class ShardItems:
    """Items of the whole request one shard scores (`indices`, ascending) and which of them it answers for."""

    indices: np.ndarray
    owned: np.ndarray  # bool, one per index: False for a helper item (scored only to reproduce a batch)
    padded_tokens: int  # what its batches cost (rows x width, summed)

    def request(self, whole: ScoreRequest) -> ScoreRequest:
        """The shard's own request: its items in their original order, `top_k` lifted so every score comes back."""
        options = dataclasses.replace(whole.options, top_k=None)
        return dataclasses.replace(whole, items=[whole.items[i] for i in self.indices.tolist()], options=options)


def shard_count(items: int, threshold: int, replicas: int) -> int:
    """How many shards a request of `items` items becomes at most: 1 up to the threshold, then up to one per replica."""
    if threshold <= 0 or items <= threshold or replicas <= 1:
        return 1
    return min(replicas, math.ceil(items / threshold))


def plan_shards(units: RequestUnits, shards: int) -> list[ShardItems]:
    """Up to `shards` shards of whole batches of the one-process plan, balanced by padded tokens (see the module)."""
    batches = units.batches()
    batch_of_unit = batches.batch_of_unit()
    group = tied_batches(batch_of_unit, units.unit_item, batches.count)
    cost = np.bincount(group, weights=batches.padded_tokens, minlength=batches.count)
    is_query = units.unit_item < 0
    shared = int(group[batch_of_unit[is_query][0]]) if is_query.any() else None
    # Groups in plan order (by their first batch): consecutive runs of them make the shards.
    labels, first = np.unique(group, return_index=True)
    free = [int(label) for label in labels[np.argsort(first)] if label != shared]
    run_of_group = np.full(batches.count, -1, dtype=np.int64)
    if free:
        costs = cost[free]
        midpoints = np.cumsum(costs) - costs / 2  # a group goes to the run its middle falls in
        runs = np.minimum((shards * midpoints / max(costs.sum(), 1)).astype(np.int64), shards - 1)
        run_of_group[free] = runs
    # Every unit of an item is in one group (that is what tying means): the item's first unit tells it.
    documents = ~is_query
    item_group = np.empty(units.n_items, dtype=np.int64)
    item_group[units.unit_item[documents]] = group[batch_of_unit[documents]]
    item_run = run_of_group[item_group]  # -1: the shared group
    helpers = np.flatnonzero(item_run == -1)
    shared_cost = float(cost[shared]) if shared is not None else 0.0
    plan: list[ShardItems] = []
    for run in range(shards):
        owned = np.flatnonzero(item_run == run)
        if not len(owned):
            continue
        answered = helpers if not plan else np.empty(0, dtype=np.int64)  # the first shard answers for the helpers
        indices = np.concatenate([owned, helpers])
        flags = np.concatenate([np.ones(len(owned), dtype=bool), np.isin(helpers, answered)])
        order = np.argsort(indices, kind="stable")
        padded = float(cost[run_of_group == run].sum()) + shared_cost
        plan.append(ShardItems(indices[order], flags[order], int(padded)))
    if len(plan) <= 1:  # one group holds (nearly) everything: the request is not worth splitting
        return [ShardItems(np.arange(units.n_items), np.ones(units.n_items, dtype=bool), int(cost.sum()))]
    return plan


def tied_batches(batch_of_unit: np.ndarray, unit_item: np.ndarray, count: int) -> np.ndarray:
    """A group label per batch: batches that hold units of the same item (or of the query) share one.

    Connected components by union-find over the few batches that windows or the query tie
    (hand-written: ten lines, where scipy's `connected_components` would add a dependency).
    """
    parent = np.arange(count)

    def root(batch: int) -> int:
        while parent[batch] != batch:
            parent[batch] = parent[parent[batch]]
            batch = int(parent[batch])
        return batch

    key = unit_item + 1  # the query's units (-1) are one key
    first = np.full(int(key.max()) + 1, count, dtype=np.int64)
    np.minimum.at(first, key, batch_of_unit)
    apart = batch_of_unit != first[key]
    for batch, anchor in set(zip(batch_of_unit[apart].tolist(), first[key][apart].tolist(), strict=True)):
        a, b = root(batch), root(anchor)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.fromiter((root(batch) for batch in range(count)), dtype=np.int64, count=count)


def merge(request: ScoreRequest, parts: list[tuple[ShardItems, ScoreResult]], usage: Usage) -> ScoreResult:
    """The shards' answers as one result for `request`, as if scored in one piece (`usage`: the whole request's)."""
    count = len(request.items)
    scores = np.full(count, np.nan)
    truncated = np.zeros(count, dtype=bool)
    for items, result in parts:
        for entry in result.entries:
            if items.owned[entry.index]:
                index = int(items.indices[entry.index])
                scores[index] = entry.score
                truncated[index] = entry.truncated
    if np.isnan(scores).any():
        missing = int(np.flatnonzero(np.isnan(scores))[0])
        raise AssertionError(f"no shard scored item {missing}")  # a bug: shards cover every item
    entries = ranked_entries(request, scores, truncated)
    return ScoreResult(model=request.model, query_id=request.query.id, entries=entries, usage=usage)


def located(error: RerankdError, indices: np.ndarray) -> RerankdError:
    """A shard's error about one of its items, renamed to that item's index in the whole request."""
    index = error.extra.get("index")
    if isinstance(index, int) and 0 <= index < len(indices) and int(indices[index]) != index:
        whole = int(indices[index])
        error.extra = {**error.extra, "index": whole}
        error.message = error.message.replace(f"item {index} ", f"item {whole} ", 1)
        error.args = (error.message,)
    return error
