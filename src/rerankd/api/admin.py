"""Model listing and health: `/v1/models`, `/v1/models/{name}`, `/healthz`, `/readyz`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rerankd.api.common import context
from rerankd.models.catalog import catalog


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


async def list_models(request: Request) -> Response:
    registry = context(request).engine.registry
    served = [registry.describe(name) | {"registered": True} for name in registry.names()]
    known = [_catalog_entry(model_id) for model_id in catalog() if model_id not in registry]
    models = served + known
    # `data` is the OpenAI-style list; `models` is what sie-sdk's list_models() reads.
    return JSONResponse({"object": "list", "data": models, "models": models})


async def get_model(request: Request) -> Response:
    registry = context(request).engine.registry
    name = request.path_params["name"]
    if name not in registry and name in catalog():
        return JSONResponse(_catalog_entry(name))
    return JSONResponse(registry.describe(name))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 once every model named at start-up has finished loading (or failed to)."""
    ctx = context(request)
    registry = ctx.engine.registry
    states = {name: registry.describe(name)["state"] for name in registry.names()}
    body = {"ready": ctx.startup_done, "models": states}
    return JSONResponse(body, status_code=200 if ctx.startup_done else 503)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
