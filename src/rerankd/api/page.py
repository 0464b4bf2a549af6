"""`GET /`: a page to try rerankd in a browser, served from the package (no CDN, works offline).

The page (`web/index.html`, `web/static/rerankd.{js,css}`, plain HTML/CSS/JS: no framework, no
build step) talks to the public API only: `GET /v1/models`, `POST /v1/score/{model}`,
`GET /metrics`, the admin `PUT`/`DELETE /v1/models/...` and the samples (`api/samples.py`),
sending the keys it is given as bearer tokens. The page and its static files are open like
`/docs`; every data call still needs the key.

Documents are untrusted, so the page renders every text with `textContent`, never as HTML, and
its Content-Security-Policy allows scripts, styles and connections from this server only, no
inline script or style, and (Trusted Types) no HTML sink at all: a `<script>` in a document
shows as text and could not run even if a bug inserted it as markup.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import rerankd
from rerankd.api.openapi import Operation

WEB = Path(__file__).parent / "web"
STATIC_PREFIX = "/ui/static"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Always fetched afresh: it names the versioned script and stylesheet, so an upgrade takes effect at once.
    "Cache-Control": "no-cache",
}


def _page() -> str:
    """index.html with its asset URLs versioned, so an upgraded server never runs yesterday's cached script."""
    html = (WEB / "index.html").read_text(encoding="utf-8")
    return html.replace("{static}", STATIC_PREFIX).replace("{version}", rerankd.__version__)


PAGE = _page()


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE, headers=HEADERS)


routes = [
    Route("/", page, methods=["GET"]),
    Mount(STATIC_PREFIX, app=StaticFiles(directory=WEB / "static"), name="page-static"),
]

operations = [
    Operation(
        "GET",
        "/",
        "A page to try rerankd: rank candidates with one or more models side by side, server status, admin",
        tag="Page",
        response={"type": "string"},
        media=("text/html",),
        open=True,
        description="Served from the package (works offline); its data calls use this API with the keys typed into it.",
    ),
]
