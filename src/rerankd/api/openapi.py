"""The OpenAPI 3.1 document, generated from the same Structs that decode and encode the bodies.

Each dialect module lists its `operations` next to its `routes`; `document()` turns them into
paths, and every error type a route can raise into the error envelope under the status
`api/errors.py` gives that type, so statuses are still decided in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

import rerankd
from rerankd.api.common import MAX_TIMEOUT_MS, TIMEOUT_HEADER, ApiLimits
from rerankd.api.errors import status_for
from rerankd.api.schemas.admin import DOCUMENTED_ONLY
from rerankd.api.schemas.errors import ErrorResponse
from rerankd.core import errors

REF = "#/components/schemas/{name}"
JSON = "application/json"
MSGPACK = "application/msgpack"
BODY_MEDIA = (JSON, MSGPACK)

# What reading a body can fail with, on every route that takes one.
BODY_ERRORS: tuple[type[errors.RerankdError], ...] = (
    errors.InvalidRequest,
    errors.MalformedBody,
    errors.RequestTooLarge,
    errors.UnsupportedMediaType,
)
# What scoring can fail with, whichever dialect asked.
SCORING_ERRORS: tuple[type[errors.RerankdError], ...] = (
    errors.EmptyItems,
    errors.InstructionNotSupported,
    errors.ModelNotFound,
    errors.AdapterNotFound,
    errors.InputTooLong,
    errors.ModelLoadFailed,
    errors.ModelLoading,
    errors.AdapterLoading,
    errors.ModelUnloaded,
    errors.QueueFull,
    errors.NoCapacity,
    errors.DeadlineExceeded,
)

_WHY = {
    400: "The request is wrong; `param` names the field.",
    401: "The server runs with `--api-key` (or, on admin routes, `--admin-api-key`) and the bearer token "
    "is missing or wrong.",
    403: "The admin API is off, the token is not the admin key, or the `source` lies outside the model roots.",
    404: "No such model or adapter.",
    413: "Too many items, too large a body, text or token count for this server (`param` names the field), "
    "or a text over the model's limit.",
    415: "The body is neither JSON nor MessagePack.",
    429: "The model's queue is full (`--max-queued-tokens`): retry after `Retry-After` seconds, "
    "computed from the rate the queue drains at.",
    500: "A bug: never the client's fault.",
    502: "The model or adapter failed to load; `message` says why.",
    503: "Still loading, or the memory budget is held by busy models: retry after `Retry-After` seconds. "
    "`SHUTTING_DOWN`: the server is draining; retry on another replica.",
    504: "The request's own deadline (`options.timeout_ms` or `X-Request-Timeout-Ms`) passed; its work was cancelled.",
}


@dataclass(frozen=True)
class Operation:
    """One method of one route, as the document describes it."""

    method: str
    path: str  # OpenAPI template: `{model}`, not Starlette's `{model:path}`
    summary: str
    tag: str
    request: Any = None  # the Struct the body decodes into
    response: Any = None  # the type of a 200's body, or a raw JSON Schema (dict)
    errors: tuple[type[errors.RerankdError], ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)  # path parameter -> description
    deadline: bool = False  # takes the optional `X-Request-Timeout-Ms` header
    description: str = ""
    media: tuple[str, ...] = BODY_MEDIA  # of the 200's body
    open: bool = False  # answered without the API key
    admin: bool = False  # an admin write: needs the admin API on (api/auth.py)
    # Other statuses that answer with a body of their own rather than the error envelope.
    also: Mapping[int, tuple[Any, str]] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        slug = re.sub(r"[^a-zA-Z0-9]+", "_", self.path).strip("_")
        return f"{self.method.lower()}_{slug}"


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def _content(schema: dict[str, Any], media: Sequence[str]) -> dict[str, Any]:
    return {kind: {"schema": schema} for kind in media}


def _error_responses(operation: Operation, error_schema: dict[str, Any]) -> dict[str, Any]:
    kinds = [*operation.errors, errors.InternalError]
    if not operation.open:
        kinds += [errors.Unauthorized, errors.ShuttingDown]
    if operation.admin:
        kinds.append(errors.Forbidden)
    by_status: dict[int, list[str]] = {}
    for kind in kinds:
        codes = by_status.setdefault(status_for(kind), [])
        if kind.code not in codes:
            codes.append(kind.code)
    responses = {}
    for status in sorted(by_status):
        headers = {"X-Error-Code": _header("the error's `code`")}
        if status in (429, 503):
            headers["Retry-After"] = _header("seconds to wait before retrying")
        codes = ", ".join(f"`{code}`" for code in by_status[status])
        responses[str(status)] = {
            "description": f"{_WHY.get(status, 'Error.')} Codes: {codes}.",
            "headers": headers,
            "content": _content(error_schema, BODY_MEDIA),
        }
    return responses


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    names = re.findall(r"{([^}]+)}", operation.path)
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": operation.params.get(name, ""),
            "schema": {"type": "string"},
        }
        for name in names
    ]
    if operation.deadline:
        parameters.append(
            {
                "name": TIMEOUT_HEADER,
                "in": "header",
                "required": False,
                "description": "deadline in milliseconds: past it the answer is 504 DEADLINE_EXCEEDED and the "
                "request's work is cancelled",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS},
            }
        )
    return parameters


def document(operations: Sequence[Operation], limits: ApiLimits) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `operations` on a server with `limits`."""
    types: list[Any] = [ErrorResponse, *DOCUMENTED_ONLY]
    for operation in operations:
        for kind in (operation.request, operation.response, *(t for t, _ in operation.also.values())):
            if kind is not None and not isinstance(kind, dict) and kind not in types:
                types.append(kind)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(types, schemas, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "OK"}
        if operation.response is not None:
            response = operation.response
            ok["content"] = _content(response if isinstance(response, dict) else schema_of[response], operation.media)
        responses["200"] = ok
        responses.update(_error_responses(operation, schema_of[ErrorResponse]))
        for status, (kind, description) in operation.also.items():
            responses[str(status)] = {"description": description, "content": _content(schema_of[kind], [JSON])}
        entry: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "responses": dict(sorted(responses.items())),
        }
        if operation.description:
            entry["description"] = operation.description
        if parameters := _parameters(operation):
            entry["parameters"] = parameters
        if operation.request is not None:
            entry["requestBody"] = {"required": True, "content": _content(schema_of[operation.request], BODY_MEDIA)}
        # Anonymous is allowed too: the key is required only when the server runs with `--api-key`;
        # admin writes take the admin key when the server has one (and the API key passes only with
        # `--admin-api`).
        if operation.open:
            entry["security"] = []
        elif operation.admin:
            entry["security"] = [{"adminKey": []}, {"apiKey": []}, {}]
        else:
            entry["security"] = [{"apiKey": []}, {}]
        paths.setdefault(operation.path, {})[operation.method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rerankd",
            "version": rerankd.__version__,
            "description": (
                "Self-hosted reranker inference: the SIE, Cohere/Jina and TEI protocols over one engine. "
                f"This server accepts at most {limits.max_items} items per request and bodies up to "
                f"{limits.max_body_bytes} bytes (413 beyond). Errors answer "
                '`{"error": {"code", "message", "param"}}`, in MessagePack when the request was.'
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "the server's `--api-key`"},
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the server's `--admin-api-key`: admin writes, and everything the API key allows",
                },
            },
        },
    }
