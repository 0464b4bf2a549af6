"""`rerankd serve | score | bench | eval | finetune`: the command line (eval and finetune live in their packages)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rerankd import __version__
from rerankd.cli_help import HF_ENVIRONMENT, Parser, environment_epilog
from rerankd.cli_types import positive_int, seconds
from rerankd.extras import SERVER_INSTALL, missing_server_packages


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument("--device", default="auto", help="auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:1...")
    group.add_argument(
        "--dtype",
        default="auto",
        help="auto (fp32 on CPU, the model's preference on GPU), float32, bfloat16, float16",
    )
    group.add_argument(
        "--precision",
        choices=["exact", "fast"],
        default="exact",
        help="exact: the reference scores (fp32 on CPU); fast: the fastest numerics for this CPU and model whose "
        "ranking agreement with fp32 passes a calibration at load (int8, bf16 where native)",
    )
    group.add_argument(
        "--backend",
        choices=["auto", "torch", "openvino"],
        default="auto",
        help="CPU execution backend for encoder models (auto: OpenVINO where it is installed and exact, else torch)",
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where compiled models and calibrations are kept (default: $XDG_CACHE_HOME/rerankd)",
    )
    group.add_argument(
        "--calibration-data",
        type=Path,
        default=None,
        help="JSONL of {query, documents} that --precision fast calibrates on (default: a built-in set)",
    )
    group.add_argument("--threads", type=int, default=None, help="CPU threads for model math (default: all cores)")
    group.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="padded tokens per batch (default: 1024 on CPUs, 32768 on GPUs)",
    )
    group.add_argument("--max-batch-size", type=int, default=None, help="sequences per batch (default: 256)")


def _directory(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path.resolve()


def _add_production_options(parser: argparse.ArgumentParser) -> None:
    """Who may change models, what they may load, and how the server stops (README: "In production")."""
    access = parser.add_argument_group("admin API and weights")
    access.add_argument(
        "--admin-api-key",
        default=os.environ.get("RERANKD_ADMIN_API_KEY"),
        metavar="KEY",
        help="turn the admin API (PUT/DELETE of models and adapters) on, behind this bearer token "
        "(env RERANKD_ADMIN_API_KEY); it also passes wherever --api-key is asked for",
    )
    access.add_argument(
        "--admin-api",
        action="store_true",
        help="turn the admin API on without a key of its own (it then takes what other routes take: "
        "--api-key, or nothing); off by default",
    )
    access.add_argument(
        "--model-root",
        action="append",
        type=_directory,
        default=[],
        metavar="DIR",
        help="load local model and adapter directories only from under DIR (repeatable; symlinks and '..' "
        "are resolved first)",
    )
    access.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load pickled PyTorch weights (pytorch_model.bin, adapter_model.bin); by default only "
        "safetensors are loaded, because unpickling can run code",
    )
    stopping = parser.add_argument_group("readiness and shutdown")
    stopping.add_argument(
        "--ready-when",
        choices=["all", "any"],
        default="all",
        help="/readyz is 200 once all (default) or any of the start-up models (not --lazy) serve",
    )
    stopping.add_argument(
        "--drain-timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, in-flight requests get this long to finish; the rest are cancelled "
        "(503 SHUTTING_DOWN) and the process exits 0",
    )


def _add_admission_options(parser: argparse.ArgumentParser) -> None:
    """Admission control and per-request limits (README "Admission control")."""
    group = parser.add_argument_group("admission control and per-request limits")
    group.add_argument(
        "--max-queued-tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="tokens waiting per model before new requests get 429 QUEUE_FULL with Retry-After "
        "(default: 30 s of work at the model's measured speed, at least 128 full batches)",
    )
    group.add_argument("--max-items", type=positive_int, default=10_000, help="items accepted in one request")
    group.add_argument(
        "--max-text-bytes",
        type=_size,
        default=16 * 1024 * 1024,
        metavar="SIZE",
        help="largest text (query or item, UTF-8) accepted, e.g. 1MB; 413 beyond (default 16MiB)",
    )
    group.add_argument(
        "--max-tokens-per-request",
        type=positive_int,
        default=2_000_000,
        metavar="N",
        help="tokens one request may make the model read (windows and special tokens included); 413 beyond",
    )
    group.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body accepted")


def _add_observability_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logs and memory")
    group.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text: one readable line per record (default); json: one JSON object per line, for log pipelines",
    )
    group.add_argument(
        "--idle-trim-seconds",
        type=seconds,
        default=1.0,
        metavar="S",
        help="give freed memory back to the OS after S seconds without requests (0: never)",
    )
    group.add_argument(
        "--malloc-arenas",
        type=int,
        default=2,
        metavar="N",
        help="glibc malloc arenas (fewer: less memory kept after a burst; 0: glibc's default, 8 per core). "
        "MALLOC_ARENA_MAX in the environment wins",
    )


def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    """`rerankd serve --ray` (README "Scale out on Ray Serve"; needs the `[ray]` extra)."""
    group = parser.add_argument_group("scale out on Ray Serve (pip install -e '.[ray]')")
    group.add_argument(
        "--ray", action="store_true", help="serve through engine replicas on a Ray cluster (started here or joined)"
    )
    group.add_argument("--replicas", type=positive_int, default=None, metavar="N", help="engine replicas (1)")
    group.add_argument(
        "--max-replicas", type=positive_int, default=None, metavar="N", help="autoscale up to N on ongoing requests"
    )
    group.add_argument(
        "--ray-address", default=None, metavar="ADDR", help="join this cluster (auto, HOST:6379, ray://...)"
    )
    group.add_argument("--replica-cpus", type=float, default=1.0, metavar="N", help="CPUs per replica (1)")
    group.add_argument("--replica-gpus", type=float, default=0.0, metavar="N", help="GPUs per replica (0)")
    group.add_argument(
        "--model-slots",
        type=positive_int,
        default=None,
        metavar="N",
        help="models one replica keeps loaded (default: --max-loaded-models, else every --model)",
    )
    group.add_argument(
        "--shard-items",
        type=int,
        default=1000,
        metavar="N",
        help="split requests with more items than N across replicas (0: never)",
    )


def _engine_settings(args: argparse.Namespace) -> dict:
    """The `RegistrySettings` fields that the engine options (`_add_engine_options`) set."""
    return {
        "device": args.device,
        "dtype": args.dtype,
        "precision": args.precision,
        "backend": args.backend,
        "cache_dir": args.cache_dir,
        "calibration_data": args.calibration_data,
    }


def _scheduler_config(args: argparse.Namespace):
    from rerankd.engine.scheduler import SchedulerConfig

    overrides = {}
    if args.max_batch_tokens:
        overrides["max_batch_tokens"] = args.max_batch_tokens
    if args.max_batch_size:
        overrides["max_batch_size"] = args.max_batch_size
    for name in ("max_queued_tokens", "max_tokens_per_request"):
        if getattr(args, name, None):
            overrides[name] = getattr(args, name)
    return SchedulerConfig(**overrides)


class _LazyAction(argparse.Action):
    """`--lazy` marks the `--model` just before it: registered now, loaded on its first request."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=[], **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        models = getattr(namespace, "model", None) or []
        if not models:
            parser.error("--lazy applies to the --model before it: write --model NAME=SOURCE --lazy")
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), len(models) - 1])


