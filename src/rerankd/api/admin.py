"""Models and their lifecycle over HTTP, plus health.

    GET    /v1/models                               every served model (and catalog ids not served)
    GET    /v1/models/{name}                        one model (or `name:adapter`, one adapter)
    PUT    /v1/models/{name}        {"source", "revision"?}   load, or hot-swap when serving
    DELETE /v1/models/{name}                        unload once in-flight requests finish
    GET    /v1/models/{name}/adapters/{adapter}
    PUT    /v1/models/{name}/adapters/{adapter}  {"source": DIR}   load (or replace) a LoRA adapter
    DELETE /v1/models/{name}/adapters/{adapter}
    GET    /healthz, /readyz

Model names may contain '/' (Hugging Face ids), so `{name}` is a path; the adapter route is
matched first and takes the last `/adapters/{adapter}` segment.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rerankd.api.codec import read_body, render, wants_msgpack
from rerankd.api.common import context
from rerankd.api.fields import get_str, reject_unknown, require_object
from rerankd.core.errors import InvalidRequest, ModelNotFound
from rerankd.models.catalog import catalog

_MODEL_BODY = {"source", "revision"}
_ADAPTER_BODY = {"source"}


def _catalog_entry(model_id: str) -> dict:
    spec = catalog()[model_id]
    return {
        "id": model_id,
        "name": model_id,
        "object": "model",
        "source": model_id,
        "state": "available",
        "loaded": False,
        "family": spec.family,
        "catalog_id": model_id,
        "registered": False,
        "architecture": spec.architecture,
        "max_length": spec.max_length,
        "license": spec.license,
        "notes": spec.notes,
    }


def _reply(request: Request, payload: dict) -> Response:
    return render(payload, msgpack_body=wants_msgpack(request))


async def _source(request: Request, allowed: set[str]) -> tuple[str, dict]:
    """The `source` (required, non-blank) of an admin body, and the body."""
    body = require_object(await read_body(request, context(request).limits.max_body_bytes), "")
    reject_unknown(body, allowed, "")
    source = get_str(body, "source", "source", required=True)
    assert source is not None
    if not source.strip():
        raise InvalidRequest("'source' must not be blank", param="source")
    return source, body


async def list_models(request: Request) -> Response:
    ctx = context(request)
    registry = ctx.registry
    served = [ctx.service.describe(name) | {"registered": True} for name in registry.names()]
    known = [_catalog_entry(model_id) for model_id in catalog() if model_id not in registry]
    models = served + known
    # `data` is the OpenAI-style list; `models` is what sie-sdk's list_models() reads.
    return _reply(request, {"object": "list", "data": models, "models": models, "memory": registry.memory()})


async def get_model(request: Request) -> Response:
    registry = context(request).registry
    name = request.path_params["name"]
    if name in registry:
        return _reply(request, context(request).service.describe(name) | {"registered": True})
    if name in catalog():
        return _reply(request, _catalog_entry(name))
    base, sep, adapter = name.rpartition(":")
    if sep and base in registry:
        return _reply(request, registry.describe_adapter(base, adapter))
    raise ModelNotFound(f"model '{name}' is not served here", param="model")


async def put_model(request: Request) -> Response:
    registry = context(request).registry
    source, body = await _source(request, _MODEL_BODY)
    revision = get_str(body, "revision", "revision")
    name = request.path_params["name"]
    await registry.put_model(name, source, revision)
    return _reply(request, context(request).service.describe(name) | {"registered": True})


async def delete_model(request: Request) -> Response:
    name = request.path_params["name"]
    await context(request).registry.unload(name)
    return _reply(request, {"id": name, "object": "model", "deleted": True})


async def adapter(request: Request) -> Response:
    registry = context(request).registry
    name, adapter_name = request.path_params["name"], request.path_params["adapter"]
    if request.method == "GET":
        return _reply(request, registry.describe_adapter(name, adapter_name))
    if request.method == "PUT":
        source, _ = await _source(request, _ADAPTER_BODY)
        return _reply(request, await registry.put_adapter(name, adapter_name, source))
    await registry.unload_adapter(name, adapter_name)
    return _reply(request, {"id": f"{name}:{adapter_name}", "object": "adapter", "deleted": True})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 once every model named at start-up (and not `--lazy`) has finished loading (or failed to)."""
    ctx = context(request)
    registry = ctx.registry
    states = {name: registry.describe(name)["state"] for name in registry.names()}
    body = {"ready": ctx.startup_done, "models": states}
    return JSONResponse(body, status_code=200 if ctx.startup_done else 503)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}/adapters/{adapter}", adapter, methods=["GET", "PUT", "DELETE"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
    Route("/v1/models/{name:path}", put_model, methods=["PUT"]),
    Route("/v1/models/{name:path}", delete_model, methods=["DELETE"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/health", readyz, methods=["GET"]),  # TEI's name: 200 once the server can score
]
