"""Paired significance tests between two systems on the same queries (scipy).

Both are two-sided and paired by query:

* Student's paired t-test (`scipy.stats.ttest_rel`), what most IR papers report;
* a paired randomization (permutation) test (`scipy.stats.permutation_test`, `permutation_type=
  "samples"`: each query's two values are swapped at random), which assumes nothing about the
  distribution of the differences (Smucker et al., CIKM 2007, recommend it for IR). Exact (every
  swap) up to 13 queries, else 10,000 resamples from a seeded generator, so a report is reproducible.

No correction for multiple comparisons is applied: with many systems or metrics, read the
p-values with that in mind (or apply Holm's correction to the ones you compare).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

TESTS = "two-sided paired t-test (scipy.stats.ttest_rel) and paired randomization test (scipy.stats.permutation_test)"
RESAMPLES = 10_000


@dataclass(frozen=True)
class Comparison:
    """System `b` against system `a` on one metric, over the same queries."""

    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    delta: float  # mean_b - mean_a
    wins: int  # queries where b is better
    losses: int
    ties: int
    p_ttest: float
    p_randomization: float

    def as_dict(self) -> dict:
        return asdict(self)


def compare(a: str, b: str, metric: str, values_a: list[float], values_b: list[float], seed: int = 0) -> Comparison:
    """`values_a[i]` and `values_b[i]` are the same query's."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values_a, dtype=np.float64)
    y = np.asarray(values_b, dtype=np.float64)
    diff = y - x
    if len(diff) < 2 or not np.any(diff):
        p_t = p_r = 1.0  # identical systems (or one query): nothing to test
    else:
        p_t = float(stats.ttest_rel(y, x).pvalue)
        if not np.isfinite(p_t):  # every difference equal: the t statistic is infinite
            p_t = 0.0
        result = stats.permutation_test(
            (y, x),
            lambda u, v, axis: np.mean(u - v, axis=axis),
            permutation_type="samples",
            vectorized=True,
            n_resamples=RESAMPLES,
            alternative="two-sided",
            random_state=np.random.default_rng(seed),
        )
        p_r = float(result.pvalue)
    return Comparison(
        a=a,
        b=b,
        metric=metric,
        mean_a=float(x.mean()) if len(x) else 0.0,
        mean_b=float(y.mean()) if len(y) else 0.0,
        delta=float(diff.mean()) if len(diff) else 0.0,
        wins=int((diff > 0).sum()),
        losses=int((diff < 0).sum()),
        ties=int((diff == 0).sum()),
        p_ttest=p_t,
        p_randomization=p_r,
    )