def _size(text: str) -> int:
    from rerankd.registry.budget import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rerankd",
        description="Self-hosted inference engine for rerankers.\n\nThe commands need the engine: "
        f"{SERVER_INSTALL}\n(a bare `pip install rerankd` is the Python SDK alone).",
    )
    parser.add_argument("--version", action="version", version=f"rerankd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser(
        "serve",
        help="start the HTTP server",
        description="Serve rerankers over HTTP (SIE, Cohere/Jina and TEI routes).",
        epilog=environment_epilog(
            ("RERANKD_API_KEY", "--api-key when the flag is not given"),
            ("RERANKD_ADMIN_API_KEY", "--admin-api-key when the flag is not given"),
            ("MALLOC_ARENA_MAX", "glibc's malloc arenas; wins over --malloc-arenas"),
            *HF_ENVIRONMENT,
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for all interfaces)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="[NAME=]SOURCE",
        help="model to serve (repeatable). SOURCE: Hugging Face id, local directory, or installed "
        "model package. Default: sentence-transformers/all-MiniLM-L6-v2 from the [demo] extra.",
    )
    serve.add_argument(
        "--lazy",
        action=_LazyAction,
        dest="lazy_models",
        help="after a --model: register it but load it on its first request (repeatable, per model)",
    )
    serve.add_argument(
        "--allow-download",
        action="store_true",
        help="let catalog ids never registered load on demand, and run-time sources (PUT) download, from the hub",
    )
    serve.add_argument(
        "--load-timeout",
        type=float,
        default=60.0,
        help="seconds a request waits for its model to load before 503 MODEL_LOADING (the load goes on)",
    )
    serve.add_argument(
        "--max-loaded-models",
        type=positive_int,
        default=None,
        metavar="N",
        help="at most N models in memory; loading another evicts the least recently used idle one",
    )
    serve.add_argument(
        "--memory-budget",
        type=_size,
        default=None,
        metavar="SIZE",
        help="weights of loaded models and adapters stay under SIZE (e.g. 6GB, 512MiB); "
        "least recently used idle ones are evicted to fit",
    )
    _add_admission_options(serve)
    serve.add_argument(
        "--api-key",
        default=os.environ.get("RERANKD_API_KEY"),
        metavar="KEY",
        help="require this bearer token on every route but /healthz, /readyz, /health, /metrics, /openapi.json "
        "and /docs (env RERANKD_API_KEY)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="least severe log level shown",
    )
    _add_production_options(serve)
    _add_observability_options(serve)
    _add_engine_options(serve)
    _add_ray_options(serve)

    score = commands.add_parser(
        "score",
        help="score documents against a query locally, without a server",
        description="Load one model in this process, score the documents against the query, print JSON (best first).",
        epilog=environment_epilog(*HF_ENVIRONMENT),
    )
    score.add_argument("--model", required=True, metavar="[NAME=]SOURCE")
    score.add_argument("--query", required=True)
    score.add_argument("documents", nargs="+", help="documents to rank")
    score.add_argument("--raw-scores", action="store_true")
    score.add_argument("--allow-pickle", action="store_true", help="load pickled pytorch_model.bin weights")
    _add_engine_options(score)

    bench = commands.add_parser(
        "bench",
        help="measure throughput, latency and ranking agreement (engine, HTTP server, peer engines)",
        epilog=environment_epilog(
            ("RERANKD_BENCH_DATA", "--data when the flag is not given"),
            ("RERANKD_SHARED_DATA", "else TREC DL 2019 under $RERANKD_SHARED_DATA/trec-dl-2019 (or ../shared/data)"),
            ("RERANKD_PEERS_PYTHON", "--peers-python when the flag is not given"),
            *HF_ENVIRONMENT,
        ),
    )
    bench.add_argument(
        "--model",
        default=None,
        metavar="[NAME=]SOURCE",
        help="model to measure (default: a MiniLM-L6 cross-encoder built offline from the [demo] package)",
    )
    bench.add_argument(
        "--data",
        type=Path,
        default=None,
        help="TREC-style JSON or JSONL of {query, documents} (default: $RERANKD_BENCH_DATA, else TREC DL 2019 "
        "from $RERANKD_SHARED_DATA or ../shared/data)",
    )
    bench.add_argument("--documents", type=int, default=100, help="candidates per request")
    bench.add_argument("--requests", type=int, default=None, help="requests per mode (default: every query)")
    bench.add_argument("--concurrency", default="1,2,4,8", help="HTTP client concurrencies, e.g. 1,2,4,8")
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a short run for CI (under 2 minutes on 2 AVX2 cores): fewer requests, concurrency 1 and 4, "
        "exact only, st-torch-fp32 the only peer",
    )
    bench.add_argument(
        "--precisions",
        default=None,
        metavar="LIST",
        help="rerankd precisions to run, e.g. exact,fast (default: exact,fast; --quick: exact; --precision X: X)",
    )
    bench.add_argument(
        "--peers",
        default=None,
        metavar="LIST",
        help="peer engines: all, none, or a list of st-torch-fp32, st-onnx-fp32, st-onnx-int8, st-openvino, "
        "st-openvino-int8, st-torch-bf16 (default: all that can run here; --quick: st-torch-fp32)",
    )
    bench.add_argument(
        "--peers-python",
        type=Path,
        default=None,
        metavar="PATH",
        help="Python of the peers' venv (default: $RERANKD_PEERS_PYTHON, else .venv-peers/bin/python "
        "here or in the project root; built by benchmarks/make_peers_venv.sh)",
    )
    bench.add_argument("--no-baseline", action="store_true", help="run no peer engines (same as --peers none)")
    bench.add_argument("--no-http", action="store_true", help="skip the HTTP server modes")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for JSON, PNG and markdown")
    _add_engine_options(bench)
    bench.set_defaults(precision=None)  # unset: --precisions (or the run's default list) decides

    from rerankd.evaluation import command as evaluation
    from rerankd.finetune import command as finetune

    evaluation.add_arguments(
        commands.add_parser("eval", help="measure rerankers against relevance judgments (nDCG@10, MRR, significance)")
    )
    finetune.add_arguments(commands.add_parser("finetune", help="train a LoRA adapter on relevance judgments (PEFT)"))
    return parser


