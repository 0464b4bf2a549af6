"""jina-reranker-v2 served natively (no remote code) = the published modeling code's scores.

The reference below is written from the math of jina's `modeling_xlm_roberta.py` (flash
XLM-R: fused Wqkv, post-norm blocks, exact GELU, `<s>` -> dense -> tanh -> out_proj,
sigmoid), reading the checkpoint's tensors by their published names; its inputs follow the
card's `compute_score` (tokenizer pairs, longest_first at 1024) and `rerank()` (query capped
at 512 tokens, windows of the remaining length overlapping by min(80, window // 4), the last
one aligned to the document's end, max over windows). Nothing here calls rerankd's model code.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support.data import XLMR_TOKENIZER
from support.jina_checkpoint import build_jina_reranker_v2
from support.ranking import assert_same_ranking

from rerankd import Client

MODEL = "jinaai/jina-reranker-v2-base-multilingual"


@pytest.fixture(scope="module")
def jina_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not XLMR_TOKENIZER.exists():
        pytest.skip(f"{XLMR_TOKENIZER} is absent (a fresh clone has no ../shared/data)")
    return build_jina_reranker_v2(tmp_path_factory.mktemp("jina-reranker-v2"))


@pytest.fixture(scope="module")
def jina_server(start_server, jina_dir):
    return start_server("--model", f"{MODEL}={jina_dir}")


@cache
def _tokenizer(path: str):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=path, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=1024,
    )  # fmt: skip


class JinaReference:
    """jina's XLMRobertaForSequenceClassification forward, one unpadded sequence at a time."""

    def __init__(self, model_dir: Path) -> None:
        self.config = json.loads((model_dir / "config.json").read_text())
        self.w = {name: t.float() for name, t in load_file(str(model_dir / "model.safetensors")).items()}
        self.tokenizer = _tokenizer(str(model_dir / "tokenizer.json"))

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        eps = self.config["layer_norm_eps"]
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def logit(self, ids: list[int]) -> float:
        w, heads = self.w, self.config["num_attention_heads"]
        pad = self.config["pad_token_id"]
        tokens = torch.tensor(ids)
        # create_position_ids_from_input_ids: cumulative count of non-padding tokens + padding_idx
        positions = torch.cumsum((tokens != pad).long(), 0) * (tokens != pad).long() + pad
        x = (
            w["roberta.embeddings.word_embeddings.weight"][tokens]
            + w["roberta.embeddings.position_embeddings.weight"][positions]
            + w["roberta.embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "roberta.emb_ln")
        seq, hidden = x.shape
        head_dim = hidden // heads
        for i in range(self.config["num_hidden_layers"]):
            p = f"roberta.encoder.layers.{i}"
            qkv = self._linear(x, f"{p}.mixer.Wqkv").view(seq, 3, heads, head_dim)  # "(three h d)"
            q, k, v = qkv.unbind(1)
            scores = torch.einsum("thd,shd->hts", q, k / math.sqrt(head_dim))
            context = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(seq, hidden)
            x = self._ln(self._linear(context, f"{p}.mixer.out_proj") + x, f"{p}.norm1")
            inner = torch.nn.functional.gelu(self._linear(x, f"{p}.mlp.fc1"))  # hidden_act "gelu": erf
            x = self._ln(self._linear(inner, f"{p}.mlp.fc2") + x, f"{p}.norm2")
        pooled = torch.tanh(self._linear(x[0], "classifier.dense"))
        return float(self._linear(pooled, "classifier.out_proj")[0])

    def compute_score(self, query: str, documents: list[str]) -> np.ndarray:
        """The card's `compute_score(pairs, max_length=1024)`: sigmoid of each pair's logit."""
        encoded = self.tokenizer([[query, d] for d in documents], truncation=True, max_length=1024)
        return np.array([1 / (1 + math.exp(-self.logit(ids))) for ids in encoded["input_ids"]])

    def rerank_windows(self, query: str, document: str, max_length: int = 1024, window: int | None = None):
        """`reranker_tokenize_preproc` for one document: the token sequences of its windows."""
        tok = self.tokenizer
        query_ids = tok(query, truncation=True, max_length=512)["input_ids"]
        passage = tok(document, add_special_tokens=False)["input_ids"]
        size = max_length - len(query_ids) - 2 if window is None else window
        overlap = min(80, size // 4)
        if len(passage) <= size:
            chunks = [passage]
        else:
            chunks, start = [], 0
            while start < len(passage):
                end = start + size
                chunks.append(passage[-size:] if end >= len(passage) else passage[start:end])
                start = end - overlap if end < len(passage) else end
        return [[*query_ids, tok.sep_token_id, *chunk, tok.sep_token_id] for chunk in chunks]

    def rerank_score(self, query: str, document: str, window: int | None = None) -> tuple[float, int]:
        """Max over windows of sigmoid(logit); also the number of windows."""
        windows = self.rerank_windows(query, document, window=window)
        return max(1 / (1 + math.exp(-self.logit(ids))) for ids in windows), len(windows)


@pytest.fixture(scope="module")
def reference(jina_dir) -> JinaReference:
    return JinaReference(jina_dir)


def by_index(result) -> np.ndarray:
    got = np.empty(len(result.scores))
    for entry in result.scores:
        got[entry.index] = entry.score
    return got


def test_checkpoint_needs_remote_code_in_transformers(jina_dir):
    """The layout is the published one: transformers' Auto classes refuse it without remote code."""
    from transformers import AutoConfig

    with pytest.raises((ValueError, OSError)):
        AutoConfig.from_pretrained(str(jina_dir), trust_remote_code=False)


def test_scores_equal_reference_forward_on_trec(jina_server, reference, trec):
    for query in trec[:2]:
        documents = list(dict.fromkeys(query.documents))[:50]  # TREC repeats some passages: no exact ties
        expected = reference.compute_score(query.query, documents)
        assert expected.max() - expected.min() > 0.2  # scores spread: the ranking check is meaningful
        with Client(jina_server.url) as client:
            result = client.score(MODEL, query.query, documents)
            cohere = client.rerank(MODEL, query.query, documents)
        got = by_index(result)
        print(f"\n{MODEL}: {len(documents)} documents, max |Δ| vs reference {np.abs(got - expected).max():.1e}")
        assert np.abs(got - expected).max() <= 1e-4
        assert_same_ranking([e.index for e in result.scores], expected, 1e-4)
        assert_same_ranking([r.index for r in cohere.results], expected, 1e-4)
        assert max(abs(r.relevance_score - expected[r.index]) for r in cohere.results) <= 1e-4
        assert not any(e.truncated for e in result.scores)


def test_long_pair_truncates_longest_first_at_1024(jina_server, reference, trec):
    query = trec[4].query
    long_doc = " ".join(trec[4].documents[:20])  # well over 1024 tokens
    assert len(reference.tokenizer(long_doc)["input_ids"]) > 1100
    expected = reference.compute_score(query, [long_doc, trec[4].documents[0]])
    with Client(jina_server.url) as client:
        result = client.score(MODEL, query, [long_doc, trec[4].documents[0]])
    assert np.abs(by_index(result) - expected).max() <= 1e-4
    assert {e.index: e.truncated for e in result.scores} == {0: True, 1: False}


@pytest.mark.parametrize("window", [None, 64])
def test_chunked_scores_are_max_over_rerank_windows(jina_server, reference, trec, window):
    """`options.max_tokens_per_doc` / `max_chunks_per_doc` follow the card's `rerank()`."""
    query = trec[5].query
    long_doc = " ".join(trec[5].documents[:25])
    short_doc = next(d for d in trec[5].documents if len(reference.tokenizer(d)["input_ids"]) < 60)
    expected_long, n_windows = reference.rerank_score(query, long_doc, window)
    expected_short, _ = reference.rerank_score(query, short_doc, window)
    assert n_windows >= 3
    options = {"max_chunks_per_doc": 1000} if window is None else {"max_tokens_per_doc": window}
    with Client(jina_server.url) as client:
        result = client.score(MODEL, query, [long_doc, short_doc], options=options)
        capped = client.score(MODEL, query, [long_doc, short_doc], options={**options, "max_chunks_per_doc": 2})
    got = by_index(result)
    assert abs(got[0] - expected_long) <= 1e-4
    assert abs(got[1] - expected_short) <= 1e-4
    windows = [reference.rerank_windows(query, doc, window=window) for doc in (long_doc, short_doc)]
    assert result.usage["input_tokens"] == sum(len(ids) for doc_windows in windows for ids in doc_windows)
    assert not any(e.truncated for e in result.scores)
    first_two = reference.rerank_windows(query, long_doc, window=window)[:2]
    expected_capped = max(1 / (1 + math.exp(-reference.logit(ids))) for ids in first_two)
    assert abs(by_index(capped)[0] - expected_capped) <= 1e-4
    assert {e.index: e.truncated for e in capped.scores} == {0: True, 1: False}


def test_chunked_query_is_capped_at_512_tokens(jina_server, reference, trec):
    query = " ".join(trec[6].documents[:8])  # a query far over 512 tokens
    assert len(reference.tokenizer(query)["input_ids"]) > 600
    document = " ".join(trec[6].documents[8:20])
    expected, n_windows = reference.rerank_score(query, document)
    assert n_windows >= 2
    with Client(jina_server.url) as client:
        result = client.score(MODEL, query, [document], options={"max_chunks_per_doc": 100})
    assert abs(result.scores[0].score - expected) <= 1e-4
    assert result.scores[0].truncated  # the query was cut


def test_raw_scores_are_logits(jina_server, reference, trec):
    query, documents = trec[0].query, trec[0].documents[:5]
    encoded = reference.tokenizer([[query, d] for d in documents], truncation=True, max_length=1024)
    logits = np.array([reference.logit(ids) for ids in encoded["input_ids"]])
    with Client(jina_server.url) as client:
        result = client.score(MODEL, query, documents, options={"raw_scores": True})
    assert np.abs(by_index(result) - logits).max() <= 1e-4


def test_instruction_is_rejected(jina_server):
    response = httpx.post(
        f"{jina_server.url}/v1/score/{MODEL}",
        json={"query": {"text": "q"}, "items": [{"text": "d"}], "instruction": "judge relevance"},
        timeout=60,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INSTRUCTION_NOT_SUPPORTED"
    assert response.json()["error"]["param"] == "instruction"


def test_models_route_lists_the_family(jina_server):
    models = httpx.get(f"{jina_server.url}/v1/models", timeout=30).json()
    text = json.dumps(models)
    assert MODEL in text
    assert "jina-reranker" in text
