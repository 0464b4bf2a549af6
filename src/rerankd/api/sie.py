"""The SIE score protocol: `POST /v1/score/{model}` (JSON or MessagePack), as `sie-sdk` speaks it.

Request: `schemas.sie.ScoreRequest`; response: `schemas.sie.ScoreResponse`, best first.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import read, render, wants_msgpack
from rerankd.api.common import check_text_bytes, context, score_unless_disconnected, timeout_ms
from rerankd.api.openapi import BODY_ERRORS, SCORING_ERRORS, Operation
from rerankd.api.schemas import sie as wire
from rerankd.api.schemas.common import check_count
from rerankd.core import types
from rerankd.core.errors import DuplicateItemId, InvalidRequest


def _item(item: wire.Item) -> types.Item:
    return types.Item(text=item.text, id=item.id, metadata=item.metadata)


def _adapter(options: wire.ScoreOptions) -> tuple[str | None, str]:
    """(adapter, the field that named it): `options.lora_id`, or sie-sdk's `options.lora`; both must agree."""
    if options.lora_id is not None and options.lora is not None and options.lora_id != options.lora:
        raise InvalidRequest("options.lora and options.lora_id name different adapters", param="options.lora")
    if options.lora_id is None and options.lora is not None:
        return options.lora, "options.lora"
    return options.lora_id, "options.lora_id"


def check_unique_ids(items: list[types.Item]) -> None:
    """DUPLICATE_ITEM_ID at the second item whose id (its own, or the default `item-{i}`) was seen before."""
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        name = types.item_id(item, index)
        earlier = first.setdefault(name, index)
        if earlier != index:
            if item.id is None:
                message = f"items[{index}] has no id, so its id is 'item-{index}', which items[{earlier}].id already is"
            else:
                message = f"'items[{index}].id' repeats the id of items[{earlier}]; ids must be unique in a request"
            raise DuplicateItemId(message, param=f"items[{index}].id")


def _texts(body: wire.ScoreRequest):
    yield "query.text", body.query.text
    for index, item in enumerate(body.items):
        yield f"items[{index}].text", item.text


def to_score_request(
    model: str, body: wire.ScoreRequest, *, max_items: int, max_text_bytes: int | None = None
) -> tuple[types.ScoreRequest, dict[str, str]]:
    """The core request, and the renames for errors about it (the adapter is named as the client sent it)."""
    check_count(body.items, "items", max_items)
    check_text_bytes(_texts(body), max_text_bytes)
    options = body.options or wire.ScoreOptions()
    adapter, adapter_field = _adapter(options)
    items = [_item(item) for item in body.items]
    check_unique_ids(items)
    request = types.ScoreRequest(
        model=model,
        query=_item(body.query),
        items=items,
        instruction=body.instruction,
        options=types.ScoreOptions(
            top_k=options.top_k,
            raw_scores=bool(options.raw_scores),
            max_tokens_per_doc=options.max_tokens_per_doc,
            max_chunks_per_doc=options.max_chunks_per_doc,
            adapter=adapter,
        ),
    )
    return request, {"adapter": adapter_field}


def to_score_response(result: types.ScoreResult) -> wire.ScoreResponse:
    usage = result.usage
    return wire.ScoreResponse(
        model=result.model,
        scores=[
            wire.ScoredItem(
                item_id=entry.item_id,
                score=float(entry.score),
                rank=entry.rank,
                index=entry.index,
                truncated=entry.truncated,
            )
            for entry in result.entries
        ],
        usage=wire.ScoreUsage(
            input_tokens=usage.input_tokens,
            input_tokens_details=wire.InputTokensDetails(content_tokens=usage.content_tokens),
            pairs=usage.pairs,
            truncated_items=usage.truncated_items,
            chunks=usage.chunks,
        ),
        query_id=result.query_id,
    )


async def score(request: Request) -> Response:
    limits = context(request).limits
    body = await read(request, wire.ScoreRequest, limits.max_body_bytes)
    score_request, fields = to_score_request(
        request.path_params["model"], body, max_items=limits.max_items, max_text_bytes=limits.max_text_bytes
    )
    deadline = timeout_ms(request, body.options.timeout_ms if body.options else None)
    result = await score_unless_disconnected(request, score_request, fields=fields, deadline_ms=deadline)
    return render(to_score_response(result), msgpack_body=wants_msgpack(request))


routes = [Route("/v1/score/{model:path}", score, methods=["POST"])]

operations = [
    Operation(
        "POST",
        "/v1/score/{model}",
        "Score items against a query (SIE protocol)",
        tag="SIE",
        request=wire.ScoreRequest,
        response=wire.ScoreResponse,
        errors=(*BODY_ERRORS, DuplicateItemId, *SCORING_ERRORS),
        deadline=True,
        params={"model": "served model name, `name:adapter` for a LoRA adapter; may contain '/'"},
        description="The protocol `sie-sdk` speaks. JSON or MessagePack in; the answer follows the body's "
        "encoding, or `Accept: application/msgpack`.",
    )
]