def _server_config(args: argparse.Namespace):
    """`rerankd serve`'s flags as the app's `ServerConfig` (the same for one process and for Ray replicas)."""
    from rerankd.api.app import DEFAULT_MODEL, ModelArg, ServerConfig
    from rerankd.api.common import ApiLimits
    from rerankd.registry.registry import RegistrySettings

    lazy = set(args.lazy_models)
    models = [ModelArg.parse(text, lazy=index in lazy) for index, text in enumerate(args.model or [DEFAULT_MODEL])]
    return ServerConfig(
        models=models,
        scheduler=_scheduler_config(args),
        registry=RegistrySettings(
            **_engine_settings(args),
            allow_download=args.allow_download,
            load_timeout=args.load_timeout,
            max_loaded_models=args.max_loaded_models,
            memory_budget=args.memory_budget,
            model_roots=tuple(args.model_root),
            allow_pickle=args.allow_pickle,
        ),
        limits=ApiLimits(
            max_items=args.max_items,
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            max_text_bytes=args.max_text_bytes,
        ),
        api_key=args.api_key,
        admin_key=args.admin_api_key or None,
        admin_api=args.admin_api,
        drain_timeout=args.drain_timeout,
        ready_when=args.ready_when,
        idle_trim_seconds=args.idle_trim_seconds or None,
    )


