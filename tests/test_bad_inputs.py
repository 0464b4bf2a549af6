"""Nothing a client sends gets a 5xx or costs it its connection: 150+ bad requests, every route, one socket.

Each case goes to ONE real server over ONE keep-alive connection (`http.client`), and a normal
scoring request follows it on that same socket (same local port): a 500, or a server that drops
the connection after an error (uvicorn did, after Starlette re-raised), fails the case.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from rerankd.core import errors

# The integrator adds `--admin-api` here once the admin API is off by default.
SERVER_ARGS = ["--admin-api", "--max-items", "50", "--max-body-mb", "1"]

JSON = "application/json"
MSGPACK = "application/msgpack"
GOOD = {"query": {"text": "how long do fleas live"}, "items": [{"text": "a flea lives a year"}]}
RERANK = {"model": "minilm", "query": "how long do fleas live", "documents": ["a flea lives a year"]}
TEI = {"model": "minilm", "query": "how long do fleas live", "texts": ["a flea lives a year"]}


def _codes(kind: type[errors.RerankdError]) -> set[str]:
    return {kind.code} | {code for sub in kind.__subclasses__() for code in _codes(sub)}


STABLE_CODES = _codes(errors.RerankdError)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes | None
    content_type: str | None
    status: int
    code: str
    param: str | None = None


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _both(name: str, path: str, body: dict, status: int, code: str, param: str | None = None, method: str = "POST"):
    """The same body as JSON and as MessagePack: both must be refused alike."""
    return [
        Case(f"{name} [json]", method, path, json.dumps(body).encode(), JSON, status, code, param),
        Case(f"{name} [msgpack]", method, path, msgpack.packb(body), MSGPACK, status, code, param),
    ]


def _msgpack_text(body: dict, marker: str, raw_utf8: bytes) -> bytes:
    """`body` in MessagePack with the str `marker` replaced by a str of the (invalid) bytes `raw_utf8`."""
    packed = msgpack.packb(body)
    old = msgpack.packb(marker)
    assert packed.count(old) == 1
    return packed.replace(old, bytes([0xA0 | len(raw_utf8)]) + raw_utf8)


def _surrogates(name: str, path: str, template: str, param: str, *, all_kinds: bool = False) -> list[Case]:
    """A lone surrogate (JSON escape) and CESU-8 surrogate bytes (MessagePack str); `all_kinds`: two more."""
    body = json.loads(template.replace("@", "marker"))
    cases = [
        Case(f"{name} lone surrogate [json]", "POST", path, template.replace("@", "a\\ud800b").encode(), JSON, 400,
             "INVALID_REQUEST", param),
        Case(f"{name} CESU-8 surrogate [msgpack]", "POST", path, _msgpack_text(body, "marker", b"a\xed\xa0\x80b"),
             MSGPACK, 400, "INVALID_REQUEST", param),
    ]  # fmt: skip
    if all_kinds:
        cases += [
            Case(f"{name} low surrogate first [json]", "POST", path,
                 template.replace("@", "\\udc00\\ud800").encode(), JSON, 400, "INVALID_REQUEST", param),
            Case(f"{name} not UTF-8 [msgpack]", "POST", path, _msgpack_text(body, "marker", b"a\xffb"), MSGPACK,
                 400, "INVALID_REQUEST", param),
        ]  # fmt: skip
    return cases


def _score_cases() -> list[Case]:
    path = "/v1/score/minilm"
    q, items = GOOD["query"], GOOD["items"]
    cases = [
        *_both("empty items", path, {"query": q, "items": []}, 400, "EMPTY_ITEMS", "items"),
        *_both("no items", path, {"query": q}, 400, "INVALID_REQUEST", "items"),
        *_both("no query", path, {"items": items}, 400, "INVALID_REQUEST", "query"),
        *_both("items not a list", path, {"query": q, "items": "x"}, 400, "INVALID_REQUEST", "items"),
        *_both("item without text", path, {"query": q, "items": [{"id": "1"}]}, 400, "INVALID_REQUEST",
               "items[0].text"),
        *_both("text not a string", path, {"query": q, "items": [{"text": 5}]}, 400, "INVALID_REQUEST",
               "items[0].text"),
        *_both("id not a string", path, {"query": q, "items": [{"text": "a", "id": 3}]}, 400, "INVALID_REQUEST",
               "items[0].id"),
        *_both("query a string", path, {"query": "q", "items": items}, 400, "INVALID_REQUEST", "query"),
        *_both("query without text", path, {"query": {}, "items": items}, 400, "INVALID_REQUEST", "query.text"),
        *_both("top_k 0", path, {**GOOD, "options": {"top_k": 0}}, 400, "INVALID_REQUEST", "options.top_k"),
        *_both("top_k negative", path, {**GOOD, "options": {"top_k": -5}}, 400, "INVALID_REQUEST", "options.top_k"),
        *_both("top_k 1e30", path, {**GOOD, "options": {"top_k": 1e30}}, 400, "INVALID_REQUEST", "options.top_k"),
        *_both("top_k huge int", path, {**GOOD, "options": {"top_k": 2**63 - 1}}, 400, "INVALID_REQUEST",
               "options.top_k"),
        Case("top_k NaN [msgpack]", "POST", path, msgpack.packb({**GOOD, "options": {"top_k": float("nan")}}),
             MSGPACK, 400, "INVALID_REQUEST", "options.top_k"),
        *_both("top_k a string", path, {**GOOD, "options": {"top_k": "3"}}, 400, "INVALID_REQUEST", "options.top_k"),
        *_both("top_k a bool", path, {**GOOD, "options": {"top_k": True}}, 400, "INVALID_REQUEST", "options.top_k"),
        *_both("max_tokens_per_doc 0", path, {**GOOD, "options": {"max_tokens_per_doc": 0}}, 400, "INVALID_REQUEST",
               "options.max_tokens_per_doc"),
        *_both("max_chunks_per_doc huge", path, {**GOOD, "options": {"max_chunks_per_doc": 10**12}}, 400,
               "INVALID_REQUEST", "options.max_chunks_per_doc"),
        *_both("raw_scores a string", path, {**GOOD, "options": {"raw_scores": "yes"}}, 400, "INVALID_REQUEST",
               "options.raw_scores"),
        *_both("unknown option", path, {**GOOD, "options": {"topk": 3}}, 400, "INVALID_REQUEST", "options.topk"),
        *_both("options a list", path, {**GOOD, "options": []}, 400, "INVALID_REQUEST", "options"),
        *_both("instruction a number", path, {**GOOD, "instruction": 7}, 400, "INVALID_REQUEST", "instruction"),
        *_both("instruction unsupported", path, {**GOOD, "instruction": "judge"}, 400, "INSTRUCTION_NOT_SUPPORTED",
               "instruction"),
        *_both("unknown field", path, {**GOOD, "extra": 1}, 400, "INVALID_REQUEST", "extra"),
        *_both("lora and lora_id differ", path, {**GOOD, "options": {"lora": "a", "lora_id": "b"}}, 400,
               "INVALID_REQUEST", "options.lora"),
        *_both("unknown adapter", path, {**GOOD, "options": {"lora": "nope"}}, 404, "ADAPTER_NOT_FOUND",
               "options.lora"),
        *_both("duplicate ids", path, {"query": q, "items": [{"text": "a", "id": "x"}, {"text": "b", "id": "y"},
               {"text": "c", "id": "x"}]}, 400, "DUPLICATE_ITEM_ID", "items[2].id"),
        *_both("id equal to a default id", path, {"query": q, "items": [{"text": "a", "id": "item-1"},
               {"text": "b"}]}, 400, "DUPLICATE_ITEM_ID", "items[1].id"),
        *_both("too many items", path, {"query": q, "items": [{"text": "a"}] * 51}, 413, "REQUEST_TOO_LARGE",
               "items"),
        *_both("metadata too deep", path, {"query": q, "items": [{"text": "a", "metadata": _deep(70)}]}, 400,
               "MALFORMED_BODY"),
        *_both("ignored field too deep", path, {"query": q, "items": [{"text": "a", "x": _deep(100)}]}, 400,
               "MALFORMED_BODY"),
        *_both("unknown model", "/v1/score/no-such-model", GOOD, 404, "MODEL_NOT_FOUND", "model"),
        *_both("unknown model:adapter", "/v1/score/minilm:nope", GOOD, 404, "ADAPTER_NOT_FOUND", "model"),
        *_both("no model in the path", "/v1/score/", GOOD, 404, "MODEL_NOT_FOUND", "model"),
        *_surrogates("item text", path, '{"query": {"text": "q"}, "items": [{"text": "@"}]}', "items[0].text",
                     all_kinds=True),
        *_surrogates("query text", path, '{"query": {"text": "@"}, "items": [{"text": "a"}]}', "query.text"),
        *_surrogates("item id", path, '{"query": {"text": "q"}, "items": [{"text": "a", "id": "@"}]}',
                     "items[0].id"),
        *_surrogates("metadata", path, '{"query": {"text": "q"}, "items": [{"text": "a", "metadata": {"k": "@"}}]}',
                     "items[0].metadata.k"),
        *_surrogates("lora", path, '{"query": {"text": "q"}, "items": [{"text": "a"}], "options": {"lora": "@"}}',
                     "options.lora"),
        Case("metadata key lone surrogate [json]", "POST", path,
             b'{"query": {"text": "q"}, "items": [{"text": "a", "metadata": {"\\ud800": 1}}]}', JSON, 400,
             "INVALID_REQUEST", "items[0].metadata"),
        Case("100k [ [json]", "POST", path, b"[" * 100_000, JSON, 400, "MALFORMED_BODY"),
        Case("100k { [json]", "POST", path, b'{"a":' * 100_000, JSON, 400, "MALFORMED_BODY"),
        Case("100k arrays [msgpack]", "POST", path, b"\x91" * 100_000, MSGPACK, 400, "MALFORMED_BODY"),
        Case("100k maps [msgpack]", "POST", path, b"\x81\xa1a" * 100_000, MSGPACK, 400, "MALFORMED_BODY"),
        Case("NaN literal [json]", "POST", path, b'{"query": {"text": "q"}, "items": [{"text": "a"}], '
             b'"options": {"top_k": NaN}}', JSON, 400, "MALFORMED_BODY"),
        Case("huge int [json]", "POST", path, b'{"query": {"text": "q"}, "items": [{"text": "a"}], '
             b'"options": {"top_k": 1' + b"0" * 400 + b"}}", JSON, 400, "INVALID_REQUEST", "options.top_k"),
        Case("not JSON", "POST", path, b"{not json", JSON, 400, "MALFORMED_BODY"),
        Case("empty body", "POST", path, b"", JSON, 400, "MALFORMED_BODY"),
        Case("BOM bytes", "POST", path, b"\xff\xfe", JSON, 400, "MALFORMED_BODY"),
        Case("truncated JSON", "POST", path, b"[1, 2", JSON, 400, "MALFORMED_BODY"),
        Case("null body", "POST", path, b"null", JSON, 400, "INVALID_REQUEST"),
        Case("array body", "POST", path, b"[]", JSON, 400, "INVALID_REQUEST"),
        Case("string body", "POST", path, b'"text"', JSON, 400, "INVALID_REQUEST"),
        Case("trailing garbage", "POST", path, json.dumps(GOOD).encode() + b"}", JSON, 400, "MALFORMED_BODY"),
        Case("duplicate keys", "POST", path, b'{"query": {"text": "q"}, "query": 5, "items": [{"text": "a"}]}',
             JSON, 400, "INVALID_REQUEST", "query"),
        Case("JSON sent as MessagePack", "POST", path, json.dumps(GOOD).encode(), MSGPACK, 400, "MALFORMED_BODY"),
        Case("reserved byte [msgpack]", "POST", path, b"\xc1", MSGPACK, 400, "MALFORMED_BODY"),
        Case("garbage [msgpack]", "POST", path, b"garbage", MSGPACK, 400, "MALFORMED_BODY"),
        Case("truncated [msgpack]", "POST", path, msgpack.packb(GOOD)[:-3], MSGPACK, 400, "MALFORMED_BODY"),
        Case("map with int keys [msgpack]", "POST", path, msgpack.packb({1: 2}), MSGPACK, 400, "INVALID_REQUEST"),
        Case("body past --max-body-mb", "POST", path, b'{"query": {"text": "' + b"a" * (1 << 20) + b'"}}', JSON,
             413, "REQUEST_TOO_LARGE"),
        Case("XML", "POST", path, b"<xml/>", "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE"),
        Case("no content type, not JSON", "POST", path, b"query=q", None, 400, "MALFORMED_BODY"),
    ]  # fmt: skip
    return cases


def _rerank_cases() -> list[Case]:
    cases: list[Case] = []
    for path in ("/v1/rerank",):
        cases += [
            *_both(f"{path} empty documents", path, {**RERANK, "documents": []}, 400, "EMPTY_ITEMS", "documents"),
            *_both(f"{path} no query", path, {"model": "minilm", "documents": ["a"]}, 400, "INVALID_REQUEST", "query"),
            *_both(f"{path} document a number", path, {**RERANK, "documents": [1]}, 400, "INVALID_REQUEST",
                   "documents[0]"),
            *_both(f"{path} document without text", path, {**RERANK, "documents": [{"title": "x"}]}, 400,
                   "INVALID_REQUEST", "documents[0].text"),
            *_both(f"{path} top_n negative", path, {**RERANK, "top_n": -1}, 400, "INVALID_REQUEST", "top_n"),
            *_both(f"{path} top_n 1e30", path, {**RERANK, "top_n": 1e30}, 400, "INVALID_REQUEST", "top_n"),
            *_both(f"{path} top_n huge", path, {**RERANK, "top_n": 2**62}, 400, "INVALID_REQUEST", "top_n"),
            *_both(f"{path} return_documents 1", path, {**RERANK, "return_documents": 1}, 400, "INVALID_REQUEST",
                   "return_documents"),
            *_both(f"{path} model a number", path, {**RERANK, "model": 3}, 400, "INVALID_REQUEST", "model"),
            *_both(f"{path} unknown model", path, {**RERANK, "model": "no/such"}, 404, "MODEL_NOT_FOUND", "model"),
            *_both(f"{path} rank_fields", path, {**RERANK, "rank_fields": ["title"]}, 400, "INVALID_REQUEST",
                   "rank_fields"),
            *_both(f"{path} unknown field", path, {**RERANK, "extra": 1}, 400, "INVALID_REQUEST", "extra"),
            *_both(f"{path} max_tokens_per_doc 0", path, {**RERANK, "max_tokens_per_doc": 0}, 400,
                   "INVALID_REQUEST", "max_tokens_per_doc"),
            *_both(f"{path} too many documents", path, {**RERANK, "documents": ["a"] * 51}, 413,
                   "REQUEST_TOO_LARGE", "documents"),
            *_both(f"{path} document extra too deep", path, {**RERANK, "documents": [{"text": "a", "x": _deep(80)}]},
                   400, "MALFORMED_BODY"),
        ]  # fmt: skip
    path = "/v2/rerank"  # the same handler as /v1/rerank: a few cases show it is wired the same way
    cases += [
        *_both(f"{path} empty documents", path, {**RERANK, "documents": []}, 400, "EMPTY_ITEMS", "documents"),
        *_both(f"{path} top_n 1e30", path, {**RERANK, "top_n": 1e30}, 400, "INVALID_REQUEST", "top_n"),
        Case(f"{path} 100k [ [json]", "POST", path, b"[" * 100_000, JSON, 400, "MALFORMED_BODY"),
    ]
    path = "/v1/rerank"
    cases += [
        *_surrogates("cohere model", path, '{"model": "@", "query": "q", "documents": ["a"]}', "model"),
        *_surrogates("cohere query", path, '{"model": "minilm", "query": "@", "documents": ["a"]}', "query"),
        *_surrogates("cohere document", path, '{"model": "minilm", "query": "q", "documents": ["a", "@"]}',
                     "documents[1]"),
        *_surrogates("cohere document object", path,
                     '{"model": "minilm", "query": "q", "documents": [{"text": "@"}]}', "documents[0].text"),
    ]  # fmt: skip
    return cases


def _tei_cases() -> list[Case]:
    path = "/rerank"
    return [
        *_both("tei empty texts", path, {**TEI, "texts": []}, 400, "EMPTY_ITEMS", "texts"),
        *_both("tei no query", path, {"texts": ["a"]}, 400, "INVALID_REQUEST", "query"),
        *_both("tei text a number", path, {**TEI, "texts": [1]}, 400, "INVALID_REQUEST", "texts[0]"),
        *_both("tei truncation_direction Left", path, {**TEI, "truncation_direction": "Left"}, 400,
               "INVALID_REQUEST", "truncation_direction"),
        *_both("tei truncate a string", path, {**TEI, "truncate": "yes"}, 400, "INVALID_REQUEST", "truncate"),
        *_both("tei raw_scores a number", path, {**TEI, "raw_scores": 2}, 400, "INVALID_REQUEST", "raw_scores"),
        *_both("tei unknown field", path, {**TEI, "top_n": 1}, 400, "INVALID_REQUEST", "top_n"),
        *_both("tei unknown model", path, {**TEI, "model": "nope"}, 404, "MODEL_NOT_FOUND", "model"),
        *_both("tei text too long, truncate false", path, {**TEI, "texts": ["flea " * 2000]}, 413, "INPUT_TOO_LONG"),
        *_both("tei too many texts", path, {**TEI, "texts": ["a"] * 51}, 413, "REQUEST_TOO_LARGE", "texts"),
        *_surrogates("tei query", path, '{"query": "@", "texts": ["a"]}', "query"),
        *_surrogates("tei text", path, '{"query": "q", "texts": ["a", "@"]}', "texts[1]"),
        Case("tei 100k [ [json]", "POST", path, b"[" * 100_000, JSON, 400, "MALFORMED_BODY"),
    ]  # fmt: skip


def _admin_cases() -> list[Case]:
    model, adapter = "/v1/models/bad-input-test", "/v1/models/minilm/adapters/bad-input-test"
    cases: list[Case] = []
    for path in (model, adapter):
        cases += [
            *_both(f"PUT {path} no source", path, {}, 400, "INVALID_REQUEST", "source", method="PUT"),
            *_both(f"PUT {path} blank source", path, {"source": "  "}, 400, "INVALID_REQUEST", "source", method="PUT"),
            *_both(f"PUT {path} source a number", path, {"source": 3}, 400, "INVALID_REQUEST", "source",
                   method="PUT"),
            *_both(f"PUT {path} unknown field", path, {"source": "x", "extra": 1}, 400, "INVALID_REQUEST", "extra",
                   method="PUT"),
            Case(f"PUT {path} not JSON", "PUT", path, b"{", JSON, 400, "MALFORMED_BODY"),
            Case(f"PUT {path} empty body", "PUT", path, b"", JSON, 400, "MALFORMED_BODY"),
            Case(f"PUT {path} too deep", "PUT", path, b"[" * 100_000, JSON, 400, "MALFORMED_BODY"),
            Case(f"PUT {path} too deep [msgpack]", "PUT", path, b"\x91" * 100_000, MSGPACK, 400, "MALFORMED_BODY"),
            Case(f"PUT {path} lone surrogate", "PUT", path, b'{"source": "/tmp/\\ud800"}', JSON, 400,
                 "INVALID_REQUEST", "source"),
            Case(f"PUT {path} not UTF-8 [msgpack]", "PUT", path, _msgpack_text({"source": "m"}, "m", b"\xed\xa0\x80"),
                 MSGPACK, 400, "INVALID_REQUEST", "source"),
            Case(f"PUT {path} XML", "PUT", path, b"<a/>", "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ]  # fmt: skip
    cases += [
        Case("PUT unusable model name", "PUT", "/v1/models/a:b", b'{"source": "x"}', JSON, 400, "INVALID_REQUEST",
             "name"),
        Case("PUT adapter of an unknown model", "PUT", "/v1/models/nope/adapters/a", b'{"source": "/nonexistent"}',
             JSON, 404, "MODEL_NOT_FOUND", "model"),
        Case("GET unknown model", "GET", "/v1/models/nope", None, None, 404, "MODEL_NOT_FOUND", "model"),
        Case("GET unknown model, bad UTF-8 in the path", "GET", "/v1/models/%ED%A0%80", None, None, 404,
             "MODEL_NOT_FOUND", "model"),
        Case("GET unknown adapter", "GET", "/v1/models/minilm:nope", None, None, 404, "ADAPTER_NOT_FOUND"),
        Case("GET unknown adapter route", "GET", "/v1/models/minilm/adapters/nope", None, None, 404,
             "ADAPTER_NOT_FOUND"),
        Case("GET adapter of unknown model", "GET", "/v1/models/nope/adapters/a", None, None, 404,
             "MODEL_NOT_FOUND"),
        Case("DELETE unknown model", "DELETE", "/v1/models/nope", None, None, 404, "MODEL_NOT_FOUND", "model"),
        Case("DELETE unknown adapter", "DELETE", "/v1/models/minilm/adapters/nope", None, None, 404,
             "ADAPTER_NOT_FOUND"),
        Case("DELETE adapter of unknown model", "DELETE", "/v1/models/nope/adapters/a", None, None, 404,
             "MODEL_NOT_FOUND"),
    ]  # fmt: skip
    return cases


def _routing_cases() -> list[Case]:
    return [
        Case("unknown route", "GET", "/v2/nothing", None, None, 404, "NOT_FOUND"),
        Case("unknown route POST", "POST", "/v1/embed", b"{}", JSON, 404, "NOT_FOUND"),
        Case("GET a POST route", "GET", "/v1/score/minilm", None, None, 405, "METHOD_NOT_ALLOWED"),
        Case("DELETE a POST route", "DELETE", "/v1/rerank", None, None, 405, "METHOD_NOT_ALLOWED"),
        Case("PATCH /v2/rerank", "PATCH", "/v2/rerank", b"{}", JSON, 405, "METHOD_NOT_ALLOWED"),
        Case("GET /rerank", "GET", "/rerank", None, None, 405, "METHOD_NOT_ALLOWED"),
        Case("PUT /healthz", "PUT", "/healthz", b"{}", JSON, 405, "METHOD_NOT_ALLOWED"),
        Case("POST /openapi.json", "POST", "/openapi.json", b"{}", JSON, 405, "METHOD_NOT_ALLOWED"),
        Case("POST /v1/models", "POST", "/v1/models", b"{}", JSON, 405, "METHOD_NOT_ALLOWED"),
        Case("PATCH a model", "PATCH", "/v1/models/minilm", b"{}", JSON, 405, "METHOD_NOT_ALLOWED"),
    ]


CASES = [*_score_cases(), *_rerank_cases(), *_tei_cases(), *_admin_cases(), *_routing_cases()]


@pytest.fixture(scope="module")
def connection(start_server, minilm_cross_encoder_dir: Path):
    """One keep-alive connection to one server, shared by every case in order."""
    server = start_server("--model", f"minilm={minilm_cross_encoder_dir}", *SERVER_ARGS)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.connect()
    yield conn, conn.sock.getsockname()[1]
    conn.close()


def _send(conn: http.client.HTTPConnection, case: Case) -> tuple[http.client.HTTPResponse, bytes]:
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    if case.body is None:
        conn.request(case.method, case.path, headers=headers)
    else:
        headers["Content-Length"] = str(len(case.body))
        conn.request(case.method, case.path, body=case.body, headers=headers)
    response = conn.getresponse()
    return response, response.read()


def test_there_are_at_least_120_cases_covering_every_route():
    assert len(CASES) >= 120
    assert len({case.name for case in CASES}) == len(CASES)
    paths = {case.path.split("/minilm")[0] for case in CASES}
    assert {"/v1/score", "/v1/rerank", "/v2/rerank", "/rerank", "/v1/models/bad-input-test", "/v1/models"} <= paths
    assert {case.content_type for case in CASES} >= {JSON, MSGPACK}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_is_a_4xx_with_a_stable_code_and_the_connection_survives(connection, case: Case):
    conn, port = connection
    response, raw = _send(conn, case)
    assert response.status < 500, raw[:300]
    detail = (msgpack.unpackb(raw) if response.getheader("content-type") == MSGPACK else json.loads(raw))["error"]
    assert detail["code"] in STABLE_CODES
    assert response.getheader("x-error-code") == detail["code"]
    assert (response.status, detail["code"]) == (case.status, case.code), detail
    if case.param is not None:
        assert detail.get("param") == case.param, detail
    assert (response.getheader("connection") or "").lower() != "close"

    conn.request("POST", "/v1/score/minilm", body=json.dumps(GOOD), headers={"Content-Type": JSON})
    after = conn.getresponse()
    scores = json.loads(after.read())
    assert after.status == 200
    assert len(scores["scores"]) == 1
    assert conn.sock.getsockname()[1] == port, "the server dropped the connection; http.client reconnected"
