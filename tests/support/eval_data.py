"""Small evaluation inputs written by the tests, and a way to run `rerankd` in-process and read its answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerankd.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """`rerankd ARGS...` in this process: (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_trec_folder(
    folder: Path,
    *,
    queries: dict[str, str] | None = None,
    hits: dict[str, list[str]] | None = None,
    qrels: list[str] | None = None,
) -> Path:
    """A TREC folder like trec-dl-2019's: two queries, three passages each, graded judgments."""
    queries = queries or {"1": "what do cats eat", "2": "how tall is mount everest"}
    hits = hits or {"1": ["d1", "d2", "d3"], "2": ["d4", "d5", "d6"]}
    texts = {
        "d1": "Mount Everest is 8,849 metres tall.",
        "d2": "Cats eat meat: they are obligate carnivores.",
        "d3": "Dogs like walks.",
        "d4": "Cats sleep a lot.",
        "d5": "Everest's summit stands 8,849 m above sea level.",
        "d6": "Paris is in France.",
    }
    rows = [
        {
            "query": queries[qid],
            "hits": [
                {
                    "qid": int(qid),
                    "docid": docid,
                    "content": texts.get(docid, docid),
                    "rank": rank,
                    "score": 10.0 - rank,
                }
                for rank, docid in enumerate(docids, start=1)
            ],
        }
        for qid, docids in hits.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "retrieve_results_toy.json").write_text(json.dumps(rows))
    lines = qrels if qrels is not None else ["1 0 d2 2", "1 0 d1 0", "2 0 d5 1", "2 0 d4 0"]
    (folder / "qrels.toy.txt").write_text("\n".join(lines) + "\n")
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
