"""JSONL judgments, one object a line, in any of three shapes (mixable):

* `{"query", "documents": [text | {"id", "text"}], "labels": [grade, ...]}` (+ `"scores"`): a query,
  its candidates in first-stage order, and their grades;
* `{"query", "positive" | "positives", "negative" | "negatives"}`: training pairs (finetune's format);
* `{"query", "document", "label"}`: one judged pair a line, grouped by query.

A line may name its query with `"id"` / `"qid"` / `"query_id"` (else queries are told apart by
text). The first stage is the listed order, named `input`; for the last two shapes that order
is the file's, so its metrics mean little.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rerankd.evaluation.dataset import EvalDataset, Qrels, Run, read_jsonl, with_run
from rerankd.evaluation.errors import BadInput


class _Builder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.queries: dict[str, str] = {}
        self.by_text: dict[str, str] = {}
        self.qrels: Qrels = {}
        self.run: Run = {}
        self.texts: dict[str, str] = {}

    def query_id(self, number: int, row: dict[str, Any]) -> str:
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadInput(f"{self.path}:{number}: 'query' must be a non-empty text")
        explicit = next((row[key] for key in ("id", "qid", "query_id") if key in row), None)
        qid = str(explicit) if explicit is not None else self.by_text.setdefault(query, str(len(self.by_text) + 1))
        if self.queries.setdefault(qid, query) != query:
            raise BadInput(f"{self.path}:{number}: query id {qid} was given another text on an earlier line")
        return qid

    def add(self, number: int, qid: str, text: Any, grade: Any, docid: Any = None, score: float | None = None) -> None:
        if isinstance(text, dict):
            docid, text = text.get("id", docid), text.get("text")
        if not isinstance(text, str):
            raise BadInput(f"{self.path}:{number}: a document must be a text or {{'id', 'text'}}")
        if isinstance(grade, bool) or not isinstance(grade, int | float):
            raise BadInput(f"{self.path}:{number}: label {grade!r} is not a number")
        hits = self.run.setdefault(qid, [])
        docid = str(docid) if docid is not None else f"{qid}-{len(hits) + 1}"
        if docid in self.texts and self.texts[docid] != text:
            raise BadInput(f"{self.path}:{number}: document id {docid} was given another text before")
        self.texts[docid] = text
        self.qrels.setdefault(qid, {})[docid] = int(grade)
        # No score: the listed order, kept exactly (trec_eval would reorder equal scores by id).
        hits.append((docid, float(score) if score is not None else -float(len(hits) + 1)))

    def row(self, number: int, row: dict[str, Any]) -> None:
        qid = self.query_id(number, row)
        if "documents" in row:
            documents, labels = row["documents"], row.get("labels")
            if not isinstance(documents, list) or not isinstance(labels, list):
                raise BadInput(f"{self.path}:{number}: 'documents' and 'labels' must be lists")
            if len(labels) != len(documents):
                raise BadInput(f"{self.path}:{number}: {len(documents)} documents but {len(labels)} labels")
            ids = row.get("doc_ids") or [None] * len(documents)
            scores = row.get("scores") or [None] * len(documents)
            if len(ids) != len(documents) or len(scores) != len(documents):
                raise BadInput(f"{self.path}:{number}: 'doc_ids' / 'scores' must have one entry per document")
            for document, label, docid, score in zip(documents, labels, ids, scores, strict=True):
                self.add(number, qid, document, label, docid, score)
        elif "document" in row:
            self.add(number, qid, row["document"], row.get("label"))
        elif any(key in row for key in ("positive", "positives", "negative", "negatives")):
            for key, grade in (("positive", 1), ("positives", 1), ("negative", 0), ("negatives", 0)):
                value = row.get(key)
                for text in value if isinstance(value, list) else [] if value is None else [value]:
                    self.add(number, qid, text, grade)
        else:
            raise BadInput(
                f"{self.path}:{number}: expected 'documents' + 'labels', 'positive(s)' / 'negative(s)', "
                f"or 'document' + 'label'"
            )


def load(path: Path, *, run: Path | None = None, split: str | None = None) -> EvalDataset:
    if split is not None:
        raise BadInput("--split applies to BEIR folders")
    builder = _Builder(path)
    for number, row in read_jsonl(path):
        builder.row(number, row)
    if not builder.queries:
        raise BadInput(f"{path} holds no query")
    dataset = EvalDataset(
        source=path,
        first_stage="input",
        queries=builder.queries,
        qrels=builder.qrels,
        texts=builder.texts,
        run=builder.run,
    )
    return with_run(dataset, run)
