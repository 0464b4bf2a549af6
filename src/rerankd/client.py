"""Python SDK: `Client` and `AsyncClient` for a rerankd server (no torch needed).

    from rerankd import Client, Item
    result = Client("http://localhost:8080").score(model, Item(text=q), [Item(id="0", text=d)])
    result["scores"][0]["item_id"] == result.scores[0].item_id

`score` speaks the SIE protocol over MessagePack; `rerank` speaks Cohere's `/v1/rerank`.
Errors raise `APIError` (with the server's `code`, `status` and offending `param`).

Model lifecycle (admin API): `load_model`, `swap`, `unload_model`, `load_adapter`,
`unload_adapter`, `list_models`, `get_model`. Each returns when the server has finished:
`swap` once the new weights serve (in-flight requests finish on the old ones).

The protocol is written once, without I/O: each operation is a `Call` (the HTTP request to
send and how its answer becomes a result or an `APIError`), and `Deadline` decides whether a
transient answer is worth sending again and after how long. `Client` and `AsyncClient` only
send calls and sleep, blocking or awaiting, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgpack

from rerankd.core.types import Item

MSGPACK = "application/msgpack"
# Transient answers worth waiting for: a model still loading, a full queue, no room to load yet.
_RETRY_CODES = {"MODEL_LOADING", "LORA_LOADING", "QUEUE_FULL", "NO_CAPACITY"}

T = TypeVar("T")
ItemLike = Item | Mapping[str, Any] | str


class Record(dict):
    """A dict whose keys also read as attributes (`r["score"]` and `r.score`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ScoreEntry(Record):
    item_id: str
    score: float
    rank: int
    index: int
    truncated: bool


class ScoreResult(Record):
    model: str
    scores: list[ScoreEntry]
    usage: dict[str, Any]
    query_id: str | None


class RerankHit(Record):
    index: int
    relevance_score: float
    document: dict[str, str] | None


class RerankResult(Record):
    id: str
    model: str
    results: list[RerankHit]
    usage: dict[str, Any]
    meta: dict[str, Any]


class APIError(Exception):
    """The server refused or failed a request; `code` is its stable error code."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field: {param})" if param else ""))
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.body = body


class ConnectionFailed(APIError):
    """The server could not be reached."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "CONNECTION_FAILED", message)


# ---------------------------------------------------------------------------- responses


def _decode(response: httpx.Response) -> Any:
    if MSGPACK in response.headers.get("content-type", ""):
        return msgpack.unpackb(response.content, raw=False)
    return response.json() if response.content else None


def _error(response: httpx.Response) -> APIError:
    try:
        body = _decode(response)
    except Exception:
        body = None
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return APIError(
            response.status_code, str(detail.get("code")), str(detail.get("message")), detail.get("param"), body
        )
    return APIError(response.status_code, "HTTP_ERROR", response.text[:500], body=body)


def retry_delay(response: httpx.Response) -> float | None:
    """Seconds the server asks to wait before trying again, or None when the answer is final.

    Only transient refusals (a loading model or adapter, a full queue, no room to load yet)
    are retried; `Retry-After` is honoured, at least 0.1 s, and 1 s when absent or unreadable.
    """
    if response.status_code not in (429, 503):
        return None
    if response.headers.get("x-error-code") not in _RETRY_CODES:
        return None
    try:
        return max(0.1, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


class Deadline:
    """The `wait_for_model` budget of one call: a retry is worth it only if it starts in time."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def retry_after(self, response: httpx.Response) -> float | None:
        """How long to sleep before sending the call again; None when `response` is its answer."""
        delay = retry_delay(response)
        if delay is None or time.monotonic() + delay >= self._end:
            return None
        return delay


@contextmanager
def _reaching_server() -> Iterator[None]:
    """A transport failure (refused, reset, timed out) becomes `ConnectionFailed`, an `APIError`."""
    try:
        yield
    except httpx.TransportError as error:
        raise ConnectionFailed(f"{type(error).__name__}: {error}") from error


def _as_is(data: Any) -> Any:
    return data


@dataclass(frozen=True)
class Call(Generic[T]):
    """One operation as data: the HTTP request to send, and how its decoded answer becomes `T`."""

    method: str
    path: str
    parse: Callable[[Any], T] = _as_is
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None  # None keeps the client's (loads can take longer than scoring)

    def request(self) -> dict[str, Any]:
        """Keyword arguments for `httpx.Client.request` / `httpx.AsyncClient.request`."""
        request: dict[str, Any] = {"method": self.method, "url": self.path}
        if self.json is not None:
            request["json"] = self.json
        if self.content is not None:
            request["content"] = self.content
        if self.headers:
            request["headers"] = dict(self.headers)
        if self.timeout is not None:
            request["timeout"] = self.timeout
        return request

    def result(self, response: httpx.Response) -> T:
        """The final answer's result; an error status raises the server's `APIError`."""
        if response.status_code >= 400:
            raise _error(response)
        return self.parse(_decode(response))


# ----------------------------------------------------------------------------- requests


def _item_payload(item: ItemLike) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, Item):
        return {key: value for key, value in asdict(item).items() if value is not None}
    return dict(item)


def _score_result(data: dict[str, Any]) -> ScoreResult:
    result = ScoreResult(data)
    result["scores"] = [ScoreEntry(entry) for entry in data.get("scores", [])]
    result.setdefault("query_id", None)
    return result


def _rerank_result(data: dict[str, Any]) -> RerankResult:
    result = RerankResult(data)
    result["results"] = [RerankHit(hit) for hit in data.get("results", [])]
    for hit in result["results"]:
        hit.setdefault("document", None)
    return result


def _model_path(name: str, adapter: str | None = None) -> str:
    """`/v1/models/{name}[/adapters/{adapter}]`; names keep their '/' (Hugging Face ids)."""
    path = f"/v1/models/{quote(name, safe='/')}"
    return f"{path}/adapters/{quote(adapter, safe='')}" if adapter is not None else path


def score_call(
    model: str,
    query: ItemLike,
    items: Iterable[ItemLike],
    instruction: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Call[ScoreResult]:
    """SIE `POST /v1/score/{model}` in MessagePack both ways (the protocol's native encoding)."""
    body: dict[str, Any] = {"query": _item_payload(query), "items": [_item_payload(item) for item in items]}
    if instruction is not None:
        body["instruction"] = instruction
    if options:
        body["options"] = dict(options)
    return Call(
        "POST",
        f"/v1/score/{model}",
        _score_result,
        content=msgpack.packb(body, use_bin_type=True),
        headers={"Content-Type": MSGPACK, "Accept": MSGPACK},
    )


def rerank_call(
    model: str,
    query: str,
    documents: Iterable[str],
    top_n: int | None = None,
    return_documents: bool = False,
    max_tokens_per_doc: int | None = None,
) -> Call[RerankResult]:
    """Cohere `POST /v1/rerank` in JSON; optional fields go only when set, so the server's defaults apply."""
    body: dict[str, Any] = {"model": model, "query": query, "documents": list(documents)}
    if top_n is not None:
        body["top_n"] = top_n
    if return_documents:
        body["return_documents"] = True
    if max_tokens_per_doc is not None:
        body["max_tokens_per_doc"] = max_tokens_per_doc
    return Call("POST", "/v1/rerank", _rerank_result, json=body)


def list_models_call() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/v1/models", lambda data: data["data"])


def get_model_call(name: str) -> Call[dict[str, Any]]:
    return Call("GET", _model_path(name))


def load_model_call(
    name: str, source: str, revision: str | None = None, timeout: float | None = None
) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {"source": source}
    if revision is not None:
        body["revision"] = revision
    return Call("PUT", _model_path(name), json=body, timeout=timeout)


def unload_model_call(name: str) -> Call[dict[str, Any]]:
    return Call("DELETE", _model_path(name))


def load_adapter_call(model: str, adapter: str, source: str, timeout: float | None = None) -> Call[dict[str, Any]]:
    return Call("PUT", _model_path(model, adapter), json={"source": source}, timeout=timeout)


def unload_adapter_call(model: str, adapter: str) -> Call[dict[str, Any]]:
    return Call("DELETE", _model_path(model, adapter))


# ------------------------------------------------------------------------------ clients


class _Connection:
    """What both clients hold: an httpx client of `_transport`'s kind and the `wait_for_model` budget."""

    _transport: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        wait_for_model: float = 120.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = self._transport(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self._wait = wait_for_model


class Client(_Connection):
    """Blocking client. `wait_for_model` seconds are spent retrying 503 MODEL_LOADING and 429 QUEUE_FULL."""

    _transport = httpx.Client
    _http: httpx.Client

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        deadline = Deadline(self._wait)
        while True:
            with _reaching_server():
                response = self._http.request(**call.request())
            delay = deadline.retry_after(response)
            if delay is None:
                return call.result(response)
            time.sleep(delay)

    def score(
        self,
        model: str,
        query: Item | Mapping[str, Any] | str,
        items: Iterable[Item | Mapping[str, Any] | str],
        *,
        instruction: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ScoreResult:
        """Scores sorted best first (SIE protocol)."""
        return self._send(score_call(model, query, items, instruction, options))

    def rerank(
        self,
        model: str,
        query: str,
        documents: Iterable[str],
        *,
        top_n: int | None = None,
        return_documents: bool = False,
        max_tokens_per_doc: int | None = None,
    ) -> RerankResult:
        """Cohere-style rerank: `results` of `{index, relevance_score, document?}`, best first."""
        return self._send(rerank_call(model, query, documents, top_n, return_documents, max_tokens_per_doc))

    def list_models(self) -> list[dict[str, Any]]:
        """Every served model (state, family, source, dtype, device, memory, adapters, requests served)."""
        return self._send(list_models_call())

    def get_model(self, name: str) -> dict[str, Any]:
        """One model's info (or one adapter's, for `name:adapter`)."""
        return self._send(get_model_call(name))

    def load_model(
        self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Serve `source` as `name`; when `name` already serves, this is a hot-swap (see `swap`)."""
        return self._send(load_model_call(name, source, revision, timeout))

    def swap(self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None) -> dict:
        """Replace `name`'s weights without failing a request; returns once the new ones serve.

        On failure (APIError 502 MODEL_LOAD_FAILED) the previous version keeps serving.
        """
        return self.load_model(name, source, revision=revision, timeout=timeout)

    def unload_model(self, name: str) -> dict[str, Any]:
        """Stop serving `name` (its in-flight requests finish first)."""
        return self._send(unload_model_call(name))

    def load_adapter(self, model: str, adapter: str, source: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Load a PEFT LoRA adapter directory as `model:adapter` (replacing one of that name)."""
        return self._send(load_adapter_call(model, adapter, source, timeout))

    def unload_adapter(self, model: str, adapter: str) -> dict[str, Any]:
        return self._send(unload_adapter_call(model, adapter))


class AsyncClient(_Connection):
    """Asyncio twin of `Client`."""

    _transport = httpx.AsyncClient
    _http: httpx.AsyncClient

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        deadline = Deadline(self._wait)
        while True:
            with _reaching_server():
                response = await self._http.request(**call.request())
            delay = deadline.retry_after(response)
            if delay is None:
                return call.result(response)
            await asyncio.sleep(delay)

    async def score(
        self,
        model: str,
        query: Item | Mapping[str, Any] | str,
        items: Iterable[Item | Mapping[str, Any] | str],
        *,
        instruction: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ScoreResult:
        return await self._send(score_call(model, query, items, instruction, options))

    async def rerank(
        self,
        model: str,
        query: str,
        documents: Iterable[str],
        *,
        top_n: int | None = None,
        return_documents: bool = False,
        max_tokens_per_doc: int | None = None,
    ) -> RerankResult:
        return await self._send(rerank_call(model, query, documents, top_n, return_documents, max_tokens_per_doc))

    async def list_models(self) -> list[dict[str, Any]]:
        return await self._send(list_models_call())

    async def get_model(self, name: str) -> dict[str, Any]:
        return await self._send(get_model_call(name))

    async def load_model(
        self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self._send(load_model_call(name, source, revision, timeout))

    async def swap(
        self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.load_model(name, source, revision=revision, timeout=timeout)

    async def unload_model(self, name: str) -> dict[str, Any]:
        return await self._send(unload_model_call(name))

    async def load_adapter(
        self, model: str, adapter: str, source: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self._send(load_adapter_call(model, adapter, source, timeout))

    async def unload_adapter(self, model: str, adapter: str) -> dict[str, Any]:
        return await self._send(unload_adapter_call(model, adapter))
