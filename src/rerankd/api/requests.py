"""Every HTTP request's id, its access-log line and its metrics, in one pure ASGI middleware.

* `X-Request-ID`: a client's id is kept when it is 1-128 characters of `A-Z a-z 0-9 - _ . : / + = @`
  (safe in a log line and a header); otherwise (absent, too long, odd characters) a new one
  is generated. Either way it is echoed on the response, errors included, and logged.
* One log line per request on the `rerankd.access` logger (uvicorn's own access log is off):
  request id, method, path, route template, model, status, duration, items, error code. With
  `--log-format json` each field is a JSON key (`api/logs.py`).
* Metrics (`api/metrics.py`): requests by route template, method, model and status, latency,
  and errors by code. Routes are labelled by template (`/v1/score/{model}`), never by raw path.

Routes tell this middleware what they learned through `request.state` (`model`, `items`);
the error code comes from the `X-Error-Code` header every error response carries.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rerankd.api.metrics import HttpMetrics
from rerankd.core.errors import RerankdError

access_log = logging.getLogger("rerankd.access")

HEADER = "X-Request-ID"
_VALID_ID = re.compile(rb"[A-Za-z0-9\-_.:/+=@]{1,128}")
_CONVERTER = re.compile(r"{(\w+):\w+}")


def request_id_of(scope: Scope) -> str | None:
    """The id this middleware gave the request (None outside it)."""
    return scope.get("state", {}).get("request_id")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _VALID_ID.fullmatch(value):
                return value.decode()
            break
    return uuid.uuid4().hex


class RequestMiddleware:
    """Request ids, the access log and the HTTP metrics.

    `resolve` maps a model id to its registered name (None when not served here, so a client
    cannot grow the metrics' label set); the registry behind it exists only once the app started.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, resolve: Callable[[str], str | None]) -> None:
        self.app = app
        self.metrics = metrics
        self.resolve = resolve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        outcome: dict = {"status": 500, "code": None}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[HEADER] = request_id
                outcome["status"] = message["status"]
                outcome["code"] = headers.get("x-error-code")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            outcome["code"] = RerankdError.code  # answered by the app's handler for unexpected errors
            raise
        finally:
            self._finish(scope, state, outcome, time.perf_counter() - started)

    def _finish(self, scope: Scope, state: dict, outcome: dict, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        route = _CONVERTER.sub(r"{\1}", route)  # `{model:path}` -> `{model}`, as OpenAPI writes it
        asked = state.get("model") or scope.get("path_params", {}).get("name")
        model = (self.resolve(asked) if asked else None) or ""
        status, code = outcome["status"], outcome["code"]
        self.metrics.record(route, scope["method"], model, status, seconds, code)
        client = scope.get("client")
        access_log.info(
            "%s %s %d %.1fms model=%s items=%s id=%s%s",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000,
            model or "-",
            state.get("items", "-"),
            state["request_id"],
            f" code={code}" if code else "",
            extra={
                "request_id": state["request_id"],
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "model": model or None,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "items": state.get("items"),
                "error_code": code,
                "client": client[0] if client else None,
            },
        )
