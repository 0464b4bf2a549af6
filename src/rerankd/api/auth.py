"""Who may call what: `--api-key` on every route but health, metrics, docs and the page; the admin key on admin writes.

Admin writes (`PUT`/`DELETE` of models and adapters) change what the server runs and what it
reads from disk, so they are off unless the operator turns them on: with `--admin-api-key`
(they need that key; it also works wherever the API key does) or with `--admin-api` (they
need only what every other route needs). Reads (`GET /v1/models...`) stay on the API key.

Tokens are read per RFC 6750 section 2.1: `Authorization: Bearer <token>`, the scheme
case-insensitive, the prefix required (a bare key is a 401). Kept hand-written: it is three
lines, and Starlette ships no bearer parser (FastAPI's `HTTPBearer` would bring all of FastAPI).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from rerankd.api import docs, page
from rerankd.api.errors import error_response
from rerankd.core.errors import Forbidden, Unauthorized

# Answered without any key: probes, scrapers (Prometheus sends no token), the API's own docs and the
# page at `/` with its static files (the page asks for the keys and sends them on its data calls).
OPEN_PATHS = ("/healthz", "/readyz", "/health", "/metrics", "/openapi.json", "/docs", "/")
OPEN_PREFIXES = (f"{docs.STATIC_PREFIX}/", f"{page.STATIC_PREFIX}/")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer_token(headers: Headers) -> str | None:
    """The token of `Authorization: Bearer <token>` (RFC 6750 2.1), or None when absent or malformed."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def _same(token: str | None, key: str | None) -> bool:
    return token is not None and key is not None and hmac.compare_digest(token.encode(), key.encode())


@dataclass(frozen=True)
class Access:
    """The server's keys, and whether its admin writes are on."""

    api_key: str | None = None
    admin_key: str | None = None
    admin_api: bool = False  # admin writes on without an admin key of their own

    @property
    def admin_enabled(self) -> bool:
        return self.admin_api or self.admin_key is not None

    def allows(self, token: str | None) -> bool:
        """Whether `token` passes the API key check (the admin key passes it too)."""
        return self.api_key is None or _same(token, self.api_key) or _same(token, self.admin_key)

    def check_admin(self, headers: Headers) -> None:
        """Raise unless this request may change models and adapters."""
        if not self.admin_enabled:
            raise Forbidden(
                "the admin API is off: start rerankd with --admin-api-key KEY (or --admin-api) "
                "to load, swap or unload models at run time"
            )
        if self.admin_key is None:
            return  # --admin-api: the API key check (if any) already passed
        token = bearer_token(headers)
        if _same(token, self.admin_key):
            return
        if _same(token, self.api_key):
            raise Forbidden("this route needs the admin API key (--admin-api-key), not the API key")
        raise Unauthorized("missing or wrong admin API key (Authorization: Bearer <key>)")


class ApiKeyMiddleware:
    """Require the API key (`Authorization: Bearer <key>`) on everything but the open paths."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and not is_open(path) and not self.access.allows(bearer_token(Headers(scope=scope))):
            error = Unauthorized("missing or wrong API key (Authorization: Bearer <key>)")
            await error_response(Request(scope, receive), error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def require_admin(request: Request) -> None:
    """Admin routes call this first: refused (403/401) unless the admin API is on and the key fits."""
    access: Access = request.app.state.access
    access.check_admin(request.headers)
