"""The error envelope every route answers with: `{"error": {"code", "message", "param"?}}`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class ErrorDetail(msgspec.Struct):
    """What went wrong. Some errors add fields of their own (`error_class`, `index`, `max_tokens`, ...)."""

    code: Annotated[str, Meta(description="stable and machine-readable, e.g. INVALID_REQUEST")]
    message: Annotated[str, Meta(description="for humans: what was expected and what came")]
    param: Annotated[
        str | None, Meta(description="the offending field as the client named it, e.g. `items[3].text`")
    ] = None


class ErrorResponse(msgspec.Struct):
    error: ErrorDetail
