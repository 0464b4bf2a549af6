"""What every route shares: server limits, and scoring that stops on disconnect or at the client's deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.requests import Request

from rerankd.api.drain import Drain
from rerankd.api.service import Service
from rerankd.core.errors import DeadlineExceeded, InvalidRequest, RequestTooLarge, RerankdError
from rerankd.core.types import ScoreRequest, ScoreResult
from rerankd.engine.engine import Engine
from rerankd.registry.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiLimits:
    """Per-request limits; past them a client gets a 413, never a crash."""

    max_items: int = 10_000
    max_body_bytes: int = 64 * 1024 * 1024
    # UTF-8 bytes of one text (the query or an item); None: only the body limit applies.
    max_text_bytes: int | None = 16 * 1024 * 1024


# A client's deadline for one request, on every scoring route (SIE bodies may also say `options.timeout_ms`).
TIMEOUT_HEADER = "X-Request-Timeout-Ms"
# Longest deadline accepted: a day. Past that it is not a deadline, and the number may overflow a timer.
MAX_TIMEOUT_MS = 86_400_000


def check_text_bytes(texts: Iterable[tuple[str, str]], limit: int | None) -> None:
    """413 REQUEST_TOO_LARGE naming the first (field, text) whose UTF-8 encoding is over `limit` bytes."""
    if limit is None:
        return
    for name, text in texts:
        # A character is at most 4 bytes: most texts are cleared without encoding them.
        if len(text) * 4 <= limit:
            continue
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise RequestTooLarge(
                f"'{name}' is {size} bytes of UTF-8; this server accepts texts of at most {limit} bytes",
                param=name,
                extra={"max_bytes": limit},
            )


def timeout_ms(request: Request, body_timeout_ms: int | None = None) -> int | None:
    """The request's deadline in ms: the `X-Request-Timeout-Ms` header or the body's, the shorter if both."""
    header = request.headers.get(TIMEOUT_HEADER)
    values = [] if body_timeout_ms is None else [body_timeout_ms]
    if header is not None:
        text = header.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_TIMEOUT_MS:
            raise InvalidRequest(
                f"{TIMEOUT_HEADER} must be a whole number of milliseconds from 1 to {MAX_TIMEOUT_MS}, got {header!r}",
                param=TIMEOUT_HEADER,
            )
        values.append(int(text))
    return min(values) if values else None


@dataclass
class ApiContext:
    """Kept on `app.state.rerankd`: what routes need from the rest of the server."""

    service: Service
    limits: ApiLimits
    default_model: str | None = None
    eager: list[str] = field(default_factory=list)  # `--model`s loaded at start-up (not `--lazy`)
    ready_when: str = "all"
    drain: Drain = field(default_factory=Drain)

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
    request: Request,
    score_request: ScoreRequest,
    fields: dict[str, str] | None = None,
    deadline_ms: int | None = None,
) -> ScoreResult:
    """Score; if the client hangs up first, or `deadline_ms` passes, cancel its work so others' batches move on.

    `fields` renames the core's field names in errors (`adapter`) to the dialect's (`options.lora`).
    """
    request.state.model = score_request.model  # for the access log and metrics (api/requests.py)
    request.state.items = len(score_request.items)
    try:
        return await _score(request, score_request, deadline_ms)
    except RerankdError as error:
        if fields and error.param in fields:
            error.param = fields[error.param]
        raise


async def _score(request: Request, score_request: ScoreRequest, deadline_ms: int | None) -> ScoreResult:
    engine = context(request).engine
    work = asyncio.ensure_future(engine.score(score_request))
    watcher = asyncio.ensure_future(_disconnected(request))
    timeout = None if deadline_ms is None else deadline_ms / 1000
    try:
        await asyncio.wait({work, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            # Cancelling drops the request's queued units; batches already running finish.
            work.cancel()
            # A cancelled wait can still end in an error (e.g. the model was deleted meanwhile):
            # nobody is left to read it, so read it here rather than log it as never retrieved.
            work.add_done_callback(_discard_outcome)
        watcher.cancel()
    if work.done() and not work.cancelled():
        return work.result()
    if watcher.done() and not watcher.cancelled():
        raise ClientGone()
    if deadline_ms is not None:
        raise DeadlineExceeded(
            f"no answer within the request's deadline of {deadline_ms} ms; its work was cancelled",
            extra={"timeout_ms": deadline_ms},
        )
    raise ClientGone()


def _discard_outcome(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
