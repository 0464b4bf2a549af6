"""The SIE score protocol's bodies (`POST /v1/score/{model}`), as `sie-sdk` sends and reads them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from rerankd.api.schemas.common import Count, FreeObject, non_empty


class Item(msgspec.Struct):
    """The query or one item to score.

    Keys other than these are ignored (sie-sdk items may carry more), as they always were.
    """

    text: str
    id: Annotated[str | None, Meta(description="echoed as `item_id`; default `item-{index}`")] = None
    metadata: Annotated[FreeObject | None, Meta(description="free-form; not interpreted")] = None


class ScoreOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Per-request options; an unknown option is refused rather than silently ignored."""

    top_k: Annotated[Count | None, Meta(description="return only the best `top_k` items")] = None
    raw_scores: Annotated[bool | None, Meta(description="the model's raw logits instead of its activation")] = None
    lora_id: Annotated[str | None, Meta(description="LoRA adapter to score with (also `model:adapter`)")] = None
    lora: Annotated[str | None, Meta(description="sie-sdk's name for `lora_id`; both must agree")] = None
    max_tokens_per_doc: Annotated[Count | None, Meta(description="cut each item to this many tokens")] = None
    max_chunks_per_doc: Annotated[
        Count | None, Meta(description="score long items as up to this many windows (max over windows)")
    ] = None
    profile: Annotated[str | None, Meta(description="accepted for sie-sdk; rerankd has one profile per model")] = None
    timeout_ms: Annotated[
        Annotated[int, Meta(ge=1, le=86_400_000)] | None,
        Meta(
            description="deadline in milliseconds: past it the answer is 504 DEADLINE_EXCEEDED and the work is "
            "cancelled (also the `X-Request-Timeout-Ms` header; the shorter wins)"
        ),
    ] = None


class ScoreRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A query and the items to rank against it."""

    query: Item
    items: Annotated[list[Item], non_empty("at most the server's `--max-items` (413 beyond)")]
    instruction: Annotated[str | None, Meta(description="task instruction, for models that take one")] = None
    options: ScoreOptions | None = None


class ScoredItem(msgspec.Struct):
    item_id: str
    score: float
    rank: Annotated[int, Meta(description="0 is the best")]
    index: Annotated[int, Meta(description="the item's position in the request")]
    truncated: Annotated[bool, Meta(description="the item was cut to fit the model")]


class InputTokensDetails(msgspec.Struct):
    content_tokens: Annotated[int, Meta(description="tokens of the caller's own text")]


class ScoreUsage(msgspec.Struct):
    input_tokens: Annotated[int, Meta(description="tokens the network read, special tokens and prompts included")]
    input_tokens_details: InputTokensDetails
    pairs: int
    truncated_items: int
    chunks: int


class ScoreResponse(msgspec.Struct, omit_defaults=True):
    """Scores best first; `query_id` only when the query had an `id`."""

    model: str
    scores: list[ScoredItem]
    usage: ScoreUsage
    query_id: str | None = None
