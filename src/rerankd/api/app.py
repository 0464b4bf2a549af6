"""The ASGI application: routes of every dialect over one engine, and start-up model loading."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rerankd.api import admin, cohere, docs, metrics, sie, tei
from rerankd.api.common import ApiContext, ApiLimits, ClientGone
from rerankd.api.errors import error_response
from rerankd.api.metrics import Metrics
from rerankd.api.requests import RequestMiddleware
from rerankd.api.service import Service
from rerankd.core.errors import InternalError, MethodNotAllowed, NotFound, RerankdError, Unauthorized
from rerankd.engine.scheduler import SchedulerConfig
from rerankd.registry.registry import RegistrySettings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelArg:
    """One `--model [NAME=]SOURCE` (`lazy`: registered, loaded on its first request)."""

    name: str
    source: str
    lazy: bool = False

    @classmethod
    def parse(cls, text: str, *, lazy: bool = False) -> ModelArg:
        name, sep, source = text.partition("=")
        if not sep:
            return cls(text, text, lazy)
        if not name or not source:
            raise ValueError(f"--model expects [NAME=]SOURCE, got {text!r}")
        return cls(name, source, lazy)


@dataclass
class ServerConfig:
    models: list[ModelArg] = field(default_factory=lambda: [ModelArg(DEFAULT_MODEL, DEFAULT_MODEL)])
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    limits: ApiLimits = field(default_factory=ApiLimits)
    api_key: str | None = None
    tokenizer_threads: int | None = None
    # Give freed heap back to the OS after this many idle seconds (None: never); see core/memory.py.
    idle_trim_seconds: float | None = 1.0


class ApiKeyMiddleware:
    """Require `Authorization: Bearer <key>` on everything but health checks, metrics and the API docs."""

    # /metrics: Prometheus scrapers usually send no token, and it reveals no scores or texts.
    OPEN_PATHS = ("/healthz", "/readyz", "/health", "/metrics", "/openapi.json", "/docs")
    OPEN_PREFIXES = (f"{docs.STATIC_PREFIX}/",)

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in self.OPEN_PATHS and not path.startswith(self.OPEN_PREFIXES):
            headers = dict(scope["headers"])
            supplied = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
            if not hmac.compare_digest(supplied, self.key):
                error = Unauthorized("missing or wrong API key")
                response = error_response(Request(scope, receive), error)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _rerankd_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RerankdError)
    return error_response(request, error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        return error_response(request, MethodNotAllowed(str(error.detail)))
    if error.status_code == 404:
        return error_response(request, NotFound(str(error.detail)))
    return await _unexpected(request, error)


async def _client_gone(request: Request, error: Exception) -> Response:
    """The client hung up (before its answer, or while still sending its body): nobody reads this."""
    return Response(status_code=499)


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=error)
    return error_response(request, InternalError(f"internal error: {type(error).__name__}"))


async def load_startup_models(ctx: ApiContext, names: list[str]) -> None:
    """Load the non-lazy `--model` models; a failure is recorded on that model, the server stays up.

    With `--max-loaded-models`/`--memory-budget`, later ones may evict earlier ones: they load
    again on their first request.
    """
    registry = ctx.registry
    for name in names:
        with contextlib.suppress(RerankdError):
            await registry.load(name)
    ctx.startup_done = True


def create_app(config: ServerConfig) -> Starlette:
    def running() -> ApiContext | None:
        return getattr(app.state, "rerankd", None)

    def served_name(model_id: str) -> str | None:
        """The registered name a request's model id resolves to; None when not served here."""
        ctx = running()
        try:
            return ctx.registry.resolve(model_id)[0] if ctx is not None else None
        except RerankdError:
            return None

    observed = Metrics(lambda: ctx.service if (ctx := running()) is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = Service.create(
            config.registry,
            config.scheduler,
            config.tokenizer_threads,
            observer=observed.observer,
            idle_trim_seconds=config.idle_trim_seconds,
        )
        for model in config.models:
            service.registry.register(model.name, model.source, lazy=model.lazy)
        eager = [m.name for m in config.models if not m.lazy]
        ctx = ApiContext(
            service=service,
            limits=config.limits,
            default_model=config.models[0].name if config.models else None,
            startup_done=not eager,
        )
        app.state.rerankd = ctx
        loader = asyncio.create_task(load_startup_models(ctx, eager))
        try:
            yield
        finally:
            loader.cancel()
            await service.close()

    app = Starlette(
        routes=[*sie.routes, *cohere.routes, *tei.routes, *admin.routes, *metrics.routes, *docs.routes],
        exception_handlers={
            RerankdError: _rerankd_error,
            HTTPException: _http_error,
            ClientGone: _client_gone,
            ClientDisconnect: _client_gone,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    operations = [
        *sie.operations,
        *cohere.operations,
        *tei.operations,
        *admin.operations,
        *metrics.operations,
        *docs.operations,
    ]
    app.state.openapi = docs.openapi_bytes(operations, config.limits)
    app.state.metrics = observed
    if config.api_key:
        app.add_middleware(ApiKeyMiddleware, key=config.api_key)
    # Outermost (added last): ids, the access log and metrics cover 401s from the key check too.
    app.add_middleware(RequestMiddleware, metrics=observed.http, resolve=served_name)
    return app
