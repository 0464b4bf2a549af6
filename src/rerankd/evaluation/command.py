"""`rerankd eval`: its options and its body (cli.py only wires the subcommand).

Importing this module is cheap (argparse only): `rerankd --help` must not load torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rerankd.cli_types import positive_int
from rerankd.evaluation.errors import BadInput


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """What both `eval` and `finetune` read: the dataset, its first stage and which queries."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        type=Path,
        required=True,
        metavar="PATH",
        help="a TREC folder (retrieve_results_*.json + qrels.*.txt [+ topics.*.txt]), a BEIR folder (corpus.jsonl, "
        "queries*.jsonl, qrels/*.tsv) or a JSONL file of {query, documents, labels}",
    )
    group.add_argument(
        "--run",
        type=Path,
        default=None,
        metavar="FILE",
        help="first stage from this TREC run file (qid Q0 docid rank score tag) instead of the dataset's own "
        "(a BEIR folder's default: BM25 over the corpus with bm25s)",
    )
    group.add_argument("--split", default=None, help="BEIR qrels split (qrels/SPLIT.tsv; default: test)")
    group.add_argument(
        "--queries-file",
        type=Path,
        default=None,
        metavar="IDS",
        help="only these queries (ids one per line, '#' comments), e.g. a held-out split",
    )
    group.add_argument(
        "--depth",
        type=positive_int,
        default=None,
        metavar="N",
        help="first-stage candidates kept per query (default: all of a given run; BM25 retrieves 100)",
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("in-process engine (without --url)")
    group.add_argument("--device", default="auto", help="auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:1...")
    group.add_argument(
        "--backend",
        choices=["auto", "torch", "openvino"],
        default="auto",
        help="CPU execution backend for encoder models, as rerankd serve's (auto: OpenVINO where it is exact)",
    )
    group.add_argument("--threads", type=positive_int, default=None, help="CPU threads for model math")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    systems = parser.add_argument_group("systems")
    systems.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[LABEL=]MODEL[:ADAPTER]",
        help="a reranker to compare with the first stage (repeatable). In-process: MODEL as rerankd serve "
        "--model takes it (catalog id, directory, model package), ADAPTER a PEFT adapter directory; with --url: "
        "MODEL a name the server serves, ADAPTER the name of an adapter loaded on it",
    )
    systems.add_argument("--url", default=None, help="score through this running rerankd server (the SDK)")
    systems.add_argument(
        "--api-key", default=os.environ.get("RERANKD_API_KEY"), help="the server's --api-key (env RERANKD_API_KEY)"
    )
    systems.add_argument(
        "--top-k",
        type=positive_int,
        default=None,
        metavar="K",
        help="rerank each query's first K candidates (default: all)",
    )
    measures = parser.add_argument_group("metrics")
    measures.add_argument(
        "--metrics",
        default=None,
        metavar="LIST",
        help="comma list of trec_eval names (default: ndcg_cut_10,recip_rank_10,map,recall_10,recall_100; "
        "recip_rank_10 is MRR@10) or ir-measures names (nDCG@10, RR@10, AP, R@100); the first one leads the tables",
    )
    measures.add_argument(
        "--relevance-level",
        type=int,
        default=1,
        metavar="L",
        help="lowest grade counted relevant by binary metrics (MRR, MAP, recall), trec_eval's -l (TREC DL: 2)",
    )
    measures.add_argument("--seed", type=int, default=0, help="seed of the randomization test's resamples")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the JSON report here")
    outputs.add_argument("--markdown", type=Path, default=None, metavar="OUT", help="write the Markdown tables here")
    outputs.add_argument("--plot", type=Path, default=None, metavar="OUT", help="write a PNG of the results here")
    outputs.add_argument(
        "--write-runs", type=Path, default=None, metavar="DIR", help="write each system's ranking as a TREC run file"
    )
    outputs.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    add_engine_arguments(parser)


def quiet_engine_logs() -> None:
    """Offline, no telemetry, and the engine's log records not printed: a failure reaches the user as the
    command's one line (Python would print unhandled records on stderr, e.g. a model that failed to load)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download: models are local or packaged
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    logging.getLogger("rerankd").addHandler(logging.NullHandler())


def engine_settings(args: argparse.Namespace) -> dict:
    """The `RegistrySettings` fields the engine options set."""
    return {"device": args.device, "backend": args.backend}


def make_scorer(args: argparse.Namespace):
    """The in-process engine, or the server at `--url`."""
    if args.url:
        from rerankd.evaluation.remote import RemoteScorer

        return RemoteScorer(args.url, api_key=args.api_key)
    from rerankd.evaluation.inprocess import InProcessScorer

    return InProcessScorer(engine_settings(args), threads=args.threads)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BadInput as error:
        print(f"rerankd eval: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from rerankd.evaluation import markdown
    from rerankd.evaluation.loading import prepare
    from rerankd.evaluation.metrics import parse_metrics
    from rerankd.evaluation.report import write_json, write_runs
    from rerankd.evaluation.runner import evaluate
    from rerankd.evaluation.systems import SystemSpec

    quiet_engine_logs()
    if args.url and not args.model:
        raise BadInput("--url needs at least one --model (a name the server serves)")
    metrics = parse_metrics(args.metrics, args.relevance_level)
    systems = [SystemSpec.parse(text) for text in args.model]
    dataset = prepare(args.dataset, run=args.run, split=args.split, queries_file=args.queries_file, depth=args.depth)
    for note in dataset.notes:
        print(f"rerankd eval: note: {note}", file=sys.stderr)
    report = evaluate(
        dataset,
        systems,
        make_scorer(args) if systems else None,
        metrics,
        top_k=args.top_k,
        seed=args.seed,
        progress=not args.no_progress,
        settings={
            "depth": args.depth,
            "relevance_level": args.relevance_level,
            "scored_by": args.url or "in-process",
            "models": {system.label: {"model": system.model, "adapter": system.adapter} for system in systems},
        },
    )
    print(markdown.summary(report))
    tests = markdown.significance(report, [report.primary])
    if tests:
        print("\n" + tests)
    if args.json:
        print(f"wrote {write_json(report, args.json)}", file=sys.stderr)
    if args.markdown:
        print(f"wrote {markdown.write_markdown(report, args.markdown)}", file=sys.stderr)
    if args.plot:
        from rerankd.evaluation.plot import write_plot

        print(f"wrote {write_plot(report, args.plot)}", file=sys.stderr)
    if args.write_runs:
        for path in write_runs(report, args.write_runs):
            print(f"wrote {path}", file=sys.stderr)
    return 0
