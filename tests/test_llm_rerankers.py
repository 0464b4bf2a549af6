"""LLM rerankers (Gemma, Qwen3, Qwen2/mxbai-v2) served by `rerankd serve` vs their reference formulas.

Each family runs a small random-weight checkpoint of its real architecture (real Gemma
tokenizer; a locally trained Qwen-style tokenizer for the Qwen models) under its catalog id,
and is compared on TREC DL 2019 passages with the independent implementations in
`support/llm_reference.py` (left padding, full logits, eager attention): |Δ| ≤ 1e-4 in fp32,
identical ranking. The server runs right padding and shared-prefix KV reuse (the catalog
default); in-process checks cover the path without reuse and mixed-length batches.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from support.data import GEMMA_TOKENIZER
from support.llm_checkpoints import (
    build_gemma_reranker,
    build_mxbai_v2_reranker,
    build_qwen3_reranker,
    build_qwen_tokenizer,
)
from support.llm_reference import (
    QWEN3_TASK,
    bge_gemma_inputs,
    bge_gemma_scores,
    last_logits,
    mxbai_v2_inputs,
    mxbai_v2_scores,
    qwen3_inputs,
    qwen3_scores,
)
from support.ranking import assert_same_ranking

from rerankd import Client
from rerankd.core.types import ScoreOptions
from rerankd.models import build_family
from rerankd.models.base import sigmoid
from rerankd.models.catalog import lookup
from rerankd.models.prefix_cache import PrefixCache, common_prefix_of_rows
from rerankd.models.runtime import Placement

GEMMA = "BAAI/bge-reranker-v2-gemma"
QWEN3 = "Qwen/Qwen3-Reranker-0.6B"
MXBAI = "mixedbread-ai/mxbai-rerank-base-v2"
QWEN3_LIMIT = 512  # the test checkpoint's positions cap the card's 8,192
TOL = 1e-4


@pytest.fixture(scope="module")
def llm_dirs(tmp_path_factory: pytest.TempPathFactory, trec) -> dict[str, Path]:
    if not (GEMMA_TOKENIZER / "tokenizer.json").exists():
        pytest.skip(f"{GEMMA_TOKENIZER} is absent")
    root = tmp_path_factory.mktemp("llm-rerankers")
    corpus = [document for query in trec for document in query.documents]
    tokenizer = build_qwen_tokenizer(root / "qwen-tokenizer", corpus)
    return {
        GEMMA: build_gemma_reranker(root / "gemma", GEMMA_TOKENIZER),
        QWEN3: build_qwen3_reranker(root / "qwen3", tokenizer, max_positions=QWEN3_LIMIT),
        MXBAI: build_mxbai_v2_reranker(root / "mxbai", tokenizer),
    }


@pytest.fixture(scope="module")
def llm_server(start_server, llm_dirs, minilm_cross_encoder_dir):
    return start_server(
        "--ready-when",
        "any",  # plain-qwen3 never loads
        *(arg for name, path in llm_dirs.items() for arg in ("--model", f"{name}={path}")),
        "--model",
        f"minilm={minilm_cross_encoder_dir}",
        "--model",
        f"plain-qwen3={llm_dirs[QWEN3]}",  # a causal LM outside the catalog: a clear load error
    )


def reference_raw(name: str, model_dir: Path, query: str, documents: list[str], instruction=None) -> np.ndarray:
    if name == GEMMA:
        return bge_gemma_scores(model_dir, query, documents, prompt=instruction)
    if name == QWEN3:
        return qwen3_scores(model_dir, query, documents, instruction, max_length=QWEN3_LIMIT)[0]
    return mxbai_v2_scores(model_dir, query, documents, instruction)


def served(client: Client, name: str, query: str, documents: list[str], **kwargs) -> tuple[np.ndarray, list[bool]]:
    """Scores (and truncation flags) in request order."""
    scores, flags, _ = served_ranked(client, name, query, documents, **kwargs)
    return scores, flags


def served_ranked(client: Client, name: str, query: str, documents: list[str], **kwargs):
    """`served` plus the response's own order (indices, best first), for the ranking checks."""
    result = client.score(name, query, documents, **kwargs)
    scores = np.empty(len(documents))
    flags = [False] * len(documents)
    for entry in result.scores:
        scores[entry.index] = entry.score
        flags[entry.index] = entry.truncated
    return scores, flags, [entry.index for entry in result.scores]


