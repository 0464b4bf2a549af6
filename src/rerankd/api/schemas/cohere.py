"""Cohere and Jina rerank bodies (`POST /v1/rerank`, `POST /v2/rerank`)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from rerankd.api.schemas.common import Count, DocumentLike, non_empty


class RerankRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Cohere's rerank body (Jina's is the same subset)."""

    query: str
    documents: Annotated[list[DocumentLike], non_empty("strings or objects with `text`; at most `--max-items`")]
    model: Annotated[str | None, Meta(description="default: the server's first `--model`")] = None
    top_n: Annotated[Count | None, Meta(description="return only the best `top_n`")] = None
    return_documents: Annotated[bool | None, Meta(description="echo each document's text")] = None
    max_chunks_per_doc: Count | None = None
    max_tokens_per_doc: Count | None = None
    # Checked in code so the error names `rank_fields` itself; the schema says the same.
    rank_fields: Annotated[
        Annotated[list[str], Meta(extra_json_schema={"const": ["text"]})] | None,
        Meta(description='only `["text"]` is supported'),
    ] = None


class DocumentText(msgspec.Struct):
    text: str


class RerankResult(msgspec.Struct, omit_defaults=True):
    index: Annotated[int, Meta(description="the document's position in the request")]
    relevance_score: float
    document: Annotated[DocumentText | None, Meta(description="with `return_documents: true`")] = None


class ApiVersion(msgspec.Struct):
    version: str


class BilledUnits(msgspec.Struct):
    search_units: int


class Tokens(msgspec.Struct):
    input_tokens: int
    output_tokens: int


class RerankMeta(msgspec.Struct):
    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: Tokens


class RerankUsage(msgspec.Struct):
    """Jina's usage block."""

    total_tokens: int
    prompt_tokens: int


class RerankResponse(msgspec.Struct):
    """Cohere's `id`/`results`/`meta` plus Jina's `model`/`usage`, so clients of either read it unchanged."""

    id: str
    model: str
    results: list[RerankResult]
    meta: RerankMeta
    usage: RerankUsage
