"""`rerankd finetune`: its options and its body (cli.py only wires the subcommand).

Importing this module is cheap (argparse only): `rerankd --help` must not load torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from rerankd.cli_types import fraction, positive_float, positive_int
from rerankd.evaluation.command import add_dataset_arguments, add_engine_arguments, quiet_engine_logs
from rerankd.evaluation.errors import BadInput


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument(
        "--model",
        required=True,
        metavar="SOURCE",
        help="the cross-encoder or bi-encoder to adapt, as rerankd serve --model takes it (catalog id, "
        "directory, model package)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the PEFT adapter is written")
    split = parser.add_argument_group("query-disjoint split (of the judged queries, or --queries-file's)")
    split.add_argument(
        "--eval-fraction",
        type=fraction,
        default=0.2,
        metavar="F",
        help="held out for early stopping and the before/after report (default 0.2; 0: none)",
    )
    split.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="set aside, never read, for rerankd eval --queries-file DIR/queries.test.txt (default 0)",
    )
    training = parser.add_argument_group("training")
    training.add_argument("--seed", type=int, default=0, help="the split, LoRA's initialisation and the data order")
    training.add_argument(
        "--epochs",
        type=positive_float,
        default=3.0,
        help="passes over the training queries (early stopping may end sooner)",
    )
    training.add_argument("--max-steps", type=positive_int, default=None, help="stop after N optimizer steps")
    training.add_argument("--lr", type=positive_float, default=2e-4, help="learning rate (default 2e-4)")
    training.add_argument("--batch-size", type=positive_int, default=16, help="queries (rows) per step")
    training.add_argument("--rank", type=positive_int, default=8, help="LoRA rank (default 8; alpha = 2 x rank)")
    training.add_argument(
        "--target-modules",
        default="all-linear",
        metavar="LIST",
        help="linear layers LoRA adapts: all-linear (default) or names, e.g. query,key,value",
    )
    training.add_argument(
        "--negatives",
        type=positive_int,
        default=3,
        help="hard negatives per query from the first stage (default 3: each costs a forward and backward pass)",
    )
    training.add_argument(
        "--positives", type=positive_int, default=4, help="relevant documents per query at most (default 4)"
    )
    training.add_argument("--relevance-level", type=int, default=1, metavar="L", help="lowest relevant grade")
    training.add_argument(
        "--max-length", type=positive_int, default=None, help="tokens per text (default: the model's limit)"
    )
    training.add_argument(
        "--patience", type=positive_int, default=2, help="stop after N epochs without a lower held-out loss"
    )
    training.add_argument("--top-k", type=positive_int, default=None, metavar="K", help="rerank depth of the report")
    training.add_argument("--no-progress", action="store_true", help="no progress bars")
    serving = parser.add_argument_group("hot-load the adapter when done")
    serving.add_argument("--serve-to", default=None, metavar="URL", help="a running rerankd whose admin API is on")
    serving.add_argument("--name", default=None, metavar="MODEL", help="the model name the adapter attaches to there")
    serving.add_argument("--adapter", default=None, metavar="NAME", help="the adapter's name there")
    serving.add_argument(
        "--admin-api-key",
        default=os.environ.get("RERANKD_ADMIN_API_KEY"),
        metavar="KEY",
        help="the server's admin key (env RERANKD_ADMIN_API_KEY)",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BadInput as error:
        print(f"rerankd finetune: {error}", file=sys.stderr)
        return 2


def _check_serving(args: argparse.Namespace) -> None:
    given = [args.serve_to, args.name, args.adapter]
    if any(given) and not all(given):
        raise BadInput("--serve-to, --name and --adapter go together")
    if args.adapter is not None:
        from rerankd.registry.adapters import check_adapter_name

        try:
            check_adapter_name(args.adapter)
        except Exception as error:
            raise BadInput(f"--adapter {args.adapter!r}: {error}") from None
    if args.serve_to:
        _check_server(args)


@contextmanager
def _server_call(url: str, refused: str) -> Iterator[None]:
    """The SDK's failures as one line: unreachable, or `refused` followed by the server's answer."""
    from rerankd.client import APIError, ConnectionFailed

    try:
        yield
    except ConnectionFailed as error:
        raise BadInput(f"cannot reach the server at {url}: {error.message}") from None
    except APIError as error:
        raise BadInput(f"{refused}: {error.status} {error.code}: {error.message}") from None


def _check_server(args: argparse.Namespace) -> None:
    """Before minutes of training: the server answers and serves --name."""
    from rerankd.client import Client

    refused = f"--name {args.name}: the server at {args.serve_to} answered"
    with (
        Client(args.serve_to, api_key=args.admin_api_key, wait_for_model=0) as client,
        _server_call(args.serve_to, refused),
    ):
        client.get_model(args.name)


def _prepare_out(out: Path) -> Path:
    occupied = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if occupied and not (out / "adapter_config.json").exists():
        raise BadInput(f"--out {out} exists and is not an adapter directory: choose a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot create --out {out}: {error.strerror or error}") from None
    return out


def _run(args: argparse.Namespace) -> int:
    from rerankd.evaluation.loading import prepare
    from rerankd.finetune.base import resolve_base
    from rerankd.finetune.examples import require, training_queries
    from rerankd.finetune.split import split_queries

    quiet_engine_logs()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _check_serving(args)
    base = resolve_base(args.model)
    dataset = prepare(args.dataset, run=args.run, split=args.split, queries_file=args.queries_file, depth=args.depth)
    for note in dataset.notes:
        print(f"rerankd finetune: note: {note}", file=sys.stderr)
    split = split_queries(dataset.judged(), heldout=args.eval_fraction, test=args.test_fraction, seed=args.seed)
    out = _prepare_out(args.out)
    written = split.write(out)
    shape = {"positives": args.positives, "negatives": args.negatives, "relevance_level": args.relevance_level}
    train = require(training_queries(dataset, split.train, **shape), "training", len(split.train))
    heldout = training_queries(dataset, split.heldout, **shape)
    print(
        f"rerankd finetune: {base.family} {base.source}; {len(train)} training queries, {len(split.heldout)} held out, "
        f"{len(split.test)} set aside for testing (query ids in {out})",
        file=sys.stderr,
    )
    result = _train(args, base, train, heldout, out)
    print(
        f"rerankd finetune: {result.steps} steps in {result.seconds:.0f} s; best held-out loss "
        f"{result.best_loss if result.best_loss is None else round(result.best_loss, 4)} at step {result.best_step}; "
        f"adapter written to {out}",
        file=sys.stderr,
    )
    report = _before_after(args, base, dataset.select(split.heldout), out) if split.heldout else None
    _write_record(args, base, out, written, result, report)
    if args.serve_to:
        _serve(args, out)
    return 0


def _train(args: argparse.Namespace, base, train, heldout, out: Path):
    from rerankd.finetune.trainer import TrainOptions, train_adapter

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = TrainOptions(
        seed=args.seed,
        epochs=args.epochs,
        learning_rate=args.lr,
        rank=args.rank,
        batch_size=args.batch_size,
        negatives=args.negatives,
        max_steps=args.max_steps,
        max_length=args.max_length,
        patience=args.patience,
        device=args.device,
        targets=args.target_modules,
    )
    return train_adapter(base, train, heldout, options, out, progress=not args.no_progress)


def _before_after(args: argparse.Namespace, base, heldout, out: Path):
    """The base model and base + adapter on the held-out queries, with `rerankd eval`'s code."""
    from rerankd.evaluation import markdown
    from rerankd.evaluation.command import engine_settings
    from rerankd.evaluation.inprocess import InProcessScorer
    from rerankd.evaluation.metrics import parse_metrics
    from rerankd.evaluation.runner import evaluate
    from rerankd.evaluation.systems import SystemSpec

    systems = [SystemSpec("base", base.source), SystemSpec("adapter", base.source, str(out))]
    report = evaluate(
        heldout,
        systems,
        InProcessScorer(engine_settings(args), threads=args.threads),
        parse_metrics(None, args.relevance_level),
        top_k=args.top_k,
        seed=args.seed,
        progress=not args.no_progress,
        settings={"split": "held-out (used for early stopping)"},
    )
    print("\nHeld-out queries (they chose the stopping point; for an unbiased number use --test-fraction):")
    print(markdown.summary(report))
    print("\n" + markdown.significance(report, [report.primary]))
    return report


