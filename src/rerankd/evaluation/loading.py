"""From a path to a checked dataset: pick the reader, check, select queries, find the first stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rerankd.evaluation import beir, jsonl, trec
from rerankd.evaluation.bm25 import with_bm25
from rerankd.evaluation.dataset import EvalDataset, check_judgments, check_run, read_query_ids
from rerankd.evaluation.errors import BadInput


def load_dataset(path: Path, *, run: Path | None = None, split: str | None = None) -> EvalDataset:
    """The reader for `path`: a JSONL file, a BEIR folder (`corpus.jsonl`) or a TREC folder."""
    if not path.exists():
        raise BadInput(f"dataset {path} does not exist")
    readers: list[tuple[Callable[[Path], bool], Callable[..., EvalDataset]]] = [
        (lambda p: p.is_file(), jsonl.load),
        (beir.is_beir, beir.load),
        (trec.is_trec, trec.load),
    ]
    for matches, load in readers:
        if matches(path):
            return load(path, run=run, split=split)
    raise BadInput(
        f"{path} is neither a JSONL file, a BEIR folder (corpus.jsonl, queries*.jsonl, qrels/*.tsv) nor a TREC "
        f"folder (retrieve_results_*.json and qrels.*.txt)"
    )


def prepare(
    path: Path,
    *,
    run: Path | None = None,
    split: str | None = None,
    queries_file: Path | None = None,
    depth: int | None = None,
) -> EvalDataset:
    """Load, check the judgments, keep the chosen queries, find the first stage (BM25 if none), check it."""
    dataset = check_judgments(load_dataset(path, run=run, split=split))
    if queries_file is not None:
        dataset = dataset.select(read_query_ids(queries_file, dataset))
    if dataset.run is None:
        dataset = with_bm25(dataset, depth or 100)
    return check_run(dataset.truncated(depth))