@pytest.mark.parametrize("name", [GEMMA, QWEN3, MXBAI])
def test_scores_match_reference(llm_server, llm_dirs, trec, name):
    with Client(llm_server.url) as client:
        for query in (trec[0], trec[7]):
            documents = query.documents[:40]
            expected = reference_raw(name, llm_dirs[name], query.query, documents)
            assert np.ptp(expected) > 0.1  # random weights still spread the scores
            raw, _, raw_order = served_ranked(client, name, query.query, documents, options={"raw_scores": True})
            normalised, _, order = served_ranked(client, name, query.query, documents)
            print(f"\n{name}: {len(documents)} documents, max |Δ| vs reference {np.abs(raw - expected).max():.1e}")
            assert np.abs(raw - expected).max() <= TOL
            assert np.abs(normalised - sigmoid(expected)).max() <= TOL
            assert_same_ranking(raw_order, expected, TOL)
            assert_same_ranking(order, sigmoid(expected), TOL)


def test_qwen3_default_score_is_p_yes(llm_server, llm_dirs, trec):
    documents = trec[2].documents[:20]
    _, probability = qwen3_scores(llm_dirs[QWEN3], trec[2].query, documents, max_length=QWEN3_LIMIT)
    with Client(llm_server.url) as client:
        got, _ = served(client, QWEN3, trec[2].query, documents)
    assert np.abs(got - probability).max() <= TOL


@pytest.mark.parametrize("name", [GEMMA, QWEN3, MXBAI])
def test_instruction_changes_scores_as_reference(llm_server, llm_dirs, trec, name):
    instruction = "Given a medical question, find passages written by doctors that answer it"
    query, documents = trec[5].query, trec[5].documents[:20]
    expected = reference_raw(name, llm_dirs[name], query, documents, instruction)
    default = reference_raw(name, llm_dirs[name], query, documents)
    assert np.abs(expected - default).max() > 1e-3  # the instruction is really in the prompt
    with Client(llm_server.url) as client:
        got, _ = served(client, name, query, documents, instruction=instruction, options={"raw_scores": True})
        assert np.abs(got - expected).max() <= TOL
        if name == QWEN3:  # the card's default task, sent explicitly, is the default
            explicit, _ = served(client, name, query, documents, instruction=QWEN3_TASK, options={"raw_scores": True})
            assert np.abs(explicit - default).max() <= TOL