def _write_record(args, base, out: Path, written: dict, result, report) -> None:
    """`rerankd-finetune.json` beside the adapter: what it was trained on, how, and what it scored."""
    from rerankd.evaluation.report import as_json

    record = {
        "base_model": base.source,
        "family": base.family,
        "dataset": str(args.dataset),
        "queries": {name: path.name for name, path in written.items()},
        "options": {
            key: getattr(args, key)
            for key in (
                *("seed", "epochs", "max_steps", "lr", "batch_size", "rank", "target_modules", "negatives"),
                *("positives", "relevance_level", "max_length", "patience", "eval_fraction", "test_fraction"),
            )
        },
        "training": asdict(result),
        "heldout_eval": as_json(report) if report is not None else None,
    }
    (out / "rerankd-finetune.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


def _serve(args: argparse.Namespace, out: Path) -> None:
    from rerankd.client import Client

    refused = f"the server at {args.serve_to} refused the adapter"
    with Client(args.serve_to, api_key=args.admin_api_key) as client, _server_call(args.serve_to, refused):
        info = client.load_adapter(args.name, args.adapter, str(out.resolve()))
    print(
        f"rerankd finetune: {args.serve_to} serves it as {info.get('id', f'{args.name}:{args.adapter}')}",
        file=sys.stderr,
    )
