"""Cohere and Jina rerank: `POST /v1/rerank` and `POST /v2/rerank`.

Request: `{"model", "query", "documents": [str | {"text"}], "top_n"?, "return_documents"?,
"max_chunks_per_doc"?, "max_tokens_per_doc"?}`. Response: Cohere's `id`/`results`/`meta`
plus Jina's `model`/`usage`, so clients of either parse it unchanged.
"""

from __future__ import annotations

import math
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import read_body, render, wants_msgpack
from rerankd.api.common import context, score_unless_disconnected
from rerankd.api.fields import (
    get_bool,
    get_list,
    get_positive_int,
    get_str,
    parse_document,
    reject_unknown,
    require_object,
)
from rerankd.core.errors import InvalidRequest
from rerankd.core.types import Item, ScoreOptions, ScoreRequest, ScoreResult

_FIELDS = {
    "model",
    "query",
    "documents",
    "top_n",
    "return_documents",
    "max_chunks_per_doc",
    "max_tokens_per_doc",
    "rank_fields",
}


def model_or_default(body: dict, request: Request) -> str:
    model = get_str(body, "model", "model")
    if model is None:
        model = context(request).default_model
        if model is None:
            raise InvalidRequest("'model' is required", param="model")
    return model


def parse_rerank_request(body: object, request: Request) -> tuple[ScoreRequest, bool]:
    body = require_object(body, "")
    reject_unknown(body, _FIELDS, "")
    rank_fields = body.get("rank_fields")
    if rank_fields not in (None, ["text"]):
        raise InvalidRequest("only rank_fields=['text'] is supported", param="rank_fields")
    query = get_str(body, "query", "query", required=True)
    limit = context(request).limits.max_items
    documents = get_list(body, "documents", "documents", max_items=limit)
    items = [parse_document(value, f"documents[{index}]") for index, value in enumerate(documents)]
    options = ScoreOptions(
        top_k=get_positive_int(body, "top_n", "top_n"),
        max_tokens_per_doc=get_positive_int(body, "max_tokens_per_doc", "max_tokens_per_doc"),
        max_chunks_per_doc=get_positive_int(body, "max_chunks_per_doc", "max_chunks_per_doc"),
    )
    score_request = ScoreRequest(
        model=model_or_default(body, request),
        query=Item(text=query),
        items=items,
        options=options,  # type: ignore[arg-type]
    )
    return score_request, get_bool(body, "return_documents", "return_documents")


def render_rerank_result(result: ScoreResult, request: ScoreRequest, *, return_documents: bool, version: str) -> dict:
    results = []
    for entry in result.entries:
        row: dict = {"index": entry.index, "relevance_score": entry.score}
        if return_documents:
            row["document"] = {"text": request.items[entry.index].text}
        results.append(row)
    return {
        "id": str(uuid.uuid4()),
        "model": result.model,
        "results": results,
        "meta": {
            "api_version": {"version": version},
            "billed_units": {"search_units": max(1, math.ceil(result.usage.pairs / 100))},
            "tokens": {"input_tokens": result.usage.input_tokens, "output_tokens": 0},
        },
        "usage": {"total_tokens": result.usage.input_tokens, "prompt_tokens": result.usage.input_tokens},
    }


async def _rerank(request: Request, version: str) -> Response:
    body = await read_body(request, context(request).limits.max_body_bytes)
    score_request, return_documents = parse_rerank_request(body, request)
    result = await score_unless_disconnected(request, score_request)
    payload = render_rerank_result(result, score_request, return_documents=return_documents, version=version)
    return render(payload, msgpack_body=wants_msgpack(request))


async def rerank_v1(request: Request) -> Response:
    return await _rerank(request, "1")


async def rerank_v2(request: Request) -> Response:
    return await _rerank(request, "2")


routes = [
    Route("/v1/rerank", rerank_v1, methods=["POST"]),
    Route("/v2/rerank", rerank_v2, methods=["POST"]),
]
