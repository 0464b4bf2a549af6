"""PEFT mixed adapter batches (`adapter_names=` per row) against rerankd's LoRA forward hooks.

Question (from the issue): should rerankd drop its own hooks (`rerankd.models.lora.LoraHost`, one
adapter per batch) for PEFT's multi-adapter inference, where one batch mixes base rows
(`"__base__"`) and rows of several adapters? Rule: adopt only if scores stay exact against the
merged model and throughput is no worse.

Model: the benchmark's MiniLM-L6 cross-encoder (real all-MiniLM-L6-v2 weights, seeded head), fp32.
Adapters, both built with PEFT (seeded non-zero B; the classification head, which PEFT saves in
full for SEQ_CLS, perturbed):

* `a`: `query,value`, rank 8, alpha 16;
* `b`: every linear layer of the encoder and the pooler, rank 16, rsLoRA, `alpha_pattern`.

Texts: TREC DL 2019 queries with their BM25 passages, tokenized as pairs (truncation to 512),
batched the way rerankd batches on CPUs: per query, longest first, at most 1,024 padded tokens.
The mixed workload gives each query's passages in turn to the base, `a` and `b` (a third each),
as if three requests with different adapters were queued together: PEFT runs each query's rows
in the same batches as the uniform workloads (adapters mixed within a batch), rerankd splits
them per adapter first (one adapter per batch, so more and smaller batches).

1. Exactness: max |Δ logit| against PEFT's `merge_and_unload()` of each adapter on a fresh base
   (against the plain base for base rows); outputs are those of the first timed repetition.
2. Throughput, pairs/s. The variants of one comparison are interleaved round by round (a round:
   one batch for the uniform workloads, one query's rows for the mixed one; the order alternates),
   so a change in the machine's load hits all of them alike. A repetition is one pass over the
   workload; reported: the median over repetitions of each variant's speed relative to the
   comparison's first variant (>1: faster than rerankd's hooks), and its range.
3. Integration facts measured on the PeftModel (modules replaced in place, memory per adapter).

    PYTHONPATH=src python benchmarks/lora_peft_vs_hooks.py             # ~30 s on 2 idle cores, ~9 min on busy ones
    PYTHONPATH=src python benchmarks/lora_peft_vs_hooks.py --threads 1 --queries 8 --reps 5   # less noise when busy
    PYTHONPATH=src python benchmarks/lora_peft_vs_hooks.py --queries 1 --passages 12 --reps 1  # smoke run

Results and the recommendation: benchmarks/lora_peft_vs_hooks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the adapter builder and data loader the tests use

from support.data import trec_dl_2019  # noqa: E402
from support.lora import build_lora_adapter  # noqa: E402

from rerankd.bench.checkpoints import build_minilm_cross_encoder  # noqa: E402
from rerankd.models.lora import LoraHost, read_adapter  # noqa: E402
from rerankd.models.runtime import configure_threads  # noqa: E402

BASE = "__base__"
ADAPTERS = {
    "a": {"seed": 1, "rank": 8, "targets": ("query", "value")},
    "b": {
        "seed": 2,
        "rank": 16,
        "targets": ("query", "key", "value", "dense"),
        "use_rslora": True,
        "alpha_pattern": {"value": 48, "dense": 4},
    },
}

Inputs = dict[str, torch.Tensor]
Forward = Callable[[Inputs, list[int]], torch.Tensor]  # (padded inputs, row indices) -> logits
Batch = tuple[Inputs, list[int]]
Round = list[tuple[Batch, Forward]]  # the unit of interleaving


def progress(started: float, what: str) -> None:
    print(
        f"[{time.perf_counter() - started:4.0f} s, load {os.getloadavg()[0]:.1f}] {what}", file=sys.stderr, flush=True
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_network(directory: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(directory)).eval()


def tokenize_queries(base_dir: Path, queries: int, passages: int) -> list[list[list[int]]]:
    """Per query, per passage: (input_ids, token_type_ids) of the pair."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    out = []
    for query in trec_dl_2019()[:queries]:
        pairs = []
        for document in query.documents[:passages]:
            encoded = tokenizer(query.query, document, truncation=True, max_length=512)
            pairs.append((encoded["input_ids"], encoded["token_type_ids"]))
        out.append(pairs)
    return out


