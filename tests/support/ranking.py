"""Ranking checks against a reference that treat float near-ties as ties.

The server's scores and a reference's scores come from different computations (other kernels,
batch shapes, padding, CPU instruction sets), so two items whose reference scores are within
float noise of each other may come back in either order; the TREC data also repeats passages
(or passages that agree up to a truncation limit), which tie exactly in the reference. An exact
`order == argsort(-reference)` then fails on a correct server. What must hold is weaker but still
strict: whenever the reference puts one item more than `tol` above another, the server ranks it
first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def assert_same_ranking(
    order: Sequence[int], reference_scores: Sequence[float] | np.ndarray, tol: float, *, top_k: int | None = None
) -> None:
    """`order` (indices into `reference_scores`, best first) ranks like the reference, ties within `tol` aside.

    Why: see the module docstring. Every pair whose reference scores differ by more than `tol` must
    be in reference order; a tie group (scores within `tol`) may be permuted. With `top_k`, `order`
    is the best `top_k` only: each item left out must then rank below every item returned, up to
    `tol` too. Pass the tolerance the test already allows per score, so that "within the tolerance"
    and "a tie" mean the same thing.
    """
    reference = np.asarray(reference_scores, dtype=np.float64)
    order = [int(i) for i in order]
    expected_length = len(reference) if top_k is None else min(top_k, len(reference))
    assert len(order) == expected_length, f"{len(order)} items ranked, expected {expected_length}"
    assert len(set(order)) == len(order) and all(0 <= i < len(reference) for i in order), f"not a ranking: {order}"
    if not order:
        return
    left_out = sorted(set(range(len(reference))) - set(order))
    ranked = reference[order + left_out]
    # best reference score strictly after each position (the left-out items count as after all returned ones)
    best_after = np.append(np.maximum.accumulate(ranked[::-1])[::-1][1:], -np.inf)
    gaps = best_after[: len(order)] - ranked[: len(order)]
    worst = int(np.argmax(gaps))
    if gaps[worst] > tol:
        later = (order + left_out)[worst + 1 + int(np.argmax(ranked[worst + 1 :]))]
        raise AssertionError(
            f"ranking differs from the reference beyond ties (tol {tol:g}): item {order[worst]} at position "
            f"{worst} (reference {ranked[worst]:.9g}) is ranked above item {later} (reference "
            f"{reference[later]:.9g}, {gaps[worst]:.3g} higher)"
        )
