"""Text Embeddings Inference's `POST /rerank`.

Request: `{"query", "texts": [str], "raw_scores"?, "return_text"?, "truncate"?,
"truncation_direction"?, "model"?}`; response: `[{"index", "score", "text"?}]`, best first.
As in TEI, `truncate` defaults to false: a text over the model's limit is a 413, not cut.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import read_body, render, wants_msgpack
from rerankd.api.cohere import model_or_default
from rerankd.api.common import context, score_unless_disconnected
from rerankd.api.fields import get_bool, get_list, get_str, parse_document, reject_unknown, require_object
from rerankd.core.errors import InvalidRequest
from rerankd.core.types import Item, ScoreOptions, ScoreRequest

_FIELDS = {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction", "model"}


async def rerank(request: Request) -> Response:
    ctx = context(request)
    body = require_object(await read_body(request, ctx.limits.max_body_bytes), "")
    reject_unknown(body, _FIELDS, "")
    direction = get_str(body, "truncation_direction", "truncation_direction") or "Right"
    if direction.lower() != "right":
        raise InvalidRequest("only truncation_direction 'Right' is supported", param="truncation_direction")
    query = get_str(body, "query", "query", required=True)
    texts = get_list(body, "texts", "texts", max_items=ctx.limits.max_items)
    items = [parse_document(value, f"texts[{index}]") for index, value in enumerate(texts)]
    score_request = ScoreRequest(
        model=model_or_default(body, request),
        query=Item(text=query),  # type: ignore[arg-type]
        items=items,
        options=ScoreOptions(
            raw_scores=get_bool(body, "raw_scores", "raw_scores"),
            truncate=get_bool(body, "truncate", "truncate", default=False),
        ),
    )
    return_text = get_bool(body, "return_text", "return_text")
    result = await score_unless_disconnected(request, score_request)
    payload = []
    for entry in result.entries:
        row: dict = {"index": entry.index, "score": entry.score}
        if return_text:
            row["text"] = items[entry.index].text
        payload.append(row)
    return render(payload, msgpack_body=wants_msgpack(request))


routes = [Route("/rerank", rerank, methods=["POST"])]
