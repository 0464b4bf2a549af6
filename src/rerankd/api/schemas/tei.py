"""Text Embeddings Inference's `POST /rerank` bodies."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from rerankd.api.schemas.common import DocumentLike, non_empty


class TeiRerankRequest(msgspec.Struct, forbid_unknown_fields=True):
    query: str
    texts: Annotated[list[DocumentLike], non_empty("at most the server's `--max-items`")]
    raw_scores: bool | None = None
    return_text: bool | None = None
    truncate: Annotated[
        bool | None, Meta(description="as in TEI, default false: a text over the model's limit is a 413")
    ] = None
    # Checked in code, case-insensitively, so the error keeps its own message; the schema says the same.
    truncation_direction: Annotated[
        Annotated[str, Meta(extra_json_schema={"pattern": "^[Rr][Ii][Gg][Hh][Tt]$"})] | None,
        Meta(description="only `Right` (any case) is supported"),
    ] = None
    model: Annotated[str | None, Meta(description="default: the server's first `--model`")] = None


class TeiRank(msgspec.Struct, omit_defaults=True):
    index: Annotated[int, Meta(description="the text's position in the request")]
    score: float
    text: Annotated[str | None, Meta(description="with `return_text: true`")] = None


TeiRerankResponse = list[TeiRank]
