"""The ASGI application: routes of every dialect over one engine, and start-up model loading."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from rerankd.api import admin, cohere, docs, health, metrics, page, samples, sie, tei
from rerankd.api.auth import Access, ApiKeyMiddleware
from rerankd.api.common import ApiContext, ApiLimits, ClientGone
from rerankd.api.drain import Drain, DrainMiddleware
from rerankd.api.errors import error_response
from rerankd.api.failsafe import InternalErrorMiddleware
from rerankd.api.metrics import Metrics
from rerankd.api.requests import RequestMiddleware
from rerankd.api.service import Service
from rerankd.core.errors import InternalError, MethodNotAllowed, NotFound, RerankdError
from rerankd.core.observer import Observer
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
    admin_key: str | None = None
    admin_api: bool = False  # admin writes on without an admin key (see api/auth.py)
    drain_timeout: float = 30.0
    ready_when: str = "all"  # or "any": see api/health.py

    @property
    def access(self) -> Access:
        return Access(api_key=self.api_key, admin_key=self.admin_key, admin_api=self.admin_api)


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


EXCEPTION_HANDLERS: dict[type[Exception], Callable] = {
    RerankdError: _rerankd_error,
    HTTPException: _http_error,
    ClientGone: _client_gone,
    ClientDisconnect: _client_gone,
    # Starlette's ServerErrorMiddleware re-raises after this one; InternalErrorMiddleware answers first.
    Exception: _unexpected,
}


def starlette_app(
    routes: Sequence[BaseRoute], *, lifespan=None, access: Access | None = None, drain: Drain | None = None
) -> Starlette:
    """`routes` behind rerankd's error handling and middleware (the tests build small apps with it too).

    Outermost first: the failsafe (any exception → a structured 500), the drain (a draining
    server refuses before auth), then the API key check.
    """
    app = Starlette(routes=list(routes), exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.access = access or Access()
    if access is not None and access.api_key:
        app.add_middleware(ApiKeyMiddleware, access=access)
    if drain is not None:
        app.state.drain = drain
        app.add_middleware(DrainMiddleware, drain=drain)
    app.add_middleware(InternalErrorMiddleware)  # added last: the outermost, it sees every exception
    return app


# Builds the `Service` an app serves from (`local_service`; `rerankd.ray`'s gateway passes its own,
# whose registry and engine reach the replicas): given the config and the metrics observer.
ServiceFactory = Callable[[ServerConfig, Observer], Service]


def local_service(config: ServerConfig, observer: Observer) -> Service:
    """This process's registry and engine, with the `--model`s registered (loaded by the lifespan)."""
    service = Service.create(
        config.registry,
        config.scheduler,
        config.tokenizer_threads,
        observer=observer,
        idle_trim_seconds=config.idle_trim_seconds,
    )
    for model in config.models:
        service.registry.register(model.name, model.source, lazy=model.lazy)
    return service


async def load_startup_models(ctx: ApiContext, names: list[str]) -> None:
    """Load the non-lazy `--model` models; a failure is recorded on that model, the server stays up.

    With `--max-loaded-models`/`--memory-budget`, later ones may evict earlier ones: they load
    again on their first request.
    """
    registry = ctx.registry
    for name in names:
        with contextlib.suppress(RerankdError):
            await registry.load(name)


def create_app(config: ServerConfig, service_factory: ServiceFactory = local_service) -> Starlette:
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
        service = service_factory(config, observed.observer)
        eager = [m.name for m in config.models if not m.lazy]
        ctx = ApiContext(
            service=service,
            limits=config.limits,
            default_model=config.models[0].name if config.models else None,
            eager=eager,
            ready_when=config.ready_when,
            drain=drain,
        )
        app.state.rerankd = ctx
        loader = asyncio.create_task(load_startup_models(ctx, eager))
        try:
            yield
        finally:
            loader.cancel()
            await service.close()

    drain = Drain(config.drain_timeout)
    app = starlette_app(
        [
            *sie.routes,
            *cohere.routes,
            *tei.routes,
            *admin.routes,
            *health.routes,
            *metrics.routes,
            *docs.routes,
            *page.routes,
            *samples.routes,
        ],
        lifespan=lifespan,
        access=config.access,
        drain=drain,
    )
    operations = [
        *sie.operations,
        *cohere.operations,
        *tei.operations,
        *admin.operations,
        *health.operations,
        *metrics.operations,
        *docs.operations,
        *page.operations,
        *samples.operations,
    ]
    app.state.openapi = docs.openapi_bytes(operations, config.limits)
    app.state.metrics = observed
    # Outermost (added last): ids, the access log and metrics cover every answer, 401s, 503s
    # from the drain and the failsafe's 500s included.
    app.add_middleware(RequestMiddleware, metrics=observed.http, resolve=served_name)
    return app
