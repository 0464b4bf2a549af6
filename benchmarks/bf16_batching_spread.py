"""How far a bf16 network's ranking moves with nothing but its batching, with and without an fp32 tail.

Scores all TREC DL 2019 queries (BM25 top-100) with the benchmark's MiniLM cross-encoder in
torch fp32, then with OpenVINO bf16 (native CPUs only) and OpenVINO bf16 with the last
feed-forward block and head in fp32 (`fast`'s "openvino bf16+fp32 tail"), each batched under
several padded-token budgets and with batch widths padded up to several multiples, and prints
each row's agreement with fp32 (per-query Kendall tau mean / min, top-10 overlap) and its
pairs/s. Within one network the pairs and the weights are the same in every row: the spread is
the noise floor of comparing two bf16 engines by tau (README "Benchmarks", "Numerics").

    python benchmarks/bf16_batching_spread.py [--data ../shared/data/trec-dl-2019] [--budgets 1024,2048]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from numerics_ndcg import family_for, load_trec

from rerankd.core.cpu import detect
from rerankd.models import execution
from rerankd.models.calibration import CalibrationSet, agreement
from rerankd.models.runtime import configure_threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/trec-dl-2019")
    parser.add_argument("--budgets", default="1024,2048", help="padded-token budgets, comma-separated")
    args = parser.parse_args()
    logging.basicConfig(level="WARNING")
    configure_threads(None)
    cpu = detect()
    print(f"CPU: {cpu.describe()}", flush=True)
    if not cpu.native_bf16:
        print("bf16 is emulated on this CPU: nothing to measure")
        return 0
    queries, _, _ = load_trec(args.data)
    family, directory = family_for("cross-encoder")
    budgets = [int(budget) for budget in args.budgets.split(",")]
    sets = {budget: CalibrationSet(family, queries, budget=budget) for budget in budgets}
    reference, _ = sets[budgets[0]].run(execution.eager(family))
    with tempfile.TemporaryDirectory() as cache:
        options = execution.ExecutionOptions(precision="fast", cache_dir=Path(cache))
        candidates = {c.name: c for c in execution.Compiler(family, directory, options).fast_candidates()}
        print("| network | budget | width multiple | tau mean / min | top-10 | pairs/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in ("openvino bf16", "openvino bf16+fp32 tail"):
            if name not in candidates:
                continue
            network = candidates[name].build()
            for budget, calibration in sets.items():
                for multiple in (1, 8, 16, 32):
                    network.width_multiple = multiple
                    scores, seconds = calibration.run(network)
                    found = agreement(reference, scores)
                    print(
                        f"| {name} | {budget} | {multiple} | {found.tau_mean:.4f} / {found.tau_min:.4f} "
                        f"| {found.top10:.3f} | {calibration.pairs / seconds:.0f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
