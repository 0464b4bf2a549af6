"""Every client mistake is a 4xx with a stable code naming the field; the server keeps serving."""

from __future__ import annotations

import http.client
import json
import threading
import time

import httpx
import msgpack
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rerankd import APIError, Client
from rerankd.api import nesting
from rerankd.api.app import EXCEPTION_HANDLERS, starlette_app
from rerankd.api.codec import decode
from rerankd.api.schemas.sie import ScoreRequest
from rerankd.bench.server import free_port
from rerankd.core.errors import MalformedBody

GOOD = {"query": {"text": "how long do fleas live"}, "items": [{"text": "a flea lives a year"}]}


def post(server, path: str, **kwargs) -> httpx.Response:
    return httpx.post(server.url + path, timeout=60, **kwargs)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"query": {"text": "q"}, "items": []}, "EMPTY_ITEMS", "items"),
        ({"query": {"text": "q"}}, "INVALID_REQUEST", "items"),
        ({"items": [{"text": "x"}]}, "INVALID_REQUEST", "query"),
        ({"query": {"text": "q"}, "items": "x"}, "INVALID_REQUEST", "items"),
        ({"query": {"text": "q"}, "items": [{"id": "1"}]}, "INVALID_REQUEST", "items[0].text"),
        ({"query": {"text": "q"}, "items": [{"text": "a"}, {"text": 5}]}, "INVALID_REQUEST", "items[1].text"),
        ({"query": {"text": "q"}, "items": [{"text": "a", "id": 3}]}, "INVALID_REQUEST", "items[0].id"),
        ({"query": "q", "items": [{"text": "a"}]}, "INVALID_REQUEST", "query"),
        ({"query": {}, "items": [{"text": "a"}]}, "INVALID_REQUEST", "query.text"),
        ({**GOOD, "options": {"top_k": 0}}, "INVALID_REQUEST", "options.top_k"),
        ({**GOOD, "options": {"top_k": "3"}}, "INVALID_REQUEST", "options.top_k"),
        ({**GOOD, "options": {"raw_scores": "yes"}}, "INVALID_REQUEST", "options.raw_scores"),
        ({**GOOD, "options": {"topk": 3}}, "INVALID_REQUEST", "options.topk"),
        ({**GOOD, "options": []}, "INVALID_REQUEST", "options"),
        ({**GOOD, "instruction": 7}, "INVALID_REQUEST", "instruction"),
        ({**GOOD, "instruction": "judge relevance"}, "INSTRUCTION_NOT_SUPPORTED", "instruction"),
        ({**GOOD, "extra": 1}, "INVALID_REQUEST", "extra"),
    ],
)
def test_score_route_rejects_bad_fields(server, body, code, param):
    for encoded in (
        {"json": body},
        {"content": msgpack.packb(body), "headers": {"Content-Type": "application/msgpack"}},
    ):
        response = post(server, "/v1/score/minilm", **encoded)
        assert response.status_code == 400, response.content
        detail = (response.json() if "json" in encoded else msgpack.unpackb(response.content))["error"]
        assert detail["code"] == code
        assert detail["param"] == param
        assert param.split("[")[0].split(".")[0] in detail["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "minilm", "query": "q", "documents": []}, "documents"),
        ({"model": "minilm", "documents": ["a"]}, "query"),
        ({"model": "minilm", "query": "q", "documents": [1]}, "documents[0]"),
        ({"model": "minilm", "query": "q", "documents": [{"title": "x"}]}, "documents[0].text"),
        ({"model": "minilm", "query": "q", "documents": ["a"], "top_n": -1}, "top_n"),
        ({"model": "minilm", "query": "q", "documents": ["a"], "return_documents": 1}, "return_documents"),
        ({"model": 3, "query": "q", "documents": ["a"]}, "model"),
    ],
)
def test_rerank_route_rejects_bad_fields(server, body, param):
    response = post(server, "/v1/rerank", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"\xff\xfe", b"[1, 2", b"null", b"[]", b'"text"'],
)
def test_malformed_or_non_object_json_is_400(server, raw):
    response = post(server, "/v1/score/minilm", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"MALFORMED_BODY", "INVALID_REQUEST"}


def test_malformed_msgpack_is_400(server):
    for raw in (b"\xc1", b"garbage", msgpack.packb(GOOD)[:-3]):
        response = post(server, "/v1/score/minilm", content=raw, headers={"Content-Type": "application/msgpack"})
        assert response.status_code == 400
        assert msgpack.unpackb(response.content)["error"]["code"] == "MALFORMED_BODY"


