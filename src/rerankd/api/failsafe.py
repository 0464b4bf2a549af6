"""The last line of defence: an unexpected exception answers a structured 500 and the connection lives.

Starlette's `ServerErrorMiddleware` calls the `Exception` handler and then *re-raises*, so
uvicorn, seeing an exception after the response started, closes the keep-alive connection
without `Connection: close`; the client's next pooled request then fails too. This middleware
sits inside it (the outermost of the app's own middleware) and does not re-raise once it has
answered. Only when the failing route had already started its response is the exception passed
on: half an answer cannot be finished, and closing the connection is then the honest end.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rerankd.api.errors import error_response
from rerankd.core.errors import InternalError

log = logging.getLogger(__name__)


class InternalErrorMiddleware:
    """Turn any exception that escaped every handler into `{"error": {"code": "INTERNAL_ERROR"}}`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            if started:
                raise
            log.exception("unexpected error on %s", scope.get("path", ""), exc_info=error)
            response = error_response(Request(scope, receive), InternalError(f"internal error: {type(error).__name__}"))
            await response(scope, receive, send)
