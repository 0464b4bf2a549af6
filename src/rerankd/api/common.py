"""What every route shares: server limits, error rendering, and scoring that stops on disconnect."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.requests import Request

from rerankd.api.service import Service
from rerankd.core.errors import RerankdError
from rerankd.core.types import ScoreRequest, ScoreResult
from rerankd.engine.engine import Engine
from rerankd.registry.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiLimits:
    """Per-request limits; past them a client gets a 413, never a crash."""

    max_items: int = 10_000
    max_body_bytes: int = 64 * 1024 * 1024


@dataclass
class ApiContext:
    """Kept on `app.state.rerankd`: what routes need from the rest of the server."""

    service: Service
    limits: ApiLimits
    default_model: str | None = None
    startup_done: bool = False

    @property
    def engine(self) -> Engine:
        return self.service.engine

    @property
    def registry(self) -> ModelRegistry:
        return self.service.registry


def context(request: Request) -> ApiContext:
    return request.app.state.rerankd


class ClientGone(Exception):
    """The client disconnected before its scores were ready."""


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def score_unless_disconnected(
    request: Request, score_request: ScoreRequest, fields: dict[str, str] | None = None
) -> ScoreResult:
    """Score; if the client hangs up first, cancel its work so others' batches move on.

    `fields` renames the core's field names in errors (`adapter`) to the dialect's (`options.lora`).
    """
    request.state.model = score_request.model  # for the access log and metrics (api/requests.py)
    request.state.items = len(score_request.items)
    try:
        return await _score(request, score_request)
    except RerankdError as error:
        if fields and error.param in fields:
            error.param = fields[error.param]
        raise


async def _score(request: Request, score_request: ScoreRequest) -> ScoreResult:
    engine = context(request).engine
    work = asyncio.ensure_future(engine.score(score_request))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            work.cancel()
            # A cancelled wait can still end in an error (e.g. the model was deleted meanwhile):
            # nobody is left to read it, so read it here rather than log it as never retrieved.
            work.add_done_callback(_discard_outcome)
        watcher.cancel()
    if not work.done() or work.cancelled():
        raise ClientGone()
    return work.result()


def _discard_outcome(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
