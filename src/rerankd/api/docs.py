"""`GET /openapi.json` and interactive docs at `GET /docs`, offline.

Swagger UI's files come from the `swagger-ui-py` package (served under `/docs/static/`), not
from a CDN: a self-hosted server is often air-gapped. The page names no other host, turns
off the validator badge (which would call validator.swagger.io) and its Content-Security-Policy
keeps the browser from fetching anything off this server.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rerankd.api.common import ApiLimits
from rerankd.api.openapi import JSON, Operation, document

STATIC_PREFIX = "/docs/static"


def _swagger_ui_static() -> Path:
    """The package's `static/` folder, found without importing it (its module pulls in jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; it ships the assets of /docs")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>rerankd API</title>
  <link rel="stylesheet" href="{STATIC_PREFIX}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{STATIC_PREFIX}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{STATIC_PREFIX}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      validatorUrl: null,
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""

# Everything from this server; inline script and styles are Swagger UI's own way of working.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:"
)


def openapi_bytes(operations: list[Operation], limits: ApiLimits) -> bytes:
    """The document, encoded once per app: it only changes with the code and the server's limits."""
    return msgspec.json.encode(document(operations, limits))


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


async def docs(request: Request) -> Response:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CSP})


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Mount(STATIC_PREFIX, app=StaticFiles(directory=_swagger_ui_static()), name="docs-static"),
]

operations = [
    Operation(
        "GET",
        "/openapi.json",
        "This document",
        tag="Docs",
        response={"type": "object"},
        media=(JSON,),
        open=True,
    ),
    Operation(
        "GET",
        "/docs",
        "Interactive docs (Swagger UI, served offline)",
        tag="Docs",
        response={"type": "string"},
        media=("text/html",),
        open=True,
    ),
]
