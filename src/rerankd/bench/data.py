"""Benchmark requests: a query and its candidate passages, from TREC DL 2019 or any JSONL file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchQuery:
    query: str
    documents: list[str]


def default_data_path() -> Path | None:
    """`../shared/data/trec-dl-2019` next to the project (or the working directory), if present."""
    candidates = []
    if os.environ.get("RERANKD_BENCH_DATA"):
        candidates.append(Path(os.environ["RERANKD_BENCH_DATA"]))
    if os.environ.get("RERANKD_SHARED_DATA"):
        candidates.append(Path(os.environ["RERANKD_SHARED_DATA"]) / "trec-dl-2019" / "retrieve_results_dl19.json")
    relative = Path("shared/data/trec-dl-2019/retrieve_results_dl19.json")
    candidates.append(Path.cwd().parent / relative)
    candidates.append(Path(__file__).resolve().parents[4] / relative)
    return next((path for path in candidates if path.exists()), None)


def load_queries(path: Path, documents_per_query: int = 100) -> list[BenchQuery]:
    """TREC-style JSON (`[{"query", "hits": [{"content"}]}]`) or JSONL of `{"query", "documents"}`."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        queries = [BenchQuery(row["query"], list(row["documents"])) for row in rows]
    else:
        rows = json.loads(text)
        queries = [BenchQuery(row["query"], [hit["content"] for hit in row["hits"]]) for row in rows]
    queries = [BenchQuery(q.query, q.documents[:documents_per_query]) for q in queries if q.documents]
    if not queries:
        raise ValueError(f"{path} holds no queries with documents")
    return queries
