"""Run the app under uvicorn with rerankd's own SIGTERM/SIGINT handling: drain first, then stop.

uvicorn's own handling closes the listener at the first signal (new clients are refused at
connect) and, by default, waits for in-flight requests without a deadline. Here the first
signal starts the drain (`api/drain.py`): the listener stays open and answers 503 while
in-flight work gets up to `--drain-timeout`; only then is uvicorn told to exit, which closes
the listener, the idle connections and the lifespan (models unloaded, threads stopped). A
second signal cuts the drain short. The process exits 0 either way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from rerankd.api.drain import Drain

log = logging.getLogger(__name__)

# uvicorn's own grace after the drain: responses already answered are being written out.
_AFTER_DRAIN_S = 1.0


class DrainingServer(uvicorn.Server):
    """`uvicorn.Server` whose exit signals drain before stopping."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes of the event loop: set flags, schedule the rest.
        # (Not recorded in `_captured_signals`: uvicorn would re-raise them after serving, and the
        # default SIGTERM action would turn this clean exit into "killed by signal 15".)
        if self._loop is None:
            self.should_exit = True
            return
        if self.drain.draining:
            log.warning("%s again: cancelling the requests still in flight", signal.Signals(sig).name)
            self.drain.force()
            return
        self.drain.begin()  # /readyz says 503 from the very next request on
        log.info("%s: draining (up to %.1fs), then exiting", signal.Signals(sig).name, self.drain.timeout)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self.drain.run()
        finally:
            self.should_exit = True


def serve(app: Starlette, *, host: str, port: int, log_level: str) -> None:
    """Serve `app` (built by `create_app`) until SIGTERM/SIGINT, then drain and return."""
    drain: Drain = app.state.drain
    # uvicorn logs through the root logger (log_config=None) in rerankd's format; its access log
    # is off: rerankd.access writes one richer line per request (api/requests.py).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=_AFTER_DRAIN_S,
    )
    DrainingServer(config, drain).run()
