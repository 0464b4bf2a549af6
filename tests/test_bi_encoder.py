"""The offline default: all-MiniLM-L6-v2 scores = cosine of sentence-transformers embeddings."""

from __future__ import annotations

import numpy as np
from support.ranking import assert_same_ranking
from support.reference import bi_encoder_scores

from rerankd import Client


def test_bi_encoder_scores_equal_sentence_transformers_cosine(server, minilm_bi_encoder_dir, trec):
    query = trec[2]
    documents = query.documents[:50]
    reference = bi_encoder_scores(minilm_bi_encoder_dir, query.query, documents)
    with Client(server.url) as client:
        result = client.score("sentence-transformers/all-MiniLM-L6-v2", query.query, documents)
    got = np.empty(len(documents))
    for entry in result.scores:
        got[entry.index] = entry.score
    assert np.abs(got - reference).max() <= 1e-5
    # sentence-transformers batches by length, rerankd otherwise: scores within float noise may swap
    assert_same_ranking([e.index for e in result.scores], reference, 1e-5)


def test_relevant_text_outranks_unrelated_text(server):
    """A real embedding model, not random weights: the paraphrase wins clearly."""
    with Client(server.url) as client:
        result = client.score(
            "sentence-transformers/all-MiniLM-L6-v2",
            "How long does a flea live?",
            ["The stock market fell sharply on Monday.", "Fleas usually live for two to three months."],
        )
    assert result.scores[0].index == 1
    assert result.scores[0].score - result.scores[1].score > 0.3
