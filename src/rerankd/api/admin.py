"""Models and their lifecycle over HTTP.

    GET    /v1/models                               every served model (and catalog ids not served)
    GET    /v1/models/{name}                        one model (or `name:adapter`, one adapter)
    PUT    /v1/models/{name}        {"source", "revision"?}   load, or hot-swap when serving
    DELETE /v1/models/{name}                        unload once in-flight requests finish
    GET    /v1/models/{name}/adapters/{adapter}
    PUT    /v1/models/{name}/adapters/{adapter}  {"source": DIR}   load (or replace) a LoRA adapter
    DELETE /v1/models/{name}/adapters/{adapter}

Writes (PUT, DELETE) are admin routes: off unless `--admin-api-key` or `--admin-api` (api/auth.py);
a local `source` must lie inside the `--model-root`s when there are any (registry/sources.py).

Model names may contain '/' (Hugging Face ids), so `{name}` is a path; the adapter route is
matched first and takes the last `/adapters/{adapter}` segment.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.auth import require_admin
from rerankd.api.codec import read, render, wants_msgpack
from rerankd.api.common import context
from rerankd.api.openapi import BODY_ERRORS, Operation
from rerankd.api.schemas import admin as wire
from rerankd.core import errors
from rerankd.core.errors import InvalidRequest, ModelNotFound

Body = TypeVar("Body", wire.ModelSource, wire.AdapterSource)


def _reply(request: Request, payload: Any) -> Response:
    return render(payload, msgpack_body=wants_msgpack(request))


async def _source(request: Request, schema: type[Body]) -> Body:
    """An admin body; its `source` must not be blank (checked here so the message says so)."""
    body = await read(request, schema, context(request).limits.max_body_bytes)
    if not body.source.strip():
        raise InvalidRequest("'source' must not be blank", param="source")
    return body


async def list_models(request: Request) -> Response:
    ctx = context(request)
    registry = ctx.registry
    served = [ctx.service.describe(name) | {"registered": True} for name in registry.names()]
    known = registry.describe_catalog()
    models = served + known
    # `data` is the OpenAI-style list; `models` is what sie-sdk's list_models() reads.
    return _reply(
        request,
        wire.ModelList(
            object="list", data=models, models=models, memory=registry.memory(), hardware=registry.hardware()
        ),
    )


async def get_model(request: Request) -> Response:
    registry = context(request).registry
    name = request.path_params["name"]
    if name in registry:
        return _reply(request, context(request).service.describe(name) | {"registered": True})
    known = registry.describe_catalog(name)
    if known:
        return _reply(request, known[0])
    base, sep, adapter = name.rpartition(":")
    if sep and base in registry:
        return _reply(request, registry.describe_adapter(base, adapter))
    raise ModelNotFound(f"model '{name}' is not served here", param="model")


async def put_model(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    body = await _source(request, wire.ModelSource)
    name = request.path_params["name"]
    await ctx.registry.put_model(name, body.source, body.revision)
    return _reply(request, ctx.service.describe(name) | {"registered": True})


async def delete_model(request: Request) -> Response:
    require_admin(request)
    name = request.path_params["name"]
    await context(request).registry.unload(name)
    return _reply(request, wire.Deleted(id=name, object="model", deleted=True))


async def adapter(request: Request) -> Response:
    registry = context(request).registry
    name, adapter_name = request.path_params["name"], request.path_params["adapter"]
    if request.method == "GET":
        return _reply(request, registry.describe_adapter(name, adapter_name))
    require_admin(request)
    if request.method == "PUT":
        body = await _source(request, wire.AdapterSource)
        return _reply(request, await registry.put_adapter(name, adapter_name, body.source))
    await registry.unload_adapter(name, adapter_name)
    return _reply(request, wire.Deleted(id=f"{name}:{adapter_name}", object="adapter", deleted=True))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}/adapters/{adapter}", adapter, methods=["GET", "PUT", "DELETE"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
    Route("/v1/models/{name:path}", put_model, methods=["PUT"]),
    Route("/v1/models/{name:path}", delete_model, methods=["DELETE"]),
]

_NAME = "model name; may contain '/' (Hugging Face ids)"
_ADAPTER = {"name": _NAME, "adapter": "adapter name"}
_LOADING = (errors.ModelLoadFailed, errors.ModelLoading, errors.NoCapacity)

operations = [
    Operation("GET", "/v1/models", "List served models and catalog ids", tag="Models", response=wire.ModelList),
    Operation(
        "GET",
        "/v1/models/{name}",
        "One model, catalog id or `name:adapter`",
        tag="Models",
        response=wire.MODEL_OR_ADAPTER,
        errors=(errors.ModelNotFound, errors.AdapterNotFound),
        params={"name": _NAME},
    ),
    Operation(
        "PUT",
        "/v1/models/{name}",
        "Load a model, or hot-swap it when serving",
        tag="Models",
        request=wire.ModelSource,
        response=wire.ModelInfo,
        errors=(*BODY_ERRORS, errors.ModelNotFound, *_LOADING),
        params={"name": _NAME},
        admin=True,
        description="Answers once the new version serves; on failure the old version keeps serving (502).",
    ),
    Operation(
        "DELETE",
        "/v1/models/{name}",
        "Unload a model once its in-flight requests finish",
        tag="Models",
        response=wire.Deleted,
        errors=(errors.ModelNotFound,),
        params={"name": _NAME},
        admin=True,
    ),
    Operation(
        "GET",
        "/v1/models/{name}/adapters/{adapter}",
        "One LoRA adapter",
        tag="Models",
        response=wire.AdapterInfo,
        errors=(errors.ModelNotFound, errors.AdapterNotFound),
        params=_ADAPTER,
    ),
    Operation(
        "PUT",
        "/v1/models/{name}/adapters/{adapter}",
        "Load (or replace) a LoRA adapter",
        tag="Models",
        request=wire.AdapterSource,
        response=wire.AdapterInfo,
        errors=(*BODY_ERRORS, errors.ModelNotFound, *_LOADING),
        params=_ADAPTER,
        admin=True,
    ),
    Operation(
        "DELETE",
        "/v1/models/{name}/adapters/{adapter}",
        "Unload a LoRA adapter once its in-flight requests finish",
        tag="Models",
        response=wire.Deleted,
        errors=(errors.ModelNotFound, errors.AdapterNotFound),
        params=_ADAPTER,
        admin=True,
    ),
]
