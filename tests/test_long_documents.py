"""Chunked long documents: score = max over overlapping windows, computed independently here."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer

from rerankd import Client
from rerankd.models.chunking import window_spans


def independent_windows(length: int, window: int, max_chunks: int | None) -> list[tuple[int, int]]:
    """Windows of `window` tokens overlapping by min(64, window // 4), as the README specifies."""
    overlap = min(64, window // 4)
    starts = list(range(0, max(length - overlap, 1), window - overlap)) if length > window else [0]
    spans = [(s, min(s + window, length)) for s in starts]
    spans = [span for i, span in enumerate(spans) if i == 0 or spans[i - 1][1] < length]
    return spans[:max_chunks] if max_chunks else spans


@pytest.mark.parametrize("length", [1, 50, 99, 100, 101, 250, 1000])
@pytest.mark.parametrize(("window", "max_chunks"), [(100, None), (100, 3), (7, None), (1, 4)])
def test_window_spans_cover_documents(length, window, max_chunks):
    spans, cut = window_spans(length, window, max_chunks)
    assert spans == independent_windows(length, window, max_chunks)
    assert cut == (spans[-1][1] < length)
    assert all(0 < end - start <= window for start, end in spans)


def bert_window_scores(model_dir, query_ids: list[int], windows: list[list[int]]) -> np.ndarray:
    """sigmoid(logit) of `[CLS] query [SEP] window [SEP]`, straight from transformers."""
    import torch
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(model_dir)).eval()
    scores = []
    with torch.no_grad():
        for window in windows:
            ids = [101, *query_ids, 102, *window, 102]
            types = [0] * (len(query_ids) + 2) + [1] * (len(window) + 1)
            logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits
            scores.append(torch.sigmoid(logits[0, 0]).item())
    return np.array(scores)


def test_chunked_scores_are_max_over_windows(server, minilm_cross_encoder_dir, trec):
    tokenizer = Tokenizer.from_file(str(minilm_cross_encoder_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    query = trec[3].query
    window = 64
    short = next(d for d in trec[3].documents if len(tokenizer.encode(d, add_special_tokens=False).ids) < window)
    documents = [" ".join(trec[3].documents[:6]), short]  # several hundred tokens; one window
    query_ids = tokenizer.encode(query, add_special_tokens=False).ids
    expected = []
    for document in documents:
        ids = tokenizer.encode(document, add_special_tokens=False).ids
        spans = independent_windows(len(ids), window, None)
        expected.append(bert_window_scores(minilm_cross_encoder_dir, query_ids, [ids[s:e] for s, e in spans]).max())
    assert len(independent_windows(len(tokenizer.encode(documents[0]).ids), window, None)) >= 5
    with Client(server.url) as client:
        result = client.score("minilm", query, documents, options={"max_tokens_per_doc": window})
        plain = client.score("minilm", query, documents)
        capped = client.score(
            "minilm", query, documents, options={"max_tokens_per_doc": window, "max_chunks_per_doc": 2}
        )
        cohere = client.rerank("minilm", query, documents, max_tokens_per_doc=window)
    got = {e.index: e.score for e in result.scores}
    assert abs(got[0] - expected[0]) <= 1e-5
    assert abs(got[1] - expected[1]) <= 1e-5
    assert abs(got[1] - {e.index: e.score for e in plain.scores}[1]) <= 1e-5  # one window = plain scoring
    assert {h.index: h.relevance_score for h in cohere.results} == pytest.approx(got, abs=1e-6)
    assert result.usage["input_tokens"] > plain.usage["input_tokens"]  # query repeated per window, overlap
    assert not any(e.truncated for e in result.scores)
    assert {e.index: e.truncated for e in capped.scores} == {0: True, 1: False}
