"""Metrics by ir-measures, whose pytrec_eval provider runs trec_eval's own code.

Names in reports are trec_eval's (`ndcg_cut_10`, `map`, `recall_100`, `P_10`, `recip_rank`),
plus `recip_rank_10` for MRR@10 (trec_eval's `recip_rank` on the ranking cut at 10, what
`trec_eval -M 10` gives). ir-measures' own spelling (`nDCG@10`, `RR@10`, `AP`, `R@100`) is
accepted too. nDCG uses the graded judgments with trec_eval's linear gain; binary measures
count a document as relevant from `relevance_level` up (trec_eval's `-l`).

A query a system returns nothing for scores 0 (trec_eval `-c`): every system is averaged over
the same queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rerankd.evaluation.dataset import Qrels, Run
from rerankd.evaluation.errors import BadInput

DEFAULT_METRICS = ("ndcg_cut_10", "recip_rank_10", "map", "recall_10", "recall_100")

# trec_eval name (with its cutoff as _K) -> ir-measures measure name.
_TREC_NAMES = {
    "ndcg_cut": "nDCG",
    "ndcg": "nDCG",
    "recip_rank": "RR",
    "map_cut": "AP",
    "map": "AP",
    "recall": "R",
    "P": "P",
    "success": "Success",
    "Rprec": "Rprec",
}
_TREC_PATTERN = re.compile(r"^(?P<name>[A-Za-z_]+?)(?:_(?P<cutoff>\d+))?$")
_BINARY = {"RR", "AP", "R", "P", "Success", "Rprec"}


@dataclass(frozen=True)
class Metric:
    """One metric: its report name and the ir-measures measure that computes it."""

    name: str
    measure: Any  # ir_measures.Measure


def _trec_name(family: str, cutoff: int | None) -> str:
    names = {"nDCG": "ndcg_cut" if cutoff else "ndcg", "RR": "recip_rank", "AP": "map_cut" if cutoff else "map"}
    base = names.get(family) or {"R": "recall", "P": "P", "Success": "success", "Rprec": "Rprec"}[family]
    return f"{base}_{cutoff}" if cutoff else base


def parse_metric(text: str, relevance_level: int = 1) -> Metric:
    """A trec_eval name (`ndcg_cut_10`) or an ir-measures one (`nDCG@10`)."""
    import ir_measures

    text = text.strip()
    family: str | None = None
    cutoff: int | None = None
    match = _TREC_PATTERN.match(text)
    if match and match["name"] in _TREC_NAMES:
        family, cutoff = _TREC_NAMES[match["name"]], int(match["cutoff"]) if match["cutoff"] else None
        if match["name"] in ("ndcg_cut", "map_cut", "recall", "P", "success") and cutoff is None:
            raise BadInput(f"metric {text!r} needs a cutoff, e.g. {text}_10")
    else:
        try:
            parsed = ir_measures.parse_measure(text)
        except (ValueError, NameError, SyntaxError, TypeError, AttributeError):
            parsed = None
        if parsed is None or parsed.NAME not in (*_BINARY, "nDCG"):
            known = ", ".join(DEFAULT_METRICS)
            raise BadInput(f"unknown metric {text!r} (trec_eval names such as {known}, or ir-measures' nDCG@10, RR@10)")
        family, cutoff = parsed.NAME, parsed.params.get("cutoff")
    measure = getattr(ir_measures, family)
    if family in _BINARY:
        measure = measure(rel=relevance_level)
    if cutoff is not None:
        measure = measure @ cutoff
    return Metric(_trec_name(family, cutoff), measure)


def parse_metrics(text: str | None, relevance_level: int = 1) -> list[Metric]:
    names = [name for name in (text.split(",") if text else DEFAULT_METRICS) if name.strip()]
    metrics = [parse_metric(name, relevance_level) for name in names]
    if not metrics:
        raise BadInput("--metrics names no metric")
    return list({metric.name: metric for metric in metrics}.values())


def trec_scores(ranking: list[tuple[str, float]]) -> dict[str, float]:
    """What trec_eval reads: document id -> score (it sorts by score, ties by document id)."""
    return dict(ranking)


def per_query(metrics: list[Metric], qrels: Qrels, run: Run, qids: list[str]) -> dict[str, dict[str, float]]:
    """query id -> metric name -> value, for every query in `qids` (0 where the run has nothing)."""
    import ir_measures

    by_measure = {metric.measure: metric.name for metric in metrics}
    values = {qid: dict.fromkeys(by_measure.values(), 0.0) for qid in qids}
    judged = {qid: qrels[qid] for qid in qids}
    ranked = {qid: trec_scores(run[qid]) for qid in qids if run.get(qid)}
    if ranked:
        for found in ir_measures.iter_calc(list(by_measure), judged, ranked):
            values[found.query_id][by_measure[found.measure]] = float(found.value)
    return values


def mean(values: dict[str, dict[str, float]], name: str) -> float:
    return sum(row[name] for row in values.values()) / len(values) if values else 0.0
