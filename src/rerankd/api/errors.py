"""The one table from error types to HTTP statuses, and the error envelope every route answers with.

    {"error": {"code": "...", "message": "...", "param": "items[3].text"}}

The core raises typed errors with a stable `code` and no status; only this module decides
what a client sees on the wire.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from rerankd.api.codec import render, wants_msgpack
from rerankd.core import errors

# Most specific first is not needed: a type's status is found along its MRO.
STATUS: dict[type[errors.RerankdError], int] = {
    errors.InvalidRequest: 400,  # MalformedBody, EmptyItems, InstructionNotSupported
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.ModelNotFound: 404,
    errors.AdapterNotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.RequestTooLarge: 413,
    errors.InputTooLong: 413,
    errors.UnsupportedMediaType: 415,
    # 429, not 503: a full queue is this replica working as designed (TEI answers 429 when
    # overloaded; sie-sdk, the Cohere SDK and rerankd's own retry 429 after Retry-After), and a
    # load balancer's passive health checks keep 503 for replicas that cannot serve at all.
    errors.QueueFull: 429,
    errors.ModelLoadFailed: 502,
    errors.ModelLoading: 503,  # AdapterLoading
    errors.ModelUnloaded: 503,
    errors.NoCapacity: 503,
    errors.ShuttingDown: 503,
    errors.ReplicaUnavailable: 503,
    errors.DeadlineExceeded: 504,
    errors.RerankdError: 500,
}


def status_for(kind: type[errors.RerankdError]) -> int:
    """The status of an error type (the OpenAPI document lists each route's statuses from it)."""
    for base in kind.__mro__:
        if base in STATUS:
            return STATUS[base]
    return 500


def status_of(error: errors.RerankdError) -> int:
    return status_for(type(error))


def error_payload(error: errors.RerankdError) -> dict:
    """`schemas.errors.ErrorResponse` as a dict: errors may add fields of their own (`extra`)."""
    detail: dict = {"code": error.code, "message": error.message}
    if error.param:
        detail["param"] = error.param
    detail.update(error.extra)
    return {"error": detail}


def error_response(request: Request, error: errors.RerankdError) -> Response:
    headers = {"X-Error-Code": error.code}
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id is not None:  # also set by api/requests.py, but not on a 500 answered outside it
        headers["X-Request-ID"] = request_id
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if isinstance(error, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="rerankd"'  # RFC 6750 section 3
    payload = error_payload(error)
    return render(payload, msgpack_body=wants_msgpack(request), status=status_of(error), headers=headers)
