"""Real retrieval data from `../shared/data` (absent in a user's fresh clone: tests skip then)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SHARED_DATA = Path(os.environ.get("RERANKD_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
TREC_DL_2019 = SHARED_DATA / "trec-dl-2019" / "retrieve_results_dl19.json"
XLMR_TOKENIZER = SHARED_DATA / "tokenizers" / "xlm-roberta" / "tokenizer.json"
GEMMA_TOKENIZER = SHARED_DATA / "tokenizers" / "gemma"


@dataclass(frozen=True)
class RerankQuery:
    """One query with its BM25 candidates (text and passage ids)."""

    query: str
    documents: list[str]
    doc_ids: list[str]
    qid: str


@cache
def trec_dl_2019() -> list[RerankQuery]:
    """The 43 judged TREC DL 2019 queries, each with its 100 BM25 passages."""
    rows = json.loads(TREC_DL_2019.read_text())
    return [
        RerankQuery(
            query=row["query"],
            documents=[hit["content"] for hit in row["hits"]],
            doc_ids=[str(hit["docid"]) for hit in row["hits"]],
            qid=str(row["hits"][0]["qid"]) if row["hits"] else "",
        )
        for row in rows
    ]
