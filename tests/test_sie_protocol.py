"""`POST /v1/score/{model}`: scores equal sentence-transformers' CrossEncoder, sorted, in JSON and msgpack."""

from __future__ import annotations

import httpx
import msgpack
import numpy as np
import pytest
from support.ranking import assert_same_ranking
from support.reference import cross_encoder_scores

from rerankd import Client, Item


@pytest.fixture(scope="module")
def first_query(trec):
    return trec[0]


def _by_index(entries) -> np.ndarray:
    scores = np.empty(len(entries))
    for entry in entries:
        scores[entry["index"]] = entry["score"]
    return scores


def test_sdk_scores_equal_cross_encoder_reference_sorted(server, minilm_cross_encoder_dir, first_query):
    query, documents = first_query.query, first_query.documents
    reference = cross_encoder_scores(minilm_cross_encoder_dir, query, documents)
    with Client(server.url) as client:
        result = client.score("minilm", Item(text=query), [Item(id=str(i), text=d) for i, d in enumerate(documents)])
    assert len(result["scores"]) == 100
    assert result.model == "minilm"
    ids = [int(entry["item_id"]) for entry in result["scores"]]
    assert sorted(ids) == list(range(100))
    scores = [entry.score for entry in result.scores]
    assert scores == sorted(scores, reverse=True)
    assert [entry.rank for entry in result.scores] == list(range(100))
    got = np.array([entry.score for entry in sorted(result.scores, key=lambda e: int(e.item_id))])
    assert np.abs(got - reference).max() <= 1e-5
    assert_same_ranking(ids, reference, 1e-5)  # near-ties (within float noise) may come back in either order
    assert result.usage["input_tokens"] > result.usage["input_tokens_details"]["content_tokens"] > 0


def test_raw_scores_are_the_logits(server, minilm_cross_encoder_dir, first_query):
    documents = first_query.documents[:20]
    logits = cross_encoder_scores(minilm_cross_encoder_dir, first_query.query, documents, raw=True)
    with Client(server.url) as client:
        result = client.score("minilm", first_query.query, documents, options={"raw_scores": True})
    assert np.abs(_by_index(result.scores) - logits).max() <= 1e-4
    assert (logits > 1).any() or (logits < 0).any()  # logits, not probabilities


def test_json_body_and_response_with_default_item_ids_and_query_id(server, first_query):
    body = {
        "query": {"id": "q-1", "text": first_query.query},
        "items": [{"text": text} for text in first_query.documents[:5]],
    }
    response = httpx.post(f"{server.url}/v1/score/minilm", json=body, timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["query_id"] == "q-1"
    assert {entry["item_id"] for entry in data["scores"]} == {f"item-{i}" for i in range(5)}
    for entry in data["scores"]:
        assert entry["item_id"] == f"item-{entry['index']}"


def test_msgpack_request_gets_msgpack_response_and_json_request_can_accept_msgpack(server, first_query):
    body = {"query": {"text": first_query.query}, "items": [{"text": t} for t in first_query.documents[:3]]}
    for content_type in ("application/msgpack", "application/x-msgpack"):
        response = httpx.post(
            f"{server.url}/v1/score/minilm",
            content=msgpack.packb(body),
            headers={"Content-Type": content_type},
            timeout=60,
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/msgpack"
        assert len(msgpack.unpackb(response.content)["scores"]) == 3
    response = httpx.post(
        f"{server.url}/v1/score/minilm", json=body, headers={"Accept": "application/msgpack"}, timeout=60
    )
    assert response.headers["content-type"] == "application/msgpack"
    json_scores = httpx.post(f"{server.url}/v1/score/minilm", json=body, timeout=60).json()["scores"]
    assert msgpack.unpackb(response.content)["scores"] == json_scores


def test_top_k_returns_only_the_best(server, first_query):
    with Client(server.url) as client:
        full = client.score("minilm", first_query.query, first_query.documents[:30])
        top = client.score("minilm", first_query.query, first_query.documents[:30], options={"top_k": 5})
    assert [e.item_id for e in top.scores] == [e.item_id for e in full.scores[:5]]
    assert [e.rank for e in top.scores] == [0, 1, 2, 3, 4]


def test_model_id_with_slash_routes(server, first_query):
    with Client(server.url) as client:
        result = client.score("sentence-transformers/all-MiniLM-L6-v2", first_query.query, first_query.documents[:4])
    assert result.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(result.scores) == 4


def test_long_documents_are_truncated_and_flagged(server, first_query):
    long_document = " ".join(["flea lifecycle"] * 600)
    with Client(server.url) as client:
        result = client.score("minilm", first_query.query, [long_document, "short text"])
    flags = {entry.index: entry.truncated for entry in result.scores}
    assert flags == {0: True, 1: False}
    assert result.usage["truncated_items"] == 1
    assert result.usage["input_tokens"] <= 512 + 40
