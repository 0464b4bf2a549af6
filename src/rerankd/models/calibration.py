"""Calibration: real query-document traffic run through a family, and how far two runs' rankings agree.

`--precision fast` and the exactness check of a compiled backend both need the same thing: the
family's own tokenization and batching applied to a few queries with candidate lists, run by
one way of computing the network and then another, and the two rankings compared. The texts
are the built-in `calibration_pairs.jsonl` (12 queries x 24 passages written for this purpose:
relevant, partly relevant, on-topic and lexical distractors), or the operator's own JSONL of
`{query, documents}` (`--calibration-data`).

Agreement is what the benchmark reports: per-query Kendall tau (mean and minimum), mean top-10
overlap and the largest score change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from rerankd.core.types import ScoreOptions
from rerankd.models.base import Family, Prepared

Runner = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def read_queries(path: Path | None = None) -> list[tuple[str, list[str]]]:
    """(query, documents) pairs from JSONL; the built-in set when `path` is None."""
    if path is None:
        text = (resources.files("rerankd.models") / "calibration_pairs.jsonl").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    queries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("query"), str) or not row.get("documents"):
            raise ValueError(f"{path or 'calibration_pairs.jsonl'} line {number}: needs a query and documents")
        queries.append((row["query"], [str(d) for d in row["documents"]]))
    if not queries:
        raise ValueError(f"{path} holds no queries")
    return queries


def texts_digest(queries: list[tuple[str, list[str]]]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(queries).encode()).hexdigest()[:16]


@dataclass
class Agreement:
    tau_mean: float
    tau_min: float
    top10: float
    max_delta: float

    def at_least(self, tau_mean: float, top10: float) -> bool:
        return self.tau_mean >= tau_mean and self.top10 >= top10

    def summary(self) -> dict:
        return {key: round(value, 6) for key, value in asdict(self).items()}


def kendall_tau(reference: np.ndarray, scores: np.ndarray) -> float:
    """scipy's tau-b; 1.0 where either side is constant (nothing to order, nothing misordered)."""
    from scipy.stats import kendalltau

    tau = kendalltau(reference, scores).statistic
    return 1.0 if np.isnan(tau) else float(tau)


def top_overlap(reference: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """|top-k(reference) & top-k(scores)| / k (k shrinks to the candidates there are)."""
    k = min(k, len(reference))
    if k == 0:
        return 1.0
    best = set(np.argsort(-np.asarray(reference), kind="stable")[:k])
    return len(best & set(np.argsort(-np.asarray(scores), kind="stable")[:k])) / k


def agreement(reference: list[np.ndarray], scores: list[np.ndarray]) -> Agreement:
    """Per-query ranking agreement of `scores` with `reference` (one array per query)."""
    taus, overlaps, deltas = [], [], []
    for ref, got in zip(reference, scores, strict=True):
        taus.append(kendall_tau(ref, got))
        overlaps.append(top_overlap(ref, got))
        deltas.append(float(np.max(np.abs(ref - got))) if len(ref) else 0.0)
    return Agreement(float(np.mean(taus)), float(np.min(taus)), float(np.mean(overlaps)), max(deltas))


class CalibrationSet:
    """Queries prepared by a family and cut into batches the way its scheduler would cut them.

    Units are sorted by length and packed under the padded-token budget, so a runner's speed
    here is its speed on served traffic.
    """

    def __init__(self, family: Family, queries: list[tuple[str, list[str]]], budget: int = 1024) -> None:
        self.family = family
        self.prepared: list[Prepared] = [
            family.prepare(query, documents, None, ScoreOptions()) for query, documents in queries
        ]
        units = [(q, u) for q, prepared in enumerate(self.prepared) for u in range(prepared.n_units)]
        units.sort(key=lambda qu: -len(self.prepared[qu[0]].ids[qu[1]]))
        self.batches: list[tuple[list[tuple[int, int]], dict[str, torch.Tensor]]] = []
        start = 0
        while start < len(units):
            longest = len(self.prepared[units[start][0]].ids[units[start][1]])
            count = max(1, min(len(units) - start, budget // max(longest, 1)))
            chosen = units[start : start + count]
            ids = [self.prepared[q].ids[u] for q, u in chosen]
            tags = None
            if self.prepared[chosen[0][0]].token_tags is not None:
                tags = [self.prepared[q].token_tags[u] for q, u in chosen]  # type: ignore[index]
            self.batches.append((chosen, family.collate(ids, tags)))
            start += count
        self.pairs = len(units)

    def inputs(self) -> list[dict[str, torch.Tensor]]:
        return [inputs for _, inputs in self.batches]

    def run(self, runner: Runner) -> tuple[list[np.ndarray], float]:
        """Scores per query and the seconds the network took, after one warm-up batch."""
        with torch.inference_mode():
            runner(self.batches[0][1])
            rows: dict[tuple[int, int], np.ndarray] = {}
            began = time.perf_counter()
            for chosen, inputs in self.batches:
                output = runner(inputs).float().numpy()
                for row, unit in zip(output, chosen, strict=True):
                    rows[unit] = row
            seconds = time.perf_counter() - began
        scores = []
        for q, prepared in enumerate(self.prepared):
            outputs = np.stack([rows[(q, u)] for u in range(prepared.n_units)])
            scores.append(np.asarray(self.family.scores(prepared, outputs, raw=False), dtype=np.float64))
        return scores, seconds
