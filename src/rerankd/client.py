"""Python SDK: `Client` and `AsyncClient` for a rerankd server (no torch needed).

    from rerankd import Client, Item
    result = Client("http://localhost:8080").score(model, Item(text=q), [Item(id="0", text=d)])
    result["scores"][0]["item_id"] == result.scores[0].item_id

`score` speaks the SIE protocol over MessagePack; `rerank` speaks Cohere's `/v1/rerank`.
Errors raise `APIError` (with the server's `code`, `status` and offending `param`).

Model lifecycle (admin API): `load_model`, `swap`, `unload_model`, `load_adapter`,
`unload_adapter`, `list_models`, `get_model`. Each returns when the server has finished:
`swap` once the new weights serve (in-flight requests finish on the old ones).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

import httpx
import msgpack

from rerankd.core.types import Item

MSGPACK = "application/msgpack"
# Transient answers worth waiting for: a model still loading, a full queue, no room to load yet.
_RETRY_CODES = {"MODEL_LOADING", "LORA_LOADING", "QUEUE_FULL", "NO_CAPACITY"}


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


def _item_payload(item: Item | Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, Item):
        return {key: value for key, value in asdict(item).items() if value is not None}
    return dict(item)


def _score_body(
    query: Item | Mapping[str, Any] | str,
    items: Iterable[Item | Mapping[str, Any] | str],
    instruction: str | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": _item_payload(query), "items": [_item_payload(item) for item in items]}
    if instruction is not None:
        body["instruction"] = instruction
    if options:
        body["options"] = dict(options)
    return body


def _rerank_body(model, query, documents, top_n, return_documents, max_tokens_per_doc) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "query": query, "documents": list(documents)}
    if top_n is not None:
        body["top_n"] = top_n
    if return_documents:
        body["return_documents"] = True
    if max_tokens_per_doc is not None:
        body["max_tokens_per_doc"] = max_tokens_per_doc
    return body


def _model_path(name: str, adapter: str | None = None) -> str:
    """`/v1/models/{name}[/adapters/{adapter}]`; names keep their '/' (Hugging Face ids)."""
    path = f"/v1/models/{quote(name, safe='/')}"
    return f"{path}/adapters/{quote(adapter, safe='')}" if adapter is not None else path


def _load_body(source: str, revision: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"source": source}
    if revision is not None:
        body["revision"] = revision
    return body


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


def _timeout(seconds: float | None) -> dict[str, Any]:
    """Per-call timeout (loads can take longer than scoring); None keeps the client's."""
    return {} if seconds is None else {"timeout": seconds}


def _retry_delay(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    if response.headers.get("x-error-code") not in _RETRY_CODES:
        return None
    try:
        return max(0.1, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


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


class Client:
    """Blocking client. `wait_for_model` seconds are spent retrying 503 MODEL_LOADING/QUEUE_FULL."""

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        wait_for_model: float = 120.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self._wait = wait_for_model

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self._wait
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
            delay = _retry_delay(response)
            if delay is not None and time.monotonic() + delay < deadline:
                time.sleep(delay)
                continue
            if response.status_code >= 400:
                raise _error(response)
            return _decode(response)

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
        body = msgpack.packb(_score_body(query, items, instruction, options), use_bin_type=True)
        headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        return _score_result(self._request("POST", f"/v1/score/{model}", content=body, headers=headers))

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
        body = _rerank_body(model, query, documents, top_n, return_documents, max_tokens_per_doc)
        return _rerank_result(self._request("POST", "/v1/rerank", json=body))

    def list_models(self) -> list[dict[str, Any]]:
        """Every served model (state, family, source, dtype, device, memory, adapters, requests served)."""
        return self._request("GET", "/v1/models")["data"]

    def get_model(self, name: str) -> dict[str, Any]:
        """One model's info (or one adapter's, for `name:adapter`)."""
        return self._request("GET", _model_path(name))

    def load_model(
        self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Serve `source` as `name`; when `name` already serves, this is a hot-swap (see `swap`)."""
        return self._request("PUT", _model_path(name), json=_load_body(source, revision), **_timeout(timeout))

    def swap(self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None) -> dict:
        """Replace `name`'s weights without failing a request; returns once the new ones serve.

        On failure (APIError 502 MODEL_LOAD_FAILED) the previous version keeps serving.
        """
        return self.load_model(name, source, revision=revision, timeout=timeout)

    def unload_model(self, name: str) -> dict[str, Any]:
        """Stop serving `name` (its in-flight requests finish first)."""
        return self._request("DELETE", _model_path(name))

    def load_adapter(self, model: str, adapter: str, source: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Load a PEFT LoRA adapter directory as `model:adapter` (replacing one of that name)."""
        return self._request("PUT", _model_path(model, adapter), json={"source": source}, **_timeout(timeout))

    def unload_adapter(self, model: str, adapter: str) -> dict[str, Any]:
        return self._request("DELETE", _model_path(model, adapter))


class AsyncClient:
    """Asyncio twin of `Client`."""

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        wait_for_model: float = 120.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self._wait = wait_for_model

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self._wait
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
            delay = _retry_delay(response)
            if delay is not None and time.monotonic() + delay < deadline:
                await asyncio.sleep(delay)
                continue
            if response.status_code >= 400:
                raise _error(response)
            return _decode(response)

    async def score(
        self,
        model: str,
        query: Item | Mapping[str, Any] | str,
        items: Iterable[Item | Mapping[str, Any] | str],
        *,
        instruction: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ScoreResult:
        body = msgpack.packb(_score_body(query, items, instruction, options), use_bin_type=True)
        headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        return _score_result(await self._request("POST", f"/v1/score/{model}", content=body, headers=headers))

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
        body = _rerank_body(model, query, documents, top_n, return_documents, max_tokens_per_doc)
        return _rerank_result(await self._request("POST", "/v1/rerank", json=body))

    async def list_models(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/v1/models"))["data"]

    async def get_model(self, name: str) -> dict[str, Any]:
        return await self._request("GET", _model_path(name))

    async def load_model(
        self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self._request("PUT", _model_path(name), json=_load_body(source, revision), **_timeout(timeout))

    async def swap(
        self, name: str, source: str, *, revision: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.load_model(name, source, revision=revision, timeout=timeout)

    async def unload_model(self, name: str) -> dict[str, Any]:
        return await self._request("DELETE", _model_path(name))

    async def load_adapter(
        self, model: str, adapter: str, source: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self._request("PUT", _model_path(model, adapter), json={"source": source}, **_timeout(timeout))

    async def unload_adapter(self, model: str, adapter: str) -> dict[str, Any]:
        return await self._request("DELETE", _model_path(model, adapter))
