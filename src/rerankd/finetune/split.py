"""Query-disjoint splits: no query's judgments are ever both trained on and evaluated on."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from rerankd.evaluation.errors import BadInput


@dataclass(frozen=True)
class Split:
    train: list[str]
    heldout: list[str]  # early stopping and the before/after report
    test: list[str]  # never read by finetune: for `rerankd eval --queries-file queries.test.txt`

    def write(self, folder: Path) -> dict[str, Path]:
        """`queries.{train,heldout,test}.txt` in `folder` (the empty ones are not written)."""
        written = {}
        for name in ("train", "heldout", "test"):
            qids = getattr(self, name)
            if qids:
                path = folder / f"queries.{name}.txt"
                path.write_text("\n".join(qids) + "\n")
                written[name] = path
        return written


def split_queries(qids: list[str], *, heldout: float, test: float, seed: int) -> Split:
    """Shuffle `qids` with `seed` (same ids, same seed: same split) and cut off `test`, then `heldout`, shares."""
    if not 0 <= heldout < 1 or not 0 <= test < 1 or heldout + test >= 1:
        raise BadInput(
            f"--eval-fraction {heldout} and --test-fraction {test} must be in [0, 1) and leave training queries"
        )
    order = sorted(qids)
    random.Random(seed).shuffle(order)
    n_test = round(len(order) * test)
    n_heldout = round(len(order) * heldout)
    if (test > 0 and n_test == 0) or (heldout > 0 and n_heldout == 0):
        raise BadInput(f"{len(order)} queries are too few to hold out {heldout:.0%} + {test:.0%} of them")
    split = Split(
        train=sorted(order[n_test + n_heldout :]),
        heldout=sorted(order[n_test : n_test + n_heldout]),
        test=sorted(order[:n_test]),
    )
    if not split.train:
        raise BadInput(f"{len(order)} queries leave none to train on")
    return split