def test_unsupported_content_type_is_415(server):
    response = post(server, "/v1/score/minilm", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_unknown_model_is_404_on_every_route(server):
    assert post(server, "/v1/score/no-such-model", json=GOOD).json()["error"]["code"] == "MODEL_NOT_FOUND"
    response = post(server, "/v1/rerank", json={"model": "no/such", "query": "q", "documents": ["a"]})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "model"


def test_too_many_items_is_413(server):
    body = {"query": {"text": "q"}, "items": [{"text": "a"}] * 2001}
    response = post(server, "/v1/score/minilm", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"


def test_unknown_route_and_method_use_the_error_shape(server):
    assert httpx.get(f"{server.url}/v2/nothing").json()["error"]["code"] == "NOT_FOUND"
    response = httpx.get(f"{server.url}/v1/score/minilm")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("model", ["missing", "corrupt"])
def test_model_that_failed_to_load_is_502_with_reason_and_others_serve(server, model):
    response = post(server, f"/v1/score/{model}", json=GOOD)
    assert response.status_code == 502
    detail = response.json()["error"]
    assert detail["code"] == "MODEL_LOAD_FAILED"
    assert model in detail["message"]
    assert len(detail["message"]) > len(f"model '{model}' failed to load: ") + 10  # carries the reason
    listed = {m["name"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert listed[model]["state"] == "failed"
    assert listed[model]["last_error"]["message"]
    assert post(server, "/v1/score/minilm", json=GOOD).status_code == 200


def test_sdk_raises_api_error_with_code_and_field(server):
    with Client(server.url) as client, pytest.raises(APIError) as caught:
        client.score("minilm", {"text": "q"}, [{"id": "x"}])
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_REQUEST"
    assert caught.value.param == "items[0].text"
    with Client(server.url) as client, pytest.raises(APIError) as caught:
        client.score("nope", "q", ["a"])
    assert caught.value.code == "MODEL_NOT_FOUND"


def test_server_still_answers_after_all_errors(server):
    assert server.alive()
    response = post(server, "/v1/score/minilm", json=GOOD)
    assert response.status_code == 200
    assert len(response.json()["scores"]) == 1


def _serve_in_thread(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, port


async def _boom(request: Request) -> Response:
    raise ZeroDivisionError("a bug")


async def _fine(request: Request) -> Response:
    return PlainTextResponse("fine")


def _boom_then_fine(port: int) -> tuple[int, bytes, bool]:
    """POST /boom, then GET /fine on the same connection: (status, body, whether the socket survived)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/boom", body=b'{"unread": true}', headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    status, body = response.status, response.read()
    local = conn.sock.getsockname()[1]
    try:
        conn.request("GET", "/fine")
        survived = conn.getresponse().read() == b"fine" and conn.sock.getsockname()[1] == local
    except (ConnectionError, http.client.HTTPException):
        survived = False
    conn.close()
    return status, body, survived


def test_unexpected_exception_is_a_structured_500_and_the_connection_survives():
    """No client input reaches a 500 any more, so a tiny app built by the same `starlette_app` proves it."""
    routes = [Route("/boom", _boom, methods=["POST"]), Route("/fine", _fine)]
    server, thread, port = _serve_in_thread(starlette_app(routes))
    try:
        status, body, survived = _boom_then_fine(port)
    finally:
        server.should_exit = True
        thread.join(10)
    assert status == 500
    assert json.loads(body) == {"error": {"code": "INTERNAL_ERROR", "message": "internal error: ZeroDivisionError"}}
    assert survived


def test_without_the_failsafe_starlette_drops_the_connection_after_a_500():
    """The mechanism the failsafe exists for (if Starlette stops re-raising, this may go)."""
    routes = [Route("/boom", _boom, methods=["POST"]), Route("/fine", _fine)]
    server, thread, port = _serve_in_thread(Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS))
    try:
        status, _, survived = _boom_then_fine(port)
    finally:
        server.should_exit = True
        thread.join(10)
    assert status == 500
    assert not survived


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
@pytest.mark.parametrize(("depth", "refused"), [(nesting.MAX_DEPTH, False), (nesting.MAX_DEPTH + 1, True)])
def test_nesting_is_bounded_exactly_before_decoding(encoding, depth, refused):
    """The body's own object counts: `MAX_DEPTH` containers decode, one more is MALFORMED_BODY."""
    metadata: object = 'leaf [[[[ {{{{ \\" ]]]'  # brackets, quotes and escapes inside strings do not count
    for _ in range(depth - 3):  # body -> items -> item -> metadata...
        metadata = {"k": metadata, "s": '["{'}
    body = {"query": {"text": "q"}, "items": [{"text": "a", "metadata": metadata}]}
    raw, media = (json.dumps(body).encode(), "application/json")
    if encoding == "msgpack":
        raw, media = msgpack.packb(body), "application/msgpack"
    if refused:
        with pytest.raises(MalformedBody, match="nests more than"):
            decode(raw, media, ScoreRequest)
    else:
        assert decode(raw, media, ScoreRequest).items[0].text == "a"


def test_brackets_in_strings_never_count_towards_depth():
    text = "[" * 500 + '\\"' + "{" * 500
    body = json.dumps({"query": {"text": text}, "items": [{"text": '\\\\"[[[' + "[" * 100}]}).encode()
    assert not nesting.json_too_deep(body)
    assert nesting.json_too_deep(b'["\\\\"' + b",[" * 70 + b"]" * 70 + b"]")  # `\\` ends the string
    assert nesting.json_too_deep(b'["x\\n", ' + b"[" * 70 + b"]" * 70 + b"]")  # `\n"` is no escaped quote
    assert not nesting.json_too_deep(b'["\\u005b\\/\\"' + b"[" * 70 + b'"]')