def test_family_without_instruction_rejects_one(llm_server):
    response = httpx.post(
        f"{llm_server.url}/v1/score/minilm",
        json={"query": {"text": "q"}, "items": [{"text": "d"}], "instruction": "judge"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INSTRUCTION_NOT_SUPPORTED"
    assert response.json()["error"]["param"] == "instruction"


@pytest.mark.parametrize("name", [GEMMA, QWEN3, MXBAI])
def test_long_document_is_truncated_before_the_template_suffix(llm_server, llm_dirs, trec, name):
    query = trec[9]
    long_document = " ".join(query.documents[:15])  # well over every test checkpoint's limit
    documents = [query.documents[0], long_document, query.documents[1]]
    expected = reference_raw(name, llm_dirs[name], query.query, documents)
    with Client(llm_server.url) as client:
        got, flags = served(client, name, query.query, documents, options={"raw_scores": True})
        result = client.score(name, query.query, documents)
    assert flags == [False, True, False]
    assert result.usage["truncated_items"] == 1
    assert np.abs(got - expected).max() <= TOL
    # In process: the truncated prompt is exactly the reference's, at the limit, ending in the suffix.
    family = load_family(name, llm_dirs[name])
    prepared = family.prepare(query.query, documents, None, ScoreOptions())
    reference_ids = reference_inputs(name, llm_dirs[name], query.query, documents)
    assert prepared.ids == reference_ids
    tail = family.template.parts(query.query, documents[:1], None).tail
    assert prepared.ids[1][-len(tail) :] == tail
    assert len(prepared.ids[1]) == max(len(ids) for ids in reference_ids) <= family.max_length


def test_truncation_off_refuses_a_long_document(llm_server, trec):
    response = httpx.post(
        f"{llm_server.url}/rerank",
        json={"model": QWEN3, "query": "q", "texts": [" ".join(trec[0].documents[:15])], "truncate": False},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "INPUT_TOO_LONG"


def test_mixed_lengths_in_one_batch_equal_one_by_one(llm_server, trec):
    query = trec[11]
    documents = [query.documents[0][:40], " ".join(query.documents[:3]), query.documents[2], "yes"]
    with Client(llm_server.url) as client:
        for name in (GEMMA, QWEN3, MXBAI):
            batched, _ = served(client, name, query.query, documents, options={"raw_scores": True})
            alone = np.array(
                [served(client, name, query.query, [doc], options={"raw_scores": True})[0][0] for doc in documents]
            )
            assert np.abs(batched - alone).max() <= TOL


def test_causal_lm_outside_the_catalog_fails_with_a_clear_error(llm_server):
    response = httpx.post(
        f"{llm_server.url}/v1/score/plain-qwen3", json={"query": {"text": "q"}, "items": [{"text": "d"}]}
    )
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "causal language model" in message
    assert QWEN3 in message


# --------------------------------------------------------------------------------- in process


@functools.cache
def _family(name: str, model_dir: Path, reuse: bool):
    spec = lookup(name)
    spec = dataclasses.replace(spec, settings={**spec.settings, "prefix_reuse": reuse})
    return build_family(spec, Placement(torch.device("cpu"), torch.float32), model_dir)


def load_family(name: str, model_dir: Path, *, prefix_reuse: bool = True):
    """A family loaded in process (cached: loading Gemma's 256k-token tokenizer takes a while)."""
    family = _family(name, model_dir, prefix_reuse)
    family.prefixes = PrefixCache()
    return family


def reference_inputs(name: str, model_dir: Path, query: str, documents: list[str]) -> list[list[int]]:
    if name == GEMMA:
        return bge_gemma_inputs(model_dir, query, documents)
    if name == QWEN3:
        return qwen3_inputs(model_dir, query, documents, None, QWEN3_LIMIT)
    return mxbai_v2_inputs(model_dir, query, documents, None)


def run_family(family, prepared, batch_size: int) -> np.ndarray:
    """Unit outputs through collate + forward in batches of `batch_size`, in unit order."""
    rows = []
    with torch.inference_mode():
        for start in range(0, prepared.n_units, batch_size):
            rows.append(family.forward(family.collate(prepared.ids[start : start + batch_size], None)).numpy())
    return np.concatenate(rows)


@pytest.mark.parametrize("name", [GEMMA, QWEN3, MXBAI])
def test_prefix_reuse_is_exact(llm_dirs, trec, name):
    instruction = "Judge with care " * 12 if name != GEMMA else None  # a long prefix for Qwen3 and mxbai
    query = trec[13]
    documents = query.documents[:24]
    with_reuse = load_family(name, llm_dirs[name], prefix_reuse=True)
    without = load_family(name, llm_dirs[name], prefix_reuse=False)
    prepared = with_reuse.prepare(query.query, documents, instruction, ScoreOptions())
    plain = without.prepare(query.query, documents, instruction, ScoreOptions())
    assert prepared.batch_key is not None and plain.batch_key is None
    assert prepared.ids == plain.ids
    batch = with_reuse.collate(prepared.ids[:8], None)
    assert "prefix_ids" in batch and batch["input_ids"].shape[1] < max(map(len, prepared.ids[:8]))
    reused = with_reuse.scores(prepared, run_family(with_reuse, prepared, 8), raw=True)
    assert with_reuse.prefixes.misses == 1 and with_reuse.prefixes.hits >= 2  # one prefix pass, 3 batches
    direct = without.scores(plain, run_family(without, plain, 8), raw=True)
    assert np.abs(reused - direct).max() <= TOL
    expected = reference_raw(name, llm_dirs[name], query.query, documents, instruction)
    assert np.abs(reused - expected).max() <= TOL


@pytest.mark.parametrize("name", [GEMMA, QWEN3, MXBAI])
def test_right_padded_mixed_batches_equal_left_padded_reference(llm_dirs, trec, name):
    """Units of different requests (different queries, very different lengths) in one batch."""
    family = load_family(name, llm_dirs[name], prefix_reuse=False)
    first = family.prepare(trec[20].query, trec[20].documents[:3], None, ScoreOptions())
    second = family.prepare(
        trec[21].query, [trec[21].documents[0][:30], " ".join(trec[21].documents[:4])], None, ScoreOptions()
    )
    mixed = [*first.ids, *second.ids]
    assert len(set(map(len, mixed))) == len(mixed)
    with torch.inference_mode():
        outputs = family.forward(family.collate(mixed, None)).numpy()
    got = family.template.raw_scores(outputs)
    reference = last_logits(llm_dirs[name], mixed)
    token_ids = family.template.score_token_ids
    expected = family.template.raw_scores(reference[:, token_ids].numpy())
    assert np.abs(got - expected).max() <= TOL
    alone = np.array(
        [family.template.raw_scores(family.forward(family.collate([ids], None)).numpy())[0] for ids in mixed]
    )
    assert np.abs(got - alone).max() <= TOL


def test_chunked_document_scores_max_over_windows(llm_dirs, trec):
    """`max_tokens_per_doc`: windows of the document, each in the full template; score = max."""
    family = load_family(QWEN3, llm_dirs[QWEN3])
    query = trec[4]
    document = " ".join(query.documents[:3])
    parts = family.template.parts(query.query, [document], None)
    stream = parts.documents[0]
    label = family.template.encode("<Document>:")
    assert stream[: len(label)] == label
    body = stream[len(label) :]
    window = 48
    overlap = min(64, window // 4)  # the README's rule, as in test_long_documents
    spans = []
    for start in range(0, len(body), window - overlap):
        spans.append((start, min(start + window, len(body))))
        if start + window >= len(body):
            break
    windows = [[*parts.shared, *label, *body[s:e], *parts.tail] for s, e in spans]
    assert len(windows) >= 3
    prepared = family.prepare(query.query, [document], None, ScoreOptions(max_tokens_per_doc=window))
    assert prepared.ids == windows
    got = family.scores(prepared, run_family(family, prepared, 4), raw=True)
    logits = last_logits(llm_dirs[QWEN3], windows)
    expected = (logits[:, family.template.yes] - logits[:, family.template.no]).numpy()
    assert abs(got[0] - expected.max()) <= TOL
    capped = family.prepare(
        query.query, [document], None, ScoreOptions(max_tokens_per_doc=window, max_chunks_per_doc=2)
    )
    assert capped.n_units == 2 and capped.truncated.tolist() == [True]


def test_prefix_cache_plans_evicts_and_bounds_memory():
    rows = np.array([[5, 6, 7, 8, 9, 1, 2], [5, 6, 7, 8, 9, 3, 0], [5, 6, 7, 8, 4, 4, 4]])
    assert common_prefix_of_rows(rows, np.array([7, 6, 7])) == 4
    assert common_prefix_of_rows(rows[:2], np.array([7, 6])) == 5
    assert common_prefix_of_rows(rows[:1, :3], np.array([3])) == 2  # a row keeps its last token

    def states(tokens: int):
        return [(torch.zeros(1, 1, tokens, 4), torch.zeros(1, 1, tokens, 4))]

    cache = PrefixCache(max_entries=2, max_bytes=10_000)
    row = np.arange(100, 160)
    assert cache.plan(row, 3) == 0  # too short to be worth a pass of its own
    assert cache.plan(row, 30) == 30
    cache.put(PrefixCache.key(row[:30]), states(30))
    assert cache.plan(row, 36) == 30  # a cached prefix covering most of the shared part is reused
    assert cache.plan(row, 50) == 50  # one covering too little is not
    assert cache.get(PrefixCache.key(row[:30])) is not None
    cache.put(PrefixCache.key(row[:31]), states(31))
    cache.put(PrefixCache.key(row[:32]), states(32))
    assert cache.get(PrefixCache.key(row[:30])) is None  # least recently used, past max_entries
    cache.put(PrefixCache.key(row[:40]), states(400))  # 12,800 bytes alone: not kept
    assert cache.get(PrefixCache.key(row[:40])) is None
