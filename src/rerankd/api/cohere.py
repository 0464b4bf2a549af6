"""Cohere and Jina rerank: `POST /v1/rerank` and `POST /v2/rerank`.

Request: `schemas.cohere.RerankRequest`. Response: Cohere's `id`/`results`/`meta` plus Jina's
`model`/`usage`, so clients of either parse it unchanged.
"""

from __future__ import annotations

import math
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import read, render, wants_msgpack
from rerankd.api.common import check_text_bytes, context, score_unless_disconnected, timeout_ms
from rerankd.api.openapi import BODY_ERRORS, SCORING_ERRORS, Operation
from rerankd.api.schemas import cohere as wire
from rerankd.api.schemas.common import check_count, document_item, model_or_default
from rerankd.core import types
from rerankd.core.errors import InvalidRequest


def to_score_request(
    body: wire.RerankRequest, *, default_model: str | None, max_items: int, max_text_bytes: int | None = None
) -> types.ScoreRequest:
    if body.rank_fields is not None and body.rank_fields != ["text"]:
        raise InvalidRequest("only rank_fields=['text'] is supported", param="rank_fields")
    check_count(body.documents, "documents", max_items)
    items = [document_item(document) for document in body.documents]
    check_text_bytes(
        [("query", body.query), *((f"documents[{i}]", item.text) for i, item in enumerate(items))], max_text_bytes
    )
    return types.ScoreRequest(
        model=model_or_default(body.model, default_model),
        query=types.Item(text=body.query),
        items=items,
        options=types.ScoreOptions(
            top_k=body.top_n,
            max_tokens_per_doc=body.max_tokens_per_doc,
            max_chunks_per_doc=body.max_chunks_per_doc,
        ),
    )


def to_rerank_response(
    result: types.ScoreResult, body: wire.RerankRequest, request: types.ScoreRequest, *, version: str
) -> wire.RerankResponse:
    """`version` is the route's API version (1 or 2), echoed in `meta` as Cohere does."""
    usage = result.usage
    return wire.RerankResponse(
        id=str(uuid.uuid4()),
        model=result.model,
        results=[
            wire.RerankResult(
                index=entry.index,
                relevance_score=float(entry.score),
                document=wire.DocumentText(request.items[entry.index].text) if body.return_documents else None,
            )
            for entry in result.entries
        ],
        meta=wire.RerankMeta(
            api_version=wire.ApiVersion(version),
            billed_units=wire.BilledUnits(search_units=max(1, math.ceil(usage.pairs / 100))),
            tokens=wire.Tokens(input_tokens=usage.input_tokens, output_tokens=0),
        ),
        usage=wire.RerankUsage(total_tokens=usage.input_tokens, prompt_tokens=usage.input_tokens),
    )


async def _rerank(request: Request, version: str) -> Response:
    ctx = context(request)
    body = await read(request, wire.RerankRequest, ctx.limits.max_body_bytes)
    score_request = to_score_request(
        body, default_model=ctx.default_model, max_items=ctx.limits.max_items, max_text_bytes=ctx.limits.max_text_bytes
    )
    result = await score_unless_disconnected(
        request, score_request, fields={"items": "documents"}, deadline_ms=timeout_ms(request)
    )
    response = to_rerank_response(result, body, score_request, version=version)
    return render(response, msgpack_body=wants_msgpack(request))


async def rerank_v1(request: Request) -> Response:
    return await _rerank(request, "1")


async def rerank_v2(request: Request) -> Response:
    return await _rerank(request, "2")


routes = [
    Route("/v1/rerank", rerank_v1, methods=["POST"]),
    Route("/v2/rerank", rerank_v2, methods=["POST"]),
]

operations = [
    Operation(
        "POST",
        path,
        f"Rerank documents (Cohere {version} / Jina)",
        tag="Cohere / Jina",
        request=wire.RerankRequest,
        response=wire.RerankResponse,
        errors=BODY_ERRORS + SCORING_ERRORS,
        deadline=True,
    )
    for path, version in (("/v1/rerank", "v1"), ("/v2/rerank", "v2"))
]
