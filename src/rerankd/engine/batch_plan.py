"""How the scheduler cuts one request alone into batches, as pure functions of its units' costs.

The scheduler sorts a request's units longest first (a stable sort: equal costs keep unit
order) and cuts batches greedily from the longest, `BatchLimits.capacity(width)` units each.
With several requests waiting, a batch takes the longest units across them (`longest_first`).
Scored with no other traffic, a request's batches are therefore fixed by its units' costs and
the limits alone (`lone_batches`). Why it matters: a float32 network's output for a row moves
in its last bits with the batch it runs in (padded width, rows per batch), so whoever splits a
request across processes (`rerankd.ray`) must cut it along these very batches to get the one
process's scores bit for bit. Both read the rule from here; there is no second copy of it.

Two properties the splitting relies on (tests/test_ray.py checks them against the engine):

* every batch but the last holds exactly `capacity(width)` units;
* the units of any subset of whole batches, in their original relative order, sort into the
  same sequence (stable sort), so the greedy cut of that subset yields those same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rerankd.core.types import Usage
from rerankd.models.base import Prepared


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """A scheduler's batch limits: rows per batch, and padded tokens (rows x longest row) per batch."""

    max_batch_size: int
    max_batch_tokens: int

    def capacity(self, width: int) -> int:
        """Units a batch holds when its longest unit costs `width` tokens (at least one)."""
        return max(1, min(self.max_batch_size, self.max_batch_tokens // max(width, 1)))


def cost_lengths(prepared: Prepared) -> np.ndarray:
    """Tokens each unit costs the network: what batches are budgeted and the queue is bounded in."""
    return prepared.lengths if prepared.cost_lengths is None else prepared.cost_lengths


def unit_order(costs: np.ndarray) -> np.ndarray:
    """Units longest first; equal costs keep unit order (the order a request's batches are cut in)."""
    return np.argsort(-np.asarray(costs), kind="stable")


def longest_first(heads: list[np.ndarray], capacity: int) -> np.ndarray:
    """How many units each request gives a batch of `capacity` cut from several at once.

    `heads[r]` is request `r`'s waiting unit costs, longest first: the batch takes the longest
    units across requests, so each request gives a prefix of its own; among equal costs the
    earlier request gives first. With one request it is the cut `lone_batches` makes.
    """
    if len(heads) == 1:
        return np.array([min(capacity, len(heads[0]))])
    costs = np.concatenate(heads)
    owners = np.repeat(np.arange(len(heads)), [len(head) for head in heads])
    chosen = np.lexsort((owners, -costs))[:capacity]
    return np.bincount(owners[chosen], minlength=len(heads))


@dataclass(frozen=True)
class LoneBatches:
    """The batches of one request scored alone: batch `b` runs units `order[bounds[b]:bounds[b + 1]]`."""

    order: np.ndarray
    bounds: np.ndarray
    widths: np.ndarray  # the cost of each batch's longest (first) unit

    @property
    def count(self) -> int:
        return len(self.widths)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)

    @property
    def padded_tokens(self) -> np.ndarray:
        """Rows x width of each batch: what the scheduler budgets (and its stats count)."""
        return self.sizes * self.widths

    def batch_of_unit(self) -> np.ndarray:
        """The batch each unit (in unit order) runs in."""
        batch = np.empty(len(self.order), dtype=np.int64)
        batch[self.order] = np.repeat(np.arange(self.count), self.sizes)
        return batch


def lone_batches(costs: np.ndarray, limits: BatchLimits) -> LoneBatches:
    """The batches the scheduler cuts from a request with these unit costs when no other request shares them."""
    order = unit_order(costs)
    ordered = np.asarray(costs)[order]
    bounds = [0]
    while bounds[-1] < len(order):
        start = bounds[-1]
        bounds.append(min(len(order), start + limits.capacity(int(ordered[start]))))
    edges = np.asarray(bounds, dtype=np.int64)
    return LoneBatches(order, edges, ordered[edges[:-1]].astype(np.int64))


def unit_items(prepared: Prepared) -> np.ndarray:
    """The item each unit scores (windows of a document share it); -1 for units that encode the query."""
    items = prepared.unit_item if prepared.unit_item is not None else np.arange(prepared.n_items)
    return np.concatenate([np.full(prepared.n_query_units, -1, dtype=np.int64), np.asarray(items, dtype=np.int64)])


@dataclass(frozen=True)
class RequestUnits:
    """A tokenized request as batching sees it (no tokens): enough to cut it into batches elsewhere.

    `usage` is the request's own (what one process reports for it), `limits` those of the
    scheduler it was prepared for.
    """

    costs: np.ndarray
    unit_item: np.ndarray
    n_items: int
    limits: BatchLimits
    usage: Usage

    def batches(self) -> LoneBatches:
        return lone_batches(self.costs, self.limits)
