"""How far an engine's rankings are from the fp32 reference's, query by query.

Throughput bought with int8 or bf16 is only worth what the ranking keeps, so every row of the
report carries these columns: Kendall's τ over each query's candidates (mean and worst query),
the overlap of the two top-10 sets, and the largest score difference. An engine whose scores
are all within `EXACT_TOLERANCE` of the reference counts as exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rerankd.models.calibration import kendall_tau, top_overlap
from rerankd.models.execution import EXACT_TOLERANCE

__all__ = ["EXACT_TOLERANCE", "Agreement", "agreement", "kendall_tau", "top_overlap"]


@dataclass(frozen=True)
class Agreement:
    """Agreement with the reference over `queries` queries (the ones both engines scored)."""

    reference: str
    queries: int
    tau_mean: float
    tau_min: float
    top10_overlap: float
    max_abs_delta: float

    @property
    def exact(self) -> bool:
        return self.max_abs_delta <= EXACT_TOLERANCE

    def summary(self) -> dict:
        return {
            "reference": self.reference,
            "queries": self.queries,
            "kendall_tau_mean": round(self.tau_mean, 6),
            "kendall_tau_min": round(self.tau_min, 6),
            "top10_overlap": round(self.top10_overlap, 4),
            "max_abs_delta": self.max_abs_delta,
            "exact": self.exact,
        }


def agreement(
    reference: Mapping[int, Sequence[float]], scores: Mapping[int, Sequence[float]], name: str
) -> Agreement | None:
    """Compare per-query score lists (keyed by query) on the queries both have; None if they share none."""
    shared = sorted(set(reference) & set(scores))
    taus, overlaps, deltas = [], [], []
    for query in shared:
        ref, got = np.asarray(reference[query], dtype=float), np.asarray(scores[query], dtype=float)
        if ref.shape != got.shape:
            raise ValueError(f"query {query}: {got.size} scores against {ref.size} in the reference")
        taus.append(kendall_tau(ref, got))
        overlaps.append(top_overlap(ref, got))
        deltas.append(float(np.max(np.abs(ref - got))) if ref.size else 0.0)
    if not shared:
        return None
    return Agreement(name, len(shared), float(np.mean(taus)), min(taus), float(np.mean(overlaps)), max(deltas))
