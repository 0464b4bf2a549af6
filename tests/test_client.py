"""The SDK's shared request/response layer: what both clients send, and when they wait and retry."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import httpx
import msgpack
import pytest
from support.lifecycle import DOCUMENTS, QUERY

from rerankd import APIError, AsyncClient, Client, Item
from rerankd.client import Deadline, load_model_call, rerank_call, retry_delay, score_call


def refusal(status: int, code: str, **headers: str) -> httpx.Response:
    """An error answer as rerankd sends it: the code in the body and in `X-Error-Code`."""
    body = {"error": {"code": code, "message": "not now", "param": "model"}}
    return httpx.Response(status, headers={"X-Error-Code": code, **headers}, json=body)


@pytest.mark.parametrize("code", ["MODEL_LOADING", "LORA_LOADING", "QUEUE_FULL", "NO_CAPACITY"])
def test_transient_refusals_are_retried_after_the_servers_retry_after(code):
    assert retry_delay(refusal(503, code, **{"Retry-After": "3"})) == 3.0
    assert retry_delay(refusal(429, code, **{"Retry-After": "2"})) == 2.0


def test_retry_delay_defaults_and_floor():
    assert retry_delay(refusal(503, "MODEL_LOADING")) == 1.0  # no Retry-After
    assert retry_delay(refusal(503, "MODEL_LOADING", **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 1.0
    assert retry_delay(refusal(503, "QUEUE_FULL", **{"Retry-After": "0"})) == 0.1  # never a busy loop


@pytest.mark.parametrize(
    "response",
    [
        refusal(503, "MODEL_UNLOADED", **{"Retry-After": "1"}),  # final: the model is gone
        refusal(404, "MODEL_NOT_FOUND"),
        refusal(502, "MODEL_LOAD_FAILED"),
        refusal(500, "MODEL_LOADING"),  # a code alone is not enough: only 429 and 503 are transient
        httpx.Response(503, text="proxy says no"),  # no rerankd error code
        httpx.Response(200, json={"scores": []}),
    ],
)
def test_final_answers_are_not_retried(response):
    assert retry_delay(response) is None


def test_deadline_stops_retrying_when_the_wait_would_outlast_it():
    loading = refusal(503, "MODEL_LOADING", **{"Retry-After": "2"})
    assert Deadline(10).retry_after(loading) == 2.0
    assert Deadline(1).retry_after(loading) is None
    assert Deadline(0).retry_after(refusal(503, "QUEUE_FULL")) is None


def test_score_is_messagepack_and_rerank_json():
    score = score_call("m", "q", [Item(id="7", text="d"), {"text": "e"}], None, {"top_k": 1})
    request = score.request()
    assert (request["method"], request["url"]) == ("POST", "/v1/score/m")
    assert request["headers"] == {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}
    assert msgpack.unpackb(request["content"]) == {
        "query": {"text": "q"},
        "items": [{"id": "7", "text": "d"}, {"text": "e"}],
        "options": {"top_k": 1},
    }
    answer = httpx.Response(200, content=msgpack.packb({"model": "m", "scores": [{"item_id": "7", "score": 0.5}]}))
    answer.headers["content-type"] = "application/msgpack"
    result = score.result(answer)
    assert result.scores[0].item_id == "7" and result.query_id is None

    rerank = rerank_call("m", "q", iter(["a", "b"]), top_n=1).request()
    assert (rerank["method"], rerank["url"]) == ("POST", "/v1/rerank")
    assert rerank["json"] == {"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 1}
    assert "timeout" not in rerank  # the client's own timeout applies


def test_admin_calls_carry_their_own_timeout_and_raise_api_errors():
    load = load_model_call("BAAI/bge reranker", "/models/x", "main", 600.0)
    request = load.request()
    assert request["url"] == "/v1/models/BAAI/bge%20reranker"
    assert request["json"] == {"source": "/models/x", "revision": "main"}
    assert request["timeout"] == 600.0
    with pytest.raises(APIError) as caught:
        load.result(refusal(503, "MODEL_LOADING"))
    assert (caught.value.status, caught.value.code, caught.value.param) == (503, "MODEL_LOADING", "model")
    with pytest.raises(APIError) as caught:
        load.result(httpx.Response(502, text="bad gateway"))
    assert (caught.value.status, caught.value.code) == (502, "HTTP_ERROR")
    assert load.result(httpx.Response(200, json={"id": "x"})) == {"id": "x"}


def test_async_client_is_the_twin_of_client():
    public = {name for name in vars(Client) if not name.startswith("_")}
    assert public == {name for name in vars(AsyncClient) if not name.startswith("_")}
    for name in public - {"close"}:
        blocking, twin = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(twin), name
        assert list(inspect.signature(blocking).parameters) == list(inspect.signature(twin).parameters), name


def test_clients_wait_for_a_lazy_model_only_within_wait_for_model(start_server, minilm_cross_encoder_dir: Path):
    # Every on-demand load outlasts --load-timeout, so each model's first request gets 503 MODEL_LOADING.
    server = start_server(
        "--load-timeout",
        "0.001",
        "--model",
        f"impatient={minilm_cross_encoder_dir}",
        "--lazy",
        "--model",
        f"patient={minilm_cross_encoder_dir}",
        "--lazy",
    )
    with Client(server.url, wait_for_model=0) as client, pytest.raises(APIError) as caught:
        client.score("impatient", QUERY, DOCUMENTS)
    assert (caught.value.status, caught.value.code) == (503, "MODEL_LOADING")

    async def score() -> list[float]:
        async with AsyncClient(server.url) as client:
            return [entry.score for entry in (await client.score("patient", QUERY, DOCUMENTS)).scores]

    assert len(asyncio.run(score())) == len(DOCUMENTS)
    with Client(server.url) as client:
        assert client.get_model("patient")["state"] == "loaded"