def token_batches(rows: list[tuple[list[int], list[int]]], indices: list[int], budget: int) -> list[Batch]:
    """rerankd's CPU batching: longest first, as many rows as fit `budget` padded tokens."""
    order = sorted(indices, key=lambda i: -len(rows[i][0]))
    batches = []
    start = 0
    while start < len(order):
        width = len(rows[order[start]][0])
        chosen = order[start : start + max(1, budget // width)]
        start += len(chosen)
        ids = torch.zeros(len(chosen), width, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for slot, index in enumerate(chosen):
            n = len(rows[index][0])
            ids[slot, :n] = torch.tensor(rows[index][0])
            types[slot, :n] = torch.tensor(rows[index][1])
            mask[slot, :n] = 1
        batches.append(({"input_ids": ids, "token_type_ids": types, "attention_mask": mask}, chosen))
    return batches


def run(batches: list[Batch], n_rows: int, forward: Forward) -> torch.Tensor:
    """Logits per row (NaN for rows not in `batches`)."""
    out = torch.full((n_rows,), float("nan"))
    with torch.inference_mode():
        for inputs, chosen in batches:
            out[chosen] = forward(inputs, chosen).reshape(-1).float()
    return out


def max_delta(x: torch.Tensor, y: torch.Tensor, rows: list[int] | None = None) -> float:
    if rows is not None:
        x, y = x[rows], y[rows]
    return float((x - y).abs().max())


def compare(variants: dict[str, list[Round]], n_rows: int, reps: int) -> tuple[dict, dict]:
    """Interleave the variants round by round; (seconds per repetition and round, outputs of the first repetition)."""
    names = list(variants)
    rounds = len(next(iter(variants.values())))
    outputs = {key: torch.full((n_rows,), float("nan")) for key in names}
    seconds: dict[str, list[list[float]]] = {key: [] for key in names}
    with torch.inference_mode():
        for key in names:  # warm-up: one round each
            for (inputs, chosen), forward in variants[key][0]:
                forward(inputs, chosen)
        for rep in range(reps):
            spent = {key: [0.0] * rounds for key in names}
            for r in range(rounds):
                order = names if (rep * rounds + r) % 2 == 0 else names[::-1]
                for key in order:
                    for (inputs, chosen), forward in variants[key][r]:
                        start = time.perf_counter()
                        logits = forward(inputs, chosen)
                        spent[key][r] += time.perf_counter() - start
                        if rep == 0:
                            outputs[key][chosen] = logits.reshape(-1).float()
            for key in names:
                seconds[key].append(spent[key])
    return seconds, outputs


def summarize(workload: str, seconds: dict[str, list[list[float]]], n_pairs: int) -> list[tuple]:
    """Per variant: pairs/s, and its speed relative to the first variant (median, min, max over
    repetitions; median over all rounds of all repetitions)."""
    names = list(seconds)
    first = seconds[names[0]]
    rows = []
    for key in names:
        passes = [sum(a) / sum(b) for a, b in zip(first, seconds[key], strict=True)]
        rounds = [x / y for a, b in zip(first, seconds[key], strict=True) for x, y in zip(a, b, strict=True)]
        rate = n_pairs / statistics.median(sum(rep) for rep in seconds[key])
        rows.append(
            (workload, key, rate, statistics.median(passes), min(passes), max(passes), statistics.median(rounds))
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--passages", type=int, default=12)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: every core (rerankd's default)")
    args = parser.parse_args()

    threads = configure_threads(args.threads)
    import peft
    import transformers
    from peft import PeftModel
    from peft.tuners.lora import Linear as LoraLinear
    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers deprecations inside PEFT
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    print(
        f"CPU: {cpu_model()}, {threads} threads, torch.backends.cpu.get_cpu_capability() = "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}; fp32")
    print(f"load average at start (other users' work on the same cores): {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory(prefix="lora-peft-vs-hooks-") as tmp:
        root = Path(tmp)
        base_dir = build_minilm_cross_encoder(root / "base")
        adapter_dirs = {}
        for key, spec in ADAPTERS.items():
            options = dict(spec)
            seed, rank, targets = options.pop("seed"), options.pop("rank"), options.pop("targets")
            adapter_dirs[key], _ = build_lora_adapter(
                base_dir, root / key, seed=seed, rank=rank, targets=targets, perturb_head=True, **options
            )

        per_query = tokenize_queries(base_dir, args.queries, args.passages)
        rows = [pair for pairs in per_query for pair in pairs]
        n = len(rows)
        owner: list[str] = []
        query_rows: list[list[int]] = []
        for pairs in per_query:
            query_rows.append(list(range(len(owner), len(owner) + len(pairs))))
            owner += [(BASE, "a", "b")[j % 3] for j in range(len(pairs))]
        groups = {key: [i for i in range(n) if owner[i] == key] for key in (BASE, "a", "b")}
        # Per query: the batches every uniform workload and PEFT's mixed batches use ...
        query_batches = [token_batches(rows, idx, args.batch_tokens) for idx in query_rows]
        batches = [batch for qb in query_batches for batch in qb]
        # ... and rerankd's batches for the mixed workload: each query's rows split per adapter first.
        query_split = [
            {key: token_batches(rows, [i for i in idx if owner[i] == key], args.batch_tokens) for key in groups}
            for idx in query_rows
        ]
        lengths = [len(ids) for ids, _ in rows]
        print(
            f"workload: TREC DL 2019, {args.queries} queries x {args.passages} BM25 passages = {n} pairs, "
            f"{min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / n:.0f}); batches of <= {args.batch_tokens} "
            f"padded tokens: {len(batches)} per pass (mixed workload split per adapter: "
            f"{sum(len(b) for split in query_split for b in split.values())})"
        )

        progress(started, "checkpoints and adapters built")
        # References: PEFT's merge_and_unload() of each adapter on a fresh base; the plain base.
        plain = load_network(base_dir)
        ref = {BASE: run(batches, n, lambda x, _: plain(**x).logits)}
        for key, path in adapter_dirs.items():
            merged = PeftModel.from_pretrained(load_network(base_dir), str(path)).merge_and_unload().eval()
            ref[key] = run(batches, n, lambda x, _, m=merged: m(**x).logits)

        progress(started, "references")
        # rerankd: hooks on a fresh base, both adapters attached.
        network = load_network(base_dir)
        host = LoraHost(network)
        hook_bytes = {key: host.attach(key, read_adapter(path)) for key, path in adapter_dirs.items()}

        def hooks(key: str | None) -> Forward:
            def forward(x: Inputs, _: list[int]) -> torch.Tensor:
                with host.activate(key):
                    return network(**x).logits

            return forward

        # PEFT: one PeftModel holding both adapters, on another fresh base.
        peft_base = load_network(base_dir)
        before = {name: id(m) for name, m in peft_base.named_modules()}
        model = PeftModel.from_pretrained(peft_base, str(adapter_dirs["a"]), adapter_name="a")
        replaced_a = sum(1 for name, m in peft_base.named_modules() if name in before and id(m) != before[name])
        before = {name: id(m) for name, m in peft_base.named_modules()}
        model.load_adapter(str(adapter_dirs["b"]), adapter_name="b")
        replaced_b = sum(1 for name, m in peft_base.named_modules() if name in before and id(m) != before[name])
        model.eval()

        def peft_names(per_row: Callable[[list[int]], list[str]]) -> Forward:
            def forward(x: Inputs, chosen: list[int]) -> torch.Tensor:
                return model(**x, adapter_names=per_row(chosen)).logits

            return forward

        def peft_set(key: str) -> Forward:
            def forward(x: Inputs, _: list[int]) -> torch.Tensor:
                model.set_adapter(key)  # per batch, as a server switching adapters would
                return model(**x).logits

            return forward

        def peft_disabled(x: Inputs, _: list[int]) -> torch.Tensor:
            with model.disable_adapter():
                return model(**x).logits

        def all_of(key: str) -> Callable[[list[int]], list[str]]:
            return lambda chosen: [key] * len(chosen)

        def mixed(chosen: list[int]) -> list[str]:
            return [owner[i] for i in chosen]

        def uniform(forward: Forward) -> list[Round]:
            return [[(batch, forward)] for batch in batches]

        # ---- throughput (its first repetition's outputs feed the exactness table) ----------
        timings: list[tuple] = []
        seconds, out_i = compare(
            {
                "hooks attached, inactive": uniform(hooks(None)),
                "PEFT adapter_names all __base__": uniform(peft_names(all_of(BASE))),
                "PEFT disable_adapter()": uniform(peft_disabled),
            },
            n,
            args.reps,
        )
        timings += summarize("(i) base only", seconds, n)
        progress(started, "(i) base only")
        seconds, out_ii = compare(
            {
                "hooks, b active": uniform(hooks("b")),
                "PEFT set_adapter('b')": uniform(peft_set("b")),
                "PEFT adapter_names all 'b'": uniform(peft_names(all_of("b"))),
            },
            n,
            args.reps,
        )
        timings += summarize("(ii) one adapter (b)", seconds, n)
        progress(started, "(ii) one adapter")
        seconds, out_iii = compare(
            {
                "hooks, split per adapter": [
                    [(batch, hooks(None if key == BASE else key)) for key, qb in split.items() for batch in qb]
                    for split in query_split
                ],
                "PEFT mixed batches": [[(batch, peft_names(mixed)) for batch in qb] for qb in query_batches],
            },
            n,
            args.reps,
        )
        timings += summarize("(iii) mixed: 1/3 base, a, b", seconds, n)
        progress(started, "(iii) mixed")

        # ---- exactness ----------------------------------------------------------------------
        # b: every row, in the uniform batches (workload ii); a: a's rows of the mixed workload, in
        # rerankd's split batches (hooks) and the same batches with PEFT's set_adapter('a').
        peft_mixed = out_iii["PEFT mixed batches"]
        hook_split = out_iii["hooks, split per adapter"]
        peft_a = run([batch for split in query_split for batch in split["a"]], n, peft_set("a"))
        every = list(range(n))
        singles = {
            "a": (hook_split, peft_a, groups["a"], "a rows, split batches"),
            "b": (out_ii["hooks, b active"], out_ii["PEFT set_adapter('b')"], every, "all rows"),
        }
        exact: list[tuple[str, str, float]] = []
        for key, (by_hooks, by_peft, idx, which) in singles.items():
            exact += [
                (f"(a) hooks, {key} active, {which}", f"merged {key}", max_delta(by_hooks, ref[key], idx)),
                (f"(b) PEFT mixed batches, {key} rows", f"merged {key}", max_delta(peft_mixed, ref[key], groups[key])),
                (f"(c) PEFT set_adapter('{key}'), {which}", f"merged {key}", max_delta(by_peft, ref[key], idx)),
            ]
        exact += [
            (
                "(c) PEFT adapter_names all 'b', all rows",
                "merged b",
                max_delta(out_ii["PEFT adapter_names all 'b'"], ref["b"]),
            ),
            (
                "hooks attached, inactive, all rows",
                "plain base",
                max_delta(out_i["hooks attached, inactive"], ref[BASE]),
            ),
            ("hooks, base rows of the split mixed load", "plain base", max_delta(hook_split, ref[BASE], groups[BASE])),
            ("PEFT mixed batches, __base__ rows", "plain base", max_delta(peft_mixed, ref[BASE], groups[BASE])),
            (
                "PEFT adapter_names all __base__, all rows",
                "plain base",
                max_delta(out_i["PEFT adapter_names all __base__"], ref[BASE]),
            ),
            ("PEFT disable_adapter(), all rows", "plain base", max_delta(out_i["PEFT disable_adapter()"], ref[BASE])),
        ]
        for key, (by_hooks, by_peft, idx, _) in singles.items():
            exact += [
                (f"PEFT set_adapter('{key}') vs hooks {key}", "hooks", max_delta(by_peft, by_hooks, idx)),
                (f"PEFT mixed, {key} rows vs hooks {key}", "hooks", max_delta(peft_mixed, by_hooks, groups[key])),
            ]
        assert not any(torch.isnan(t).any() for t in (*ref.values(), peft_mixed, hook_split))

        scale = max(float(r.abs().max()) for r in ref.values())
        effect = {key: max_delta(ref[key], ref[BASE]) for key in ADAPTERS}
        print("\n1. Exactness: max |Δ logit| (fp32)")
        print(
            f"   max |logit| {scale:.2f}; what the adapters change (merged - base): a {effect['a']:.3f}, "
            f"b {effect['b']:.3f}"
        )
        width = max(len(label) for label, _, _ in exact)
        print(f"   {'variant':<{width}}  {'against':<10}  max |Δ|")
        for label, against, value in exact:
            print(f"   {label:<{width}}  {against:<10}  {value:.1e}")

        print(
            f"\n2. Throughput: pairs/s (median of {args.reps} repetitions); ratio: speed relative to the first "
            "variant of its workload (>1: faster than the hooks), median (min-max) over repetitions, and the "
            "median over every interleaved round"
        )
        width = max(len(r[1]) for r in timings)
        print(f"   {'workload':<28} {'variant':<{width}}  {'pairs/s':>7}  {'ratio':>5}  {'(min-max)':<13}  per-round")
        for workload, label, rate, ratio, low, high, per_round in timings:
            print(
                f"   {workload:<28} {label:<{width}}  {rate:7.1f}  {ratio:5.3f}  "
                f"({low:.3f}-{high:.3f})  {per_round:9.3f}"
            )

        print("\n3. Integration facts (measured on the PeftModel above)")
        wrapped = sum(1 for m in model.modules() if isinstance(m, LoraLinear))
        print(
            f"   PeftModel.from_pretrained(a) replaced {replaced_a} modules of the base network in place "
            f"(query/value Linear + the head wrapper), load_adapter(b) {replaced_b} more; {wrapped} lora.Linear "
            f"now stand in the base network's place, so base-only batches run through them"
        )
        for key in ADAPTERS:
            peft_bytes = sum(p.numel() * p.element_size() for name, p in model.named_parameters() if f".{key}." in name)
            print(
                f"   memory of adapter {key}: hooks {hook_bytes[key] / 1024:.0f} KiB, PEFT {peft_bytes / 1024:.0f} KiB"
            )
        model.set_adapter("a")
        model.delete_adapter("b")
        left = sum(1 for m in model.modules() if isinstance(m, LoraLinear))
        print(f"   after delete_adapter('b'): {left} lora.Linear remain in the network (wrappers are not undone)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
