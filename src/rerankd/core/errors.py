"""Typed failures with a stable machine-readable `code` and the offending field, and no transport.

`param` names a field of the internal request (`model`, `adapter`, `instruction`,
`items[3]`); the API layer renames it to what the client's dialect calls it and picks the
HTTP status from the error's type (`api/errors.py`), so nothing here knows HTTP.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RerankdError(Exception):
    """A failure a caller can act on: `code` says what, `param` where, `retry_after` when to retry."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.extra = extra or {}


class InternalError(RerankdError):
    """A bug or an unexpected failure (a batch that raised): never the client's fault."""


# ---------------------------------------------------------------------- the client's mistakes
class InvalidRequest(RerankdError):
    """The client sent something malformed: a wrong type, a missing field, a bad value."""

    code = "INVALID_REQUEST"


class MalformedBody(InvalidRequest):
    code = "MALFORMED_BODY"


class EmptyItems(InvalidRequest):
    code = "EMPTY_ITEMS"


class InstructionNotSupported(InvalidRequest):
    code = "INSTRUCTION_NOT_SUPPORTED"


class DuplicateItemId(InvalidRequest):
    """Two items share an `id`: their results could not be told apart."""

    code = "DUPLICATE_ITEM_ID"


class RequestTooLarge(RerankdError):
    code = "REQUEST_TOO_LARGE"


class InputTooLong(RerankdError):
    code = "INPUT_TOO_LONG"


class UnsupportedMediaType(RerankdError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class Unauthorized(RerankdError):
    code = "UNAUTHORIZED"


class Forbidden(RerankdError):
    """The caller may not do this here (admin API off, wrong key, a source outside the model roots)."""

    code = "FORBIDDEN"


class NotFound(RerankdError):
    """No such route, or nothing of that name under it (a sample set of the page)."""

    code = "NOT_FOUND"


class MethodNotAllowed(RerankdError):
    code = "METHOD_NOT_ALLOWED"


class ModelNotFound(RerankdError):
    code = "MODEL_NOT_FOUND"


class AdapterNotFound(RerankdError):
    code = "ADAPTER_NOT_FOUND"


# ---------------------------------------------------------------- the server's state: retry
class ModelLoading(RerankdError):
    """The model is still loading after the request waited its turn; the load goes on."""

    code = "MODEL_LOADING"


class AdapterLoading(ModelLoading):
    """The adapter is still loading (the code sie-sdk retries for adapters)."""

    code = "LORA_LOADING"


class ModelUnloaded(RerankdError):
    """The version a request was queued on went away before its turn (should not happen: holds)."""

    code = "MODEL_UNLOADED"


class NoCapacity(RerankdError):
    """A model cannot be loaded yet: the models holding the memory budget all have work in flight."""

    code = "NO_CAPACITY"


class QueueFull(RerankdError):
    """Admission control: the model's queue is at its bound; `retry_after` comes from its drain rate."""

    code = "QUEUE_FULL"


class DeadlineExceeded(RerankdError):
    """The request's own deadline (`timeout_ms`) passed before its scores were ready; its work is cancelled."""

    code = "DEADLINE_EXCEEDED"


class ReplicaUnavailable(RerankdError):
    """Scale-out (`rerankd.ray`): no replica could score the request (or a shard of it) after retries.

    Never a partial answer: a request split in shards fails whole when one shard cannot be scored.
    """

    code = "REPLICA_UNAVAILABLE"


class ShuttingDown(RerankdError):
    """The server is draining: no new work; in-flight work past the drain timeout is cancelled."""

    code = "SHUTTING_DOWN"


class ModelLoadFailed(RerankdError):
    """The model (or adapter) could not be loaded; `message` says why."""

    code = "MODEL_LOAD_FAILED"
