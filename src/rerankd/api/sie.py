"""The SIE score protocol: `POST /v1/score/{model}` (JSON or MessagePack), as `sie-sdk` speaks it.

Request: `{"query": Item, "items": [Item], "instruction"?: str, "options"?: {...}}`.
Response: `{"model", "query_id"?, "scores": [{"item_id", "score", "rank", "index", "truncated"}],
"usage": {...}}`, best first.
"""

from __future__ import annotations

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
    parse_item,
    reject_unknown,
    require,
    require_object,
)
from rerankd.core.errors import InvalidRequest
from rerankd.core.types import ScoreOptions, ScoreRequest, ScoreResult

_BODY_FIELDS = {"query", "items", "instruction", "options"}
# `profile` is how sie-sdk names server-side presets; rerankd has one profile per model.
# `lora` is sie-sdk's own name for the adapter option; `lora_id` is rerankd's.
_OPTION_FIELDS = {"top_k", "raw_scores", "lora_id", "lora", "max_tokens_per_doc", "max_chunks_per_doc", "profile"}


def _adapter_option(options: dict) -> tuple[str | None, str]:
    """(adapter, the field that named it): `options.lora_id`, or sie-sdk's `options.lora`; both must agree."""
    lora_id = get_str(options, "lora_id", "options.lora_id")
    lora = get_str(options, "lora", "options.lora")
    if lora_id is not None and lora is not None and lora_id != lora:
        raise InvalidRequest("options.lora and options.lora_id name different adapters", param="options.lora")
    if lora_id is None and lora is not None:
        return lora, "options.lora"
    return lora_id, "options.lora_id"


def parse_options(value: object) -> tuple[ScoreOptions, str]:
    """The options, and the field that named the adapter (errors about the adapter point at it)."""
    if value is None:
        return ScoreOptions(), "options.lora_id"
    options = require_object(value, "options")
    reject_unknown(options, _OPTION_FIELDS, "options")
    adapter, adapter_param = _adapter_option(options)
    return ScoreOptions(
        top_k=get_positive_int(options, "top_k", "options.top_k"),
        raw_scores=get_bool(options, "raw_scores", "options.raw_scores"),
        max_tokens_per_doc=get_positive_int(options, "max_tokens_per_doc", "options.max_tokens_per_doc"),
        max_chunks_per_doc=get_positive_int(options, "max_chunks_per_doc", "options.max_chunks_per_doc"),
        adapter=adapter,
    ), adapter_param


def parse_score_request(model: str, body: object, max_items: int) -> tuple[ScoreRequest, str]:
    body = require_object(body, "")
    reject_unknown(body, _BODY_FIELDS, "")
    query = parse_item(require(body, "query", "query"), "query")
    raw_items = get_list(body, "items", "items", max_items=max_items)
    items = [parse_item(value, f"items[{index}]") for index, value in enumerate(raw_items)]
    options, adapter_field = parse_options(body.get("options"))
    request = ScoreRequest(
        model=model,
        query=query,
        items=items,
        instruction=get_str(body, "instruction", "instruction"),
        options=options,
    )
    return request, adapter_field


def render_score_result(result: ScoreResult) -> dict:
    payload: dict = {
        "model": result.model,
        "scores": [
            {
                "item_id": entry.item_id,
                "score": entry.score,
                "rank": entry.rank,
                "index": entry.index,
                "truncated": entry.truncated,
            }
            for entry in result.entries
        ],
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "input_tokens_details": {"content_tokens": result.usage.content_tokens},
            "pairs": result.usage.pairs,
            "truncated_items": result.usage.truncated_items,
            "chunks": result.usage.chunks,
        },
    }
    if result.query_id is not None:
        payload["query_id"] = result.query_id
    return payload


async def score(request: Request) -> Response:
    ctx = context(request)
    body = await read_body(request, ctx.limits.max_body_bytes)
    score_request, adapter_field = parse_score_request(request.path_params["model"], body, ctx.limits.max_items)
    result = await score_unless_disconnected(request, score_request, fields={"adapter": adapter_field})
    return render(render_score_result(result), msgpack_body=wants_msgpack(request))


routes = [Route("/v1/score/{model:path}", score, methods=["POST"])]
