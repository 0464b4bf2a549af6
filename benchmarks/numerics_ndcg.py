"""Every numerics `--precision fast` may choose, on all of TREC DL 2019: agreement, nDCG@10, speed.

For a model (default: the real all-MiniLM-L6-v2 bi-encoder from the `[demo]` package; `--model
cross-encoder` for the benchmark's MiniLM cross-encoder), build each candidate the way the
server's calibration does (same graph, same int8 calibration on the built-in query set), rerank
the 43 judged queries' BM25 top-100 with it, and print per numerics: per-query Kendall tau
(mean, min) and top-10 overlap against torch fp32, the largest score change, nDCG@10 (trec_eval
through ir-measures, against the official qrels) and pairs/s on this machine.

    python benchmarks/numerics_ndcg.py [--model bi-encoder|cross-encoder|DIR] [--data ../shared/data/trec-dl-2019]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import torch

from rerankd.bench.checkpoints import cached_minilm_cross_encoder, require_minilm_dir
from rerankd.core.cpu import detect
from rerankd.models import build_family, execution
from rerankd.models.calibration import CalibrationSet, agreement
from rerankd.models.catalog import detect_spec
from rerankd.models.runtime import configure_threads, resolve_placement


def load_trec(folder: Path) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]], dict]:
    """(query, passages) per judged query, their (qid, docids), and the qrels."""
    rows = json.loads((folder / "retrieve_results_dl19.json").read_text())
    queries = [(row["query"], [hit["content"] for hit in row["hits"]]) for row in rows]
    ids = [(str(row["hits"][0]["qid"]), [str(hit["docid"]) for hit in row["hits"]]) for row in rows]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels.dl19-passage.txt").read_text().splitlines():
        qid, _, docid, grade = line.split()
        qrels.setdefault(qid, {})[docid] = int(grade)
    return queries, ids, qrels


def ndcg10(scores: list, ids: list[tuple[str, list[str]]], qrels: dict) -> float:
    import ir_measures
    from ir_measures import nDCG

    run = {
        qid: {docid: float(score) for docid, score in zip(docids, row, strict=True)}
        for (qid, docids), row in zip(ids, scores, strict=True)
    }
    return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10])


def family_for(model: str):
    if model == "bi-encoder":
        directory = require_minilm_dir()
    elif model == "cross-encoder":
        directory = cached_minilm_cross_encoder()
    else:
        directory = Path(model)
    spec = detect_spec("model", str(directory), directory)
    placement = resolve_placement("auto", torch.device("cpu"))
    return build_family(spec, placement, directory, execution.ExecutionOptions(backend="torch")), directory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bi-encoder")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/trec-dl-2019")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level="WARNING")
    configure_threads(args.threads)
    queries, ids, qrels = load_trec(args.data)
    family, directory = family_for(args.model)
    print(f"CPU: {detect().describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    print(f"model: {args.model} ({directory}), first token only in last layer: {family.first_token_only}", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        options = execution.ExecutionOptions(precision="fast", cache_dir=Path(cache))
        compiler = execution.Compiler(family, directory, options)
        everything = CalibrationSet(family, queries)
        reference, seconds = everything.run(execution.eager(family))
        rows = [("torch fp32", reference, everything.pairs / seconds)]
        for candidate in compiler.fast_candidates()[1:]:
            print(f"... {candidate.name}", file=sys.stderr, flush=True)
            runner = candidate.build()
            scores, seconds = everything.run(runner)
            candidate.undo()
            rows.append((candidate.name, scores, everything.pairs / seconds))
    base = ndcg10(reference, ids, qrels)
    print("\n| numerics | Kendall tau mean / min | top-10 overlap | max abs change | nDCG@10 (change) | pairs/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, scores, speed in rows:
        found = agreement(reference, scores)
        value = ndcg10(scores, ids, qrels)
        print(
            f"| {name} | {found.tau_mean:.4f} / {found.tau_min:.4f} | {found.top10:.3f} | {found.max_delta:.2e} "
            f"| {value:.4f} ({value - base:+.4f}) | {speed:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
