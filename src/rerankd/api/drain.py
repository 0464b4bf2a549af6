"""Graceful drain: after SIGTERM, refuse new work with 503 SHUTTING_DOWN and let in-flight work end.

The drain starts when the server is told to stop (`api/server.py` catches SIGTERM/SIGINT):

1. at once: `/readyz` answers 503 (a load balancer stops routing here), every new request but
   the health checks answers 503 `SHUTTING_DOWN`, and every response says `Connection: close`
   so keep-alive clients reconnect elsewhere;
2. requests already in flight run on, for up to `--drain-timeout` seconds;
3. whatever is still running then is cancelled (its queued work dropped) and answers 503
   `SHUTTING_DOWN`; only then does uvicorn close the listener and the process exit 0.

The listener stays open for the whole drain, so a client arriving meanwhile gets a 503 it can
act on rather than a refused connection; it closes as soon as nothing is in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rerankd.api.errors import error_response
from rerankd.core.errors import ShuttingDown

log = logging.getLogger(__name__)

# Answered while draining (never refused, never waited for): probes must see the drain.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/health", "/metrics"})
_CLOSE = (b"connection", b"close")


class Drain:
    """Whether the server is draining, and the requests a drain waits for."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.draining = False
        self._inflight: set[asyncio.Task] = set()
        self._cut: set[asyncio.Task] = set()  # cancelled by the drain: they answer SHUTTING_DOWN
        self._idle = asyncio.Event()
        self._forced = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def begin(self) -> None:
        """Refuse new work from now on (safe to call from a signal handler: it only sets a flag)."""
        self.draining = True

    def force(self) -> None:
        """A second signal: stop waiting, cancel what is left now."""
        self._forced.set()

    def track(self, task: asyncio.Task) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._finished)

    def was_cut(self, task: asyncio.Task) -> bool:
        """Whether the drain cancelled `task` (asked once, by the middleware that awaited it)."""
        if task in self._cut:
            self._cut.discard(task)
            return True
        return False

    def _finished(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        if self.draining and not self._inflight:
            self._idle.set()

    async def run(self) -> None:
        """Wait for in-flight requests (up to the timeout, or a second signal), then cancel the rest."""
        self.begin()
        started = time.monotonic()
        if not self._inflight:
            self._idle.set()
        else:
            log.info("draining: %d request(s) in flight, waiting up to %.1fs", len(self._inflight), self.timeout)
        waiters = {asyncio.ensure_future(self._idle.wait()), asyncio.ensure_future(self._forced.wait())}
        try:
            await asyncio.wait(waiters, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        left = list(self._inflight)
        if not left:
            log.info("drained in %.1fs", time.monotonic() - started)
            return
        log.warning("drain timeout: cancelling %d request(s) still in flight", len(left))
        for task in left:
            self._cut.add(task)
            task.cancel()
        await asyncio.wait(left, timeout=5.0)  # they unwind at their next await and answer 503


class DrainMiddleware:
    """Counts requests in flight; while draining, refuses new ones and closes keep-alive connections."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drain = self.drain
        started = False

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if drain.draining:
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        if scope.get("path", "") in EXEMPT_PATHS:
            await self.app(scope, receive, send_closing)
            return
        if drain.draining:
            await self._refuse(scope, receive, send_closing, "the server is shutting down; retry on another replica")
            return
        task = asyncio.ensure_future(self.app(scope, receive, send_closing))
        drain.track(task)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not drain.was_cut(task) or (current is not None and current.cancelling()):
                task.cancel()
                raise
            if not started:
                message = f"the server is shutting down: the request did not finish within {drain.timeout:g}s"
                await self._refuse(scope, receive, send_closing, message + " and was cancelled")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        response = error_response(Request(scope, receive), ShuttingDown(message))
        await response(scope, receive, send)
