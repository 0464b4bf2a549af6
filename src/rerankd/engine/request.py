"""The only types the API layer sees: one internal request, one result, and typed errors.

Every API dialect (SIE, Cohere/Jina, TEI) translates its body into a `ScoreRequest` and a
`ScoreResult` back into its own shape, so adding a dialect never touches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """One text to score (or the query). `id` and `metadata` are echoed, never interpreted."""

    text: str
    id: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """Per-request knobs shared by every dialect."""

    top_k: int | None = None
    raw_scores: bool = False
    max_tokens_per_doc: int | None = None
    max_chunks_per_doc: int | None = None
    adapter: str | None = None
    # The request field that named `adapter` (dialects differ), so errors point at it.
    adapter_param: str = "adapter"
    # False: refuse (413) an item longer than the model's limit instead of cutting it (TEI's default).
    truncate: bool = True


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """A query and the items to rank against it, for one model (and optionally one adapter)."""

    model: str
    query: Item
    items: list[Item]
    instruction: str | None = None
    options: ScoreOptions = field(default_factory=ScoreOptions)


@dataclass(frozen=True, slots=True)
class ScoreEntry:
    """One scored item; `index` is its position in the request, `rank` its place (0 = best)."""

    item_id: str
    index: int
    score: float
    rank: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Token accounting: what the network actually read, and how much of it was the caller's text."""

    input_tokens: int
    content_tokens: int
    pairs: int
    truncated_items: int = 0
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores sorted best first (already cut to `top_k` when asked)."""

    model: str
    query_id: str | None
    entries: list[ScoreEntry]
    usage: Usage


class RerankdError(Exception):
    """A failure with a stable machine-readable `code`, an HTTP status and the offending field."""

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.extra = extra or {}


class InvalidRequest(RerankdError):
    """The client sent something malformed: a wrong type, a missing field, a bad value."""

    status = 400
    code = "INVALID_REQUEST"


class MalformedBody(InvalidRequest):
    code = "MALFORMED_BODY"


class EmptyItems(InvalidRequest):
    code = "EMPTY_ITEMS"


class InstructionNotSupported(InvalidRequest):
    code = "INSTRUCTION_NOT_SUPPORTED"


class RequestTooLarge(RerankdError):
    status = 413
    code = "REQUEST_TOO_LARGE"


class InputTooLong(RerankdError):
    status = 413
    code = "INPUT_TOO_LONG"


class UnsupportedMediaType(RerankdError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class ModelNotFound(RerankdError):
    status = 404
    code = "MODEL_NOT_FOUND"


class AdapterNotFound(RerankdError):
    status = 404
    code = "ADAPTER_NOT_FOUND"


class ModelLoading(RerankdError):
    status = 503
    code = "MODEL_LOADING"


class ModelLoadFailed(RerankdError):
    status = 502
    code = "MODEL_LOAD_FAILED"


class NoCapacity(RerankdError):
    """A model cannot be loaded yet: the models holding the memory budget all have work in flight."""

    status = 503
    code = "NO_CAPACITY"


class QueueFull(RerankdError):
    status = 503
    code = "QUEUE_FULL"


class Conflict(RerankdError):
    status = 409
    code = "CONFLICT"
