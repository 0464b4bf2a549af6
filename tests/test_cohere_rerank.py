"""`/v1/rerank` and `/v2/rerank` (Cohere/Jina) and TEI's `/rerank`: same engine, same scores."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from support.ranking import assert_same_ranking

from rerankd import Client

# A request for a subset of the fixture's documents batches (so pads) them differently: its scores
# equal the fixture's only to float noise, and near-ties may swap.
SUBSET_TOL = 1e-5


@pytest.fixture(scope="module")
def sie_scores(server, trec) -> tuple[list[str], str, np.ndarray]:
    documents = trec[1].documents[:40]
    with Client(server.url) as client:
        result = client.score("minilm", trec[1].query, documents)
    scores = np.empty(len(documents))
    for entry in result.scores:
        scores[entry.index] = entry.score
    return documents, trec[1].query, scores


def test_rerank_matches_score_route_sorted(server, sie_scores):
    documents, query, expected = sie_scores
    with Client(server.url) as client:
        result = client.rerank("minilm", query, documents)
    assert [hit.index for hit in result.results] == list(np.argsort(-expected, kind="stable"))
    got = np.array([hit.relevance_score for hit in sorted(result.results, key=lambda h: h.index)])
    assert np.abs(got - expected).max() == 0.0
    assert all(hit.document is None for hit in result.results)
    assert result.usage["total_tokens"] > 0
    assert result.meta["billed_units"]["search_units"] == 1
    assert result.model == "minilm"


def test_top_n_and_return_documents(server, sie_scores):
    documents, query, expected = sie_scores
    with Client(server.url) as client:
        result = client.rerank("minilm", query, documents, top_n=3, return_documents=True)
    best = list(np.argsort(-expected, kind="stable")[:3])
    assert [hit.index for hit in result.results] == best
    assert [hit.document["text"] for hit in result.results] == [documents[i] for i in best]


def test_documents_as_objects_and_v2_route(server, sie_scores):
    documents, query, expected = sie_scores
    body = {"model": "minilm", "query": query, "documents": [{"text": d} for d in documents[:5]], "top_n": 2}
    for path in ("/v1/rerank", "/v2/rerank"):
        response = httpx.post(server.url + path, json=body, timeout=60)
        assert response.status_code == 200, response.text
        data = response.json()
        assert_same_ranking([r["index"] for r in data["results"]], expected[:5], SUBSET_TOL, top_k=2)
        assert max(abs(r["relevance_score"] - expected[r["index"]]) for r in data["results"]) <= SUBSET_TOL
        assert data["meta"]["api_version"]["version"] == path[2]


def test_tei_rerank_route(server, sie_scores):
    documents, query, expected = sie_scores
    body = {"query": query, "texts": documents[:6], "return_text": True, "model": "minilm"}
    response = httpx.post(f"{server.url}/rerank", json=body, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    assert_same_ranking([row["index"] for row in data], expected[:6], SUBSET_TOL)
    assert all(row["text"] == documents[row["index"]] for row in data)
    assert max(abs(row["score"] - expected[row["index"]]) for row in data) <= SUBSET_TOL


def test_tei_refuses_long_text_unless_truncate(server):
    long_text = "word " * 700
    body = {"query": "q", "texts": [long_text], "model": "minilm"}
    refused = httpx.post(f"{server.url}/rerank", json=body, timeout=60)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "INPUT_TOO_LONG"
    accepted = httpx.post(f"{server.url}/rerank", json={**body, "truncate": True}, timeout=60)
    assert accepted.status_code == 200
