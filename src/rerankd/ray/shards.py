"""Scatter-gather without Ray: what a shard carries, how a request is split, how answers merge.

A request with more items than the threshold is cut into contiguous shards, one per replica
at most; each shard is an ordinary `ScoreRequest` (the same query, instruction and options,
`top_k` lifted so every score comes back). The merge puts every score back at its item's
index in the whole request and applies the engine's own ranking rule (`ranked_entries`):
same scores, same order, ranks, indices and ids as one process would answer.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from rerankd.core.errors import RequestTooLarge, RerankdError
from rerankd.core.types import ScoreRequest, ScoreResult, Usage
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
    """What one replica scores: `request` holds items `offset .. offset + len(request.items)` of the whole."""

    request: ScoreRequest
    offset: int
    model: ModelState
    adapter: AdapterState | None = None


@dataclass(frozen=True, slots=True)
class ShardAnswer:
    """A replica's answer: a result, or the client-facing error it raised (never both)."""

    replica: str
    pid: int
    result: ScoreResult | None = None
    error: RerankdError | None = None


def split(request: ScoreRequest, shards: int) -> list[tuple[int, ScoreRequest]]:
    """(offset, sub-request) for `shards` near-equal contiguous slices; the request itself for one."""
    count = len(request.items)
    shards = max(1, min(shards, count))
    if shards == 1:
        return [(0, request)]
    options = dataclasses.replace(request.options, top_k=None)
    bounds = np.linspace(0, count, shards + 1).round().astype(int).tolist()
    return [
        (start, dataclasses.replace(request, items=request.items[start:end], options=options))
        for start, end in itertools.pairwise(bounds)
    ]


def shard_count(items: int, threshold: int, replicas: int) -> int:
    """How many shards a request of `items` items becomes: 1 up to the threshold, then up to one per replica."""
    if threshold <= 0 or items <= threshold or replicas <= 1:
        return 1
    return min(replicas, math.ceil(items / threshold))


def merge(request: ScoreRequest, parts: list[tuple[int, ScoreResult]], max_tokens: int | None) -> ScoreResult:
    """The shards' results (`split`'s offsets) as one result for `request`, as if scored in one piece."""
    count = len(request.items)
    scores = np.full(count, np.nan)
    truncated = np.zeros(count, dtype=bool)
    for offset, result in parts:
        for entry in result.entries:
            scores[offset + entry.index] = entry.score
            truncated[offset + entry.index] = entry.truncated
    if np.isnan(scores).any():
        missing = int(np.flatnonzero(np.isnan(scores))[0])
        raise AssertionError(f"no shard scored item {missing}")  # a bug: shards cover every item
    usage = merge_usage([result.usage for _, result in parts])
    if max_tokens is not None and usage.input_tokens > max_tokens:
        # Each shard was within the bound; the request as a whole is not (the message one process gives).
        raise RequestTooLarge(
            f"the request makes {usage.input_tokens} tokens; this server accepts at most {max_tokens} per request",
            param="items",
            extra={"tokens": usage.input_tokens, "max_tokens": max_tokens},
        )
    entries = ranked_entries(request, scores, truncated)
    return ScoreResult(model=request.model, query_id=request.query.id, entries=entries, usage=usage)


def merge_usage(usages: list[Usage]) -> Usage:
    """Sums, with the query-only units (encoded once per shard) counted once, as one process counts them."""
    extra = len(usages) - 1
    first = usages[0]
    return Usage(
        input_tokens=sum(u.input_tokens for u in usages) - extra * first.query_input_tokens,
        content_tokens=sum(u.content_tokens for u in usages) - extra * first.query_content_tokens,
        pairs=sum(u.pairs for u in usages),
        truncated_items=sum(u.truncated_items for u in usages),
        chunks=sum(u.chunks for u in usages),
        query_input_tokens=first.query_input_tokens,
        query_content_tokens=first.query_content_tokens,
    )


def located(error: RerankdError, offset: int) -> RerankdError:
    """A shard's error about one of its items, renamed to that item's index in the whole request."""
    index = error.extra.get("index")
    if offset and isinstance(index, int):
        error.extra = {**error.extra, "index": index + offset}
        error.message = error.message.replace(f"item {index} ", f"item {index + offset} ", 1)
        error.args = (error.message,)
    return error
