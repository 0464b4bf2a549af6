"""One evaluation: rerank the first stage with every system, measure each, compare them pairwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from itertools import combinations

from rerankd.evaluation.dataset import EvalDataset, Run
from rerankd.evaluation.metrics import Metric, mean, per_query
from rerankd.evaluation.significance import Comparison, compare
from rerankd.evaluation.systems import Scorer, SystemSpec, check_labels, reranked


@dataclass
class EvalReport:
    """Everything `report`, `markdown` and `plot` write; systems in order, the first stage first."""

    dataset: str
    first_stage: str
    qids: list[str]
    query_texts: dict[str, str]
    metrics: list[str]
    systems: dict[str, dict[str, float]]  # system -> metric -> mean over `qids`
    per_query: dict[str, dict[str, dict[str, float]]]  # system -> query id -> metric -> value
    comparisons: list[Comparison]
    settings: dict
    notes: list[str] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)  # system -> its ranking per query

    @property
    def primary(self) -> str:
        return self.metrics[0]


def rerank(dataset: EvalDataset, scorer: Scorer, system: SystemSpec, top_k: int | None, progress: bool) -> Run:
    """`system`'s ranking of every evaluated query: its top `top_k` first-stage candidates reranked."""
    from tqdm.auto import tqdm

    assert dataset.run is not None
    run: Run = {}
    qids = [qid for qid in dataset.judged() if dataset.run.get(qid)]
    for qid in tqdm(qids, desc=system.label, unit="query", file=sys.stderr, disable=not progress, leave=True):
        hits = dataset.run[qid]
        head, tail = (hits[:top_k], hits[top_k:]) if top_k else (hits, [])
        scores = scorer.score(system, dataset.queries[qid], [dataset.texts[docid] for docid, _ in head])
        run[qid] = reranked(head, scores, tail)
    return run


def evaluate(
    dataset: EvalDataset,
    systems: list[SystemSpec],
    scorer: Scorer | None,
    metrics: list[Metric],
    *,
    top_k: int | None = None,
    seed: int = 0,
    progress: bool = True,
    settings: dict | None = None,
) -> EvalReport:
    """Rerank, measure and compare; `scorer` may be None when `systems` is empty (the first stage only)."""
    assert dataset.run is not None
    check_labels(dataset.first_stage, systems)
    qids = dataset.judged()
    runs: dict[str, Run] = {dataset.first_stage: {qid: dataset.run.get(qid, []) for qid in qids}}
    if systems:
        assert scorer is not None
        try:
            scorer.open(systems)
            for system in systems:
                runs[system.label] = rerank(dataset, scorer, system, top_k, progress)
        finally:
            scorer.close()
    values = {name: per_query(metrics, dataset.qrels, run, qids) for name, run in runs.items()}
    names = [metric.name for metric in metrics]
    comparisons = [
        compare(a, b, metric, [values[a][q][metric] for q in qids], [values[b][q][metric] for q in qids], seed)
        for a, b in combinations(runs, 2)
        for metric in names
    ]
    return EvalReport(
        dataset=str(dataset.source),
        first_stage=dataset.first_stage,
        qids=qids,
        query_texts={qid: dataset.queries[qid] for qid in qids},
        metrics=names,
        systems={name: {metric: mean(values[name], metric) for metric in names} for name in runs},
        per_query=values,
        comparisons=comparisons,
        settings=dict(settings or {}) | {"top_k": top_k, "queries": len(qids), "seed": seed},
        notes=list(dataset.notes),
        runs=runs,
    )
