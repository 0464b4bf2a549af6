"""One internal request and one result, whatever dialect a client speaks.

Every API dialect (SIE, Cohere/Jina, TEI) translates its body into a `ScoreRequest` and a
`ScoreResult` back into its own shape, so adding a dialect never touches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """One text to score (or the query). `id` and `metadata` are echoed, never interpreted."""

    text: str
    id: str | None = None
    metadata: dict[str, Any] | None = None


def item_id(item: Item, index: int) -> str:
    """The id results carry: the item's own, else `item-{index}` (so a request must not repeat one)."""
    return item.id if item.id is not None else f"item-{index}"


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """Per-request knobs shared by every dialect."""

    top_k: int | None = None
    raw_scores: bool = False
    max_tokens_per_doc: int | None = None
    max_chunks_per_doc: int | None = None
    adapter: str | None = None
    # False: refuse an item longer than the model's limit instead of cutting it (TEI's default).
    truncate: bool = True


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """A query and the items to rank against it, for one model (and optionally one adapter)."""

    model: str
    query: Item
    items: list[Item]
    instruction: str | None = None
    options: ScoreOptions = field(default_factory=ScoreOptions)


@dataclass(frozen=True, slots=True)
class ScoreEntry:
    """One scored item; `index` is its position in the request, `rank` its place (0 = best)."""

    item_id: str
    index: int
    score: float
    rank: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Token accounting: what the network actually read, and how much of it was the caller's text."""

    input_tokens: int
    content_tokens: int
    pairs: int
    truncated_items: int = 0
    chunks: int = 0
    # The part of `input_tokens` / `content_tokens` spent on units that encode the query alone
    # (bi-encoders, late interaction: once per request). Not reported to clients: a request
    # scored in shards pays it once per shard, and merging the shards counts it once.
    query_input_tokens: int = 0
    query_content_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores sorted best first (already cut to `top_k` when asked)."""

    model: str
    query_id: str | None
    entries: list[ScoreEntry]
    usage: Usage
