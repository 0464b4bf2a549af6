"""Text Embeddings Inference's `POST /rerank`.

Request: `schemas.tei.TeiRerankRequest`; response: `[{"index", "score", "text"?}]`, best first.
As in TEI, `truncate` defaults to false: a text over the model's limit is a 413, not cut.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import read, render, wants_msgpack
from rerankd.api.common import check_text_bytes, context, score_unless_disconnected, timeout_ms
from rerankd.api.openapi import BODY_ERRORS, SCORING_ERRORS, Operation
from rerankd.api.schemas import tei as wire
from rerankd.api.schemas.common import check_count, document_item, model_or_default
from rerankd.core import types
from rerankd.core.errors import InvalidRequest


def to_score_request(
    body: wire.TeiRerankRequest, *, default_model: str | None, max_items: int, max_text_bytes: int | None = None
) -> types.ScoreRequest:
    if (body.truncation_direction or "Right").lower() != "right":
        raise InvalidRequest("only truncation_direction 'Right' is supported", param="truncation_direction")
    check_count(body.texts, "texts", max_items)
    items = [document_item(text) for text in body.texts]
    texts = [("query", body.query), *((f"texts[{i}]", item.text) for i, item in enumerate(items))]
    check_text_bytes(texts, max_text_bytes)
    return types.ScoreRequest(
        model=model_or_default(body.model, default_model),
        query=types.Item(text=body.query),
        items=items,
        options=types.ScoreOptions(raw_scores=bool(body.raw_scores), truncate=bool(body.truncate)),
    )


def to_tei_response(
    result: types.ScoreResult, body: wire.TeiRerankRequest, request: types.ScoreRequest
) -> wire.TeiRerankResponse:
    return [
        wire.TeiRank(
            index=entry.index,
            score=float(entry.score),
            text=request.items[entry.index].text if body.return_text else None,
        )
        for entry in result.entries
    ]


async def rerank(request: Request) -> Response:
    ctx = context(request)
    body = await read(request, wire.TeiRerankRequest, ctx.limits.max_body_bytes)
    score_request = to_score_request(
        body, default_model=ctx.default_model, max_items=ctx.limits.max_items, max_text_bytes=ctx.limits.max_text_bytes
    )
    result = await score_unless_disconnected(
        request, score_request, fields={"items": "texts"}, deadline_ms=timeout_ms(request)
    )
    return render(to_tei_response(result, body, score_request), msgpack_body=wants_msgpack(request))


routes = [Route("/rerank", rerank, methods=["POST"])]

operations = [
    Operation(
        "POST",
        "/rerank",
        "Rerank texts (Hugging Face TEI)",
        tag="TEI",
        request=wire.TeiRerankRequest,
        response=wire.TeiRerankResponse,
        errors=BODY_ERRORS + SCORING_ERRORS,
        deadline=True,
    )
]