def _ray_options(args: argparse.Namespace):
    from rerankd.ray.options import RayOptions

    return RayOptions(
        replicas=args.replicas or 1,
        max_replicas=args.max_replicas,
        replica_cpus=args.replica_cpus,
        replica_gpus=args.replica_gpus,
        threads=args.threads,
        model_slots=args.model_slots,
        shard_items=args.shard_items,
        address=args.ray_address,
    )


def ray_serve_settings(flags: Sequence[str]):
    """(ServerConfig, RayOptions, host, port) from `rerankd serve` flags: the `serve run rerankd.ray:app` builder's."""
    args = build_parser().parse_args(["serve", *flags])
    return _server_config(args), _ray_options(args), args.host, args.port


def _serve(args: argparse.Namespace) -> int:
    from rerankd.api.app import create_app
    from rerankd.api.logs import configure_logging
    from rerankd.api.server import serve
    from rerankd.core.memory import limit_arenas
    from rerankd.models.runtime import configure_threads

    if args.malloc_arenas > 0 and "MALLOC_ARENA_MAX" not in os.environ:
        limit_arenas(args.malloc_arenas)  # before the tokenizer, compute and torch threads exist
    configure_logging(args.log_level, args.log_format)
    config = _server_config(args)
    if config.access.admin_enabled and not args.model_root:
        logging.getLogger("rerankd").warning(
            "the admin API is on without --model-root: PUT may load any directory this process can read"
        )
    if args.ray:
        try:
            from rerankd.ray.launch import serve_on_ray
        except ImportError as error:
            print(f"rerankd serve --ray needs Ray Serve: pip install -e '.[ray]' ({error})", file=sys.stderr)
            return 2
        return serve_on_ray(config, _ray_options(args), args.host, args.port)
    configure_threads(args.threads)
    serve(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
    # Everything that needed closing has been closed by the drain and the lifespan (requests
    # answered, models unloaded, threads stopped). The interpreter's own teardown would now
    # garbage-collect the whole heap (torch, tokenizers, the batches of cancelled requests):
    # 1-3 s on a busy 2-core machine, past the "drain timeout + 2 s" an orchestrator is promised.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _score(args: argparse.Namespace) -> int:
    import asyncio

    from rerankd.api.app import ModelArg
    from rerankd.api.service import Service
    from rerankd.core.types import Item, ScoreOptions, ScoreRequest
    from rerankd.models.runtime import configure_threads
    from rerankd.registry.registry import RegistrySettings

    configure_threads(args.threads)
    # stdout is the JSON answer; stderr says which model loads and how long it took (a big one: minutes).
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("rerankd.registry").setLevel(logging.INFO)
    model = ModelArg.parse(args.model)

    async def run() -> dict:
        settings = RegistrySettings(
            **_engine_settings(args),
            allow_pickle=args.allow_pickle,
        )
        service = Service.create(settings, _scheduler_config(args))
        service.registry.register(model.name, model.source)
        try:
            await service.registry.load(model.name)
            result = await service.engine.score(
                ScoreRequest(
                    model=model.name,
                    query=Item(text=args.query),
                    items=[Item(text=text) for text in args.documents],
                    options=ScoreOptions(raw_scores=args.raw_scores),
                )
            )
        finally:
            await service.close()
        return {
            "model": result.model,
            "scores": [{"index": e.index, "score": e.score, "text": args.documents[e.index]} for e in result.entries],
        }

    print(json.dumps(asyncio.run(run()), indent=2, ensure_ascii=False))
    return 0


def _bench_list(text: str | None, default: list[str], known: Sequence[str], what: str) -> list[str]:
    """A comma list of `known` names ("all" and "none" allowed); `default` when not given."""
    if text is None:
        return default
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(known)
    if names == ["none"]:
        return []
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"rerankd bench: unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _bench(args: argparse.Namespace) -> int:
    from rerankd.api.app import ModelArg
    from rerankd.bench.checkpoints import cached_minilm_cross_encoder
    from rerankd.bench.config import PRECISIONS, QUICK, BenchConfig, RunSize
    from rerankd.bench.data import default_data_path, load_queries
    from rerankd.bench.markdown import write_markdown
    from rerankd.bench.peers import PEERS
    from rerankd.bench.progress import Progress
    from rerankd.bench.report import table, write_json, write_plot
    from rerankd.bench.runner import run_bench
    from rerankd.models.runtime import configure_threads

    configure_threads(args.threads)
    logging.basicConfig(level="WARNING")
    model = ModelArg.parse(args.model) if args.model else ModelArg("minilm", str(cached_minilm_cross_encoder()))
    data_path = args.data or default_data_path()
    if data_path is None:
        print("no benchmark data: pass --data (TREC DL 2019 lives in ../shared/data)", file=sys.stderr)
        return 2
    queries = load_queries(data_path, args.documents)
    size = QUICK if args.quick else RunSize(len(queries), [int(c) for c in args.concurrency.split(",") if c])
    default_precisions = [args.precision] if args.precision else (["exact"] if args.quick else list(PRECISIONS))
    precisions = _bench_list(args.precisions, default_precisions, PRECISIONS, "precision")
    default_peers = ["st-torch-fp32"] if args.quick else list(PEERS)
    peers = [] if args.no_baseline else _bench_list(args.peers, default_peers, PEERS, "peer")
    config = BenchConfig(
        model_name=model.name,
        model_source=model.source,
        queries=queries,
        requests=args.requests or size.requests,
        concurrencies=size.concurrencies,
        engine_concurrencies=size.engine_levels(),
        scale_items=size.scale_items,
        scale_repeats=size.scale_repeats,
        device=args.device,
        dtype=args.dtype,
        precisions=precisions,
        backend=args.backend,
        cache_dir=args.cache_dir,
        calibration_data=args.calibration_data,
        threads=args.threads,
        scheduler=_scheduler_config(args),
        peers=peers,
        peers_python=args.peers_python,
        http=not args.no_http,
        warmup=size.warmup,
        warmup_documents=size.warmup_documents,
    )
    report = run_bench(config, Progress())
    args.out.mkdir(parents=True, exist_ok=True)
    print(table(report))
    print(f"\nwrote {write_json(report, args.out / 'bench.json')}")
    print(f"wrote {write_markdown(report, args.out / 'bench.md')}")
    plot = write_plot(report, args.out / "bench.png")
    if plot:
        print(f"wrote {plot}")
    return 0


def _server_missing(argv: Sequence[str]) -> str | None:
    """One line for a command run from a bare `pip install rerankd` (no engine) instead of a traceback."""
    command = next((word for word in argv if not word.startswith("-")), None)
    if command is None or {"-h", "--help"} & set(argv):
        return None  # the parser answers: --help, --version and usage errors need no engine
    missing = missing_server_packages()
    if not missing:
        return None
    named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return f"rerankd {command} needs the server: {SERVER_INSTALL} (not installed: {named})"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    refusal = _server_missing(argv)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if getattr(args, "precision", "exact") == "fast" and args.dtype not in ("auto", "float32", "fp32"):
        parser.error(f"--precision fast chooses the numerics itself: drop --dtype {args.dtype}")
    if args.command == "serve":
        if not args.ray and (args.replicas or args.max_replicas or args.ray_address or args.model_slots):
            parser.error("--replicas, --max-replicas, --ray-address and --model-slots apply with --ray")
        return _serve(args)
    if args.command == "score":
        return _score(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "eval":
        from rerankd.evaluation import command as evaluation

        return evaluation.run(args)
    if args.command == "finetune":
        from rerankd.finetune import command as finetune

        return finetune.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
