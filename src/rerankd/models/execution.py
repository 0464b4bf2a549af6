"""How an encoder family's network runs on a CPU: torch or OpenVINO, exact or calibrated `fast`.

`--precision exact` (the default) keeps the reference scores. On a CPU with OpenVINO installed
the network is compiled to OpenVINO in fp32 (1.1-1.2x torch eager on the benchmark's MiniLM:
fused attention, layer norms and GELU, one C++ call per batch instead of hundreds of Python
module calls) and kept only if it reproduces torch on a calibration query within 1e-5 and is
not slower there; otherwise torch runs it.

`--precision fast` scores the calibration set with every numerics this CPU runs natively --
OpenVINO fp32, bf16 (only where AMX or AVX-512-BF16 make it native: emulated bf16 is slower
than fp32), static int8 (NNCF, calibrated on the same traffic) for all projections or only the
feed-forward blocks, torch's bf16 feed-forward blocks -- times each, measures its ranking
agreement with torch fp32, and keeps the fastest that agrees at least as well as the floor:
what the fastest reduced precision users would otherwise pick keeps on this CPU
(`agreement_floor`: plain OpenVINO bf16 with AMX, else about what sentence-transformers' int8
OpenVINO and ONNX models reach; README "Numerics"). The choice is cached (keyed by checkpoint,
tokenizer, calibration texts, CPU and versions), so later starts only compile the chosen network.

LoRA adapters always run on the torch network (`Family.eager`), whichever backend serves the
base model. Other families and GPUs keep their own paths.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerankd.core.cpu import CpuInfo, detect
from rerankd.models import compile_cache, openvino_runtime
from rerankd.models.base import Family
from rerankd.models.calibration import Agreement, CalibrationSet, Runner, agreement, read_queries, texts_digest
from rerankd.models.graphs import encoder_layers
from rerankd.models.runtime import Placement

log = logging.getLogger(__name__)

PRECISIONS = ("exact", "fast")
# Families whose network is a `graph` of token tensors (models/graphs.py), which a backend can compile.
COMPILED_FAMILIES = ("cross-encoder", "bi-encoder")
BACKENDS = ("auto", "torch", "openvino")
# A compiled network is exact when no score of the check moves by more than this.
EXACT_TOLERANCE = 1e-5
# The least agreement `fast` keeps on the calibration set (per-query Kendall tau mean, top-10 overlap);
# `agreement_floor` raises it where the fastest reduced precision of the peers agrees better.
FAST_MIN_TAU = 0.9
FAST_MIN_TOP10 = 0.9
# OpenVINO serves an exact model unless it was this much slower than torch on the check.
SLOWER_TOLERATED = 1.1
# Seconds of torch fp32 work the fast calibration aims for (fewer queries for bigger models).
CALIBRATION_SECONDS = 12.0
MIN_CALIBRATION_QUERIES = 4
# Padded tokens per batch for a reduced-precision OpenVINO network (fp32 keeps the CPU default of
# 1,024, where it measured the same or better). MiniLM-L6 bf16 on 2 Sapphire Rapids cores: the
# HTTP server at c=8 on 24 TREC queries 241 -> 265 pairs/s; the network alone on all 43 454 -> 461
# (benchmarks/bf16_batching_spread.py); the same scores either way.
REDUCED_PRECISION_BATCH_TOKENS = 2048
# Passing `fast` candidates this close in speed to the fastest are a tie, decided by agreement.
SPEED_TIE = 0.05
# Bump when the candidates or how they are judged change (invalidates cached choices).
CHOICE_VERSION = 6


@dataclass(frozen=True)
class ExecutionOptions:
    """Process-wide settings (`--precision`, `--backend`, `--cache-dir`, `--calibration-data`)."""

    precision: str = "exact"
    backend: str = "auto"
    cache_dir: Path | None = None
    calibration_data: Path | None = None
    min_tau: float = FAST_MIN_TAU
    min_top10: float = FAST_MIN_TOP10

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {BACKENDS}")


@dataclass
class Candidate:
    """One way of running the graph: how to build it, and how to undo what building changed."""

    name: str
    backend: str
    numerics: str
    build: Callable[[], Runner]
    exact: bool = False
    undo: Callable[[], None] = lambda: None
    compiled_bytes: Callable[[], int] = lambda: 0


@dataclass
class Trial:
    name: str
    pairs_per_second: float
    agreement: Agreement | None = None
    error: str | None = None
    passed: bool = False

    def summary(self) -> dict:
        data: dict[str, Any] = {"name": self.name, "pairs_per_second": round(self.pairs_per_second, 1)}
        if self.agreement is not None:
            data["agreement"] = self.agreement.summary()
        if self.error:
            data["error"] = self.error
        data["passed"] = self.passed
        return data


@dataclass
class Plan:
    """What was chosen, and the evidence: GET /v1/models' `execution`."""

    precision: str
    backend: str = "torch"
    numerics: str = "fp32"
    first_token_last_layer: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "precision": self.precision,
            "backend": self.backend,
            "numerics": self.numerics,
            "first_token_last_layer": self.first_token_last_layer,
            **self.details,
        }


def likely_compiled(family: str, placement: Placement, options: ExecutionOptions) -> bool:
    """Whether a load will probably hold a compiled copy of the weights beside torch's (for the budget).

    Known before the load: an encoder family in fp32 on a CPU, a backend that may be OpenVINO,
    OpenVINO installed. The copy is then about the size of the weights (fp32 exact), less in int8.
    """
    return (
        family in COMPILED_FAMILIES
        and placement.device.type == "cpu"
        and placement.dtype == torch.float32
        and placement.feed_forward_dtype is None
        and options.backend != "torch"
        and openvino_runtime.available()
    )


def configure_execution(family: Family, model_dir: Path, options: ExecutionOptions) -> None:
    """Choose how `family`'s graph runs and set `family.compiled` / `family.execution` accordingly."""
    placement = family.placement
    plan = Plan(options.precision, numerics=placement.dtype_name)
    plan.first_token_last_layer = bool(getattr(family, "first_token_only", False))
    eligible = (
        family.graph is not None
        and placement.device.type == "cpu"
        and placement.dtype == torch.float32
        and placement.feed_forward_dtype is None
    )
    if not eligible:
        if options.precision == "fast" and placement.device.type == "cpu":
            plan.details["note"] = "fast precision covers encoder families in fp32 weights; this one runs as is"
        family.execution = plan.summary()
        return
    if options.backend == "openvino" and not openvino_runtime.available():
        raise RuntimeError("--backend openvino, but OpenVINO does not import here (pip install openvino)")
    compiler = Compiler(family, model_dir, options)
    if options.precision == "exact":
        _choose_exact(family, compiler, options, plan)
    else:
        _choose_fast(family, compiler, options, plan)
    family.execution = plan.summary()
    log.info("model '%s': %s", family.spec.name, describe(family.execution))


def eager(family: Family) -> Runner:
    """The family's torch graph as a runner (named tensors in a dict)."""
    graph = family.graph
    assert graph is not None
    return lambda inputs: graph(**inputs)


def describe(execution: dict) -> str:
    text = f"{execution.get('precision')} precision, {execution.get('backend')} {execution.get('numerics')}"
    if execution.get("first_token_last_layer"):
        text += ", last layer for the first token only"
    return text


# ------------------------------------------------------------------------------------------ exact
def _choose_exact(family: Family, compiler: Compiler, options: ExecutionOptions, plan: Plan) -> None:
    """OpenVINO fp32 if it reproduces torch on a calibration query and is not slower; else torch.

    The verdict is cached per compiled graph and CPU, so a later load only compiles.
    """
    if options.backend == "torch" or not openvino_runtime.available():
        return
    candidate = compiler.openvino("fp32")
    verdict_path = compiler.verdict_path()
    cached = compile_cache.read_json(verdict_path)
    if cached is not None:
        plan.details["check"] = {**cached["check"], "cached": True}
        if cached["backend"] == "openvino":
            _apply(family, candidate, candidate.build(), plan)
        return
    try:
        runner = candidate.build()
    except Exception as error:  # a conversion OpenVINO cannot do: torch serves, and says why
        log.warning("model '%s': OpenVINO could not compile it (%s); torch runs it", family.spec.name, error)
        plan.details["openvino_error"] = f"{type(error).__name__}: {error}"[:300]
        return
    check = compiler.calibration_set(check=True)
    reference, torch_seconds = check.run(eager(family))
    scores, openvino_seconds = check.run(runner)
    found = agreement(reference, scores)
    verdict = {
        "pairs": check.pairs,
        "max_delta": found.max_delta,
        "torch_pairs_per_second": round(check.pairs / torch_seconds, 1),
        "openvino_pairs_per_second": round(check.pairs / openvino_seconds, 1),
    }
    exact = found.max_delta <= EXACT_TOLERANCE
    faster = openvino_seconds <= torch_seconds * SLOWER_TOLERATED
    backend = "openvino" if exact and (faster or options.backend == "openvino") else "torch"
    if not exact:
        log.warning(
            "model '%s': OpenVINO fp32 moved scores by %.2g (> %g); torch runs it",
            family.spec.name,
            found.max_delta,
            EXACT_TOLERANCE,
        )
    compile_cache.write_json(verdict_path, {"backend": backend, "check": verdict})
    plan.details["check"] = {**verdict, "cached": False}
    if backend == "openvino":
        _apply(family, candidate, runner, plan)


# ------------------------------------------------------------------------------------------- fast
def _choose_fast(family: Family, compiler: Compiler, options: ExecutionOptions, plan: Plan) -> None:
    candidates = compiler.fast_candidates()
    choice_path = compiler.choice_path(candidates)
    cached = compile_cache.read_json(choice_path)
    by_name = {candidate.name: candidate for candidate in candidates}
    if cached and cached.get("chosen") in by_name:
        chosen = by_name[cached["chosen"]]
        if chosen.name != "torch fp32":
            _apply(family, chosen, chosen.build(), plan)
        plan.details["calibration"] = {**cached["calibration"], "cached": True}
        return
    calibration = compiler.calibration_set()
    reference, seconds = calibration.run(eager(family))
    trials = {"torch fp32": Trial("torch fp32", calibration.pairs / seconds, agreement(reference, reference), None)}
    runners: dict[str, Runner] = {}
    for candidate in candidates:
        if candidate.name == "torch fp32":
            continue
        try:
            runner = candidate.build()
            scores, seconds = calibration.run(runner)
        except Exception as error:  # one numerics failing must not fail the load
            candidate.undo()
            trials[candidate.name] = Trial(candidate.name, 0.0, error=f"{type(error).__name__}: {error}"[:300])
            continue
        trials[candidate.name] = Trial(candidate.name, calibration.pairs / seconds, agreement(reference, scores))
        if candidate.backend == "openvino":
            runners[candidate.name] = runner
        candidate.undo()  # torch-side changes come back until the winner is applied
    floor = agreement_floor(compiler.cpu, trials, options)
    for trial in trials.values():
        found = trial.agreement
        trial.passed = found is not None and (
            found.max_delta <= EXACT_TOLERANCE or found.at_least(floor.tau_mean, floor.top10)
        )
    _retime_leaders(calibration, trials, runners, by_name)
    winner = _winner([trial for trial in trials.values() if trial.passed])
    chosen = by_name[winner.name]
    if chosen.name != "torch fp32":
        _apply(family, chosen, runners.get(chosen.name) or chosen.build(), plan)
    summary = {
        "queries": len(calibration.prepared),
        "pairs": calibration.pairs,
        "texts": "built-in" if options.calibration_data is None else str(options.calibration_data),
        "floor": floor.summary(),
        "trials": [trial.summary() for trial in trials.values()],
    }
    plan.details["calibration"] = {**summary, "cached": False}
    compile_cache.write_json(choice_path, {"chosen": chosen.name, "calibration": summary})


def _winner(passed: list[Trial]) -> Trial:
    """The fastest passing trial; among those within `SPEED_TIE` of it, the one that ranks closest to fp32.

    The calibration set is a few hundred pairs on a possibly shared machine: speeds a few percent
    apart are a tie, and a tie goes to fidelity.
    """
    fastest = max(trial.pairs_per_second for trial in passed)
    tied = [trial for trial in passed if trial.pairs_per_second >= fastest * (1 - SPEED_TIE)]
    return max(tied, key=lambda trial: (_tau(trial), trial.pairs_per_second))


def _tau(trial: Trial) -> float:
    return trial.agreement.tau_mean if trial.agreement is not None else 0.0


@dataclass(frozen=True)
class Floor:
    """The agreement with torch fp32 a `fast` candidate must keep on the calibration set, and why."""

    tau_mean: float
    top10: float
    source: str

    def summary(self) -> dict:
        return {"tau_mean": round(self.tau_mean, 6), "top10": round(self.top10, 6), "from": self.source}


def agreement_floor(cpu: CpuInfo, trials: dict[str, Trial], options: ExecutionOptions) -> Floor:
    """What the fastest reduced precision users would otherwise pick keeps on this CPU.

    With AMX, bf16 is that precision: OpenVINO's default inference precision there, and the
    fastest of the peers' reduced modes (the benchmark's MiniLM on 2 Sapphire Rapids cores:
    sentence-transformers' OpenVINO backend 254 pairs/s, its static int8 model 231). So `fast`
    must rank at least as close to fp32 as plain OpenVINO bf16 does, measured here on the same
    calibration set (int8 schemes, at tau ~0.95, then lose to bf16 itself). Without AMX, int8 is
    the peers' fastest (AVX-512-VNNI without AMX: 136 against 101 for bf16; AVX2: no native
    bf16), and the floor is `options.min_tau` / `options.min_top10`, about what their int8
    models keep.
    """
    constant = Floor(options.min_tau, options.min_top10, "int8 peers (constant)")
    bf16 = trials.get("openvino bf16")
    if not cpu.amx or bf16 is None or bf16.agreement is None:
        return constant
    found = bf16.agreement
    return Floor(max(found.tau_mean, options.min_tau), max(found.top10, options.min_top10), "openvino bf16 (AMX)")


def _retime_leaders(
    calibration: CalibrationSet, trials: dict[str, Trial], runners: dict[str, Runner], candidates: dict[str, Candidate]
) -> None:
    """Time the two fastest passing candidates once more, alternately, and keep each one's best.

    One timed pass each is enough to rule most out; between close leaders a moment of
    contention on a shared machine could decide, so they get a second look.
    """
    leaders = sorted((t for t in trials.values() if t.passed), key=lambda t: -t.pairs_per_second)[:2]
    for trial in leaders:
        candidate = candidates[trial.name]
        runner = runners.get(trial.name) or candidate.build()  # torch ones are rebuilt, then undone
        try:
            _, seconds = calibration.run(runner)
        finally:
            if candidate.backend == "torch":
                candidate.undo()
        trial.pairs_per_second = max(trial.pairs_per_second, calibration.pairs / seconds)


def _apply(family: Family, candidate: Candidate, runner: Runner, plan: Plan) -> None:
    if candidate.backend == "openvino":
        family.compiled = runner
        if not candidate.exact:
            family.batch_tokens = REDUCED_PRECISION_BATCH_TOKENS
            plan.details["batch_tokens"] = REDUCED_PRECISION_BATCH_TOKENS
    else:
        candidate.build()  # torch-side numerics change the network itself (and stay)
    plan.backend = candidate.backend
    plan.numerics = candidate.numerics
    plan.details["compiled_bytes"] = candidate.compiled_bytes()


# --------------------------------------------------------------------------------------- compiler
class Compiler:
    """Builds (or reads from the cache) each candidate network of one family."""

    def __init__(self, family: Family, model_dir: Path, options: ExecutionOptions) -> None:
        self.family = family
        self.options = options
        self.cpu: CpuInfo = detect()
        self.threads = torch.get_num_threads()
        self.queries = read_queries(options.calibration_data)
        self.root = compile_cache.cache_root(options.cache_dir)
        self.digest = compile_cache.checkpoint_digest(model_dir)
        self._calibration: CalibrationSet | None = None
        self._check: CalibrationSet | None = None
        self._example: dict[str, torch.Tensor] | None = None
        self._fp32_model: Any = None

    @property
    def graph_key(self) -> str:
        import transformers

        family = self.family
        return compile_cache.key(
            compile_cache.GRAPH_VERSION,
            self.digest,
            family.kind,
            getattr(family, "pooling", None),
            getattr(family, "first_token_only", False),
            self.input_names(),
            transformers.__version__,
            openvino_runtime.version(),
        )

    def input_names(self) -> list[str]:
        return list(self.example().keys())

    def example(self) -> dict[str, torch.Tensor]:
        """Two rows of different lengths: the trace must see padding, or the mask could be folded away."""
        if self._example is None:
            batch = self.calibration_set(check=True).batches[0][1]
            real = batch["attention_mask"][0].bool()
            ids = batch["input_ids"][0][real].tolist()
            rows = [ids, ids[: max(2, len(ids) // 2)]]
            tags = None
            if "token_type_ids" in batch:
                types = batch["token_type_ids"][0][real].tolist()
                tags = [types, types[: len(rows[1])]]
            self._example = self.family.collate(rows, tags)
        return self._example

    def calibration_set(self, check: bool = False) -> CalibrationSet:
        if check:
            if self._check is None:
                self._check = CalibrationSet(self.family, self.queries[:1])
            return self._check
        if self._calibration is None:
            _, seconds = self.calibration_set(check=True).run(eager(self.family))
            per_query = max(seconds, 1e-6)
            count = int(np.clip(CALIBRATION_SECONDS / per_query, MIN_CALIBRATION_QUERIES, len(self.queries)))
            self._calibration = CalibrationSet(self.family, self.queries[:count])
        return self._calibration

    def verdict_path(self) -> Path:
        """Where the exactness check of the fp32 compiled graph is kept (per graph, CPU and threads)."""
        verdict = compile_cache.key(CHOICE_VERSION, self.graph_key, self.cpu.signature, self.threads)
        return self.root / "verdicts" / f"{verdict}.json"

    def choice_path(self, candidates: list[Candidate]) -> Path:
        choice = compile_cache.key(
            CHOICE_VERSION,
            self.graph_key,
            self.cpu.signature,
            self.threads,
            texts_digest(self.queries),
            self.options.min_tau,
            self.options.min_top10,
            [candidate.name for candidate in candidates],
        )
        return self.root / "choices" / f"{choice}.json"

    # -- candidates
    def fast_candidates(self) -> list[Candidate]:
        backend = self.options.backend
        rest = "bf16" if self.cpu.native_bf16 else "fp32"
        candidates = [Candidate("torch fp32", "torch", "fp32", lambda: eager(self.family), exact=True)]
        if backend != "torch" and openvino_runtime.available():
            candidates.append(self.openvino("fp32"))
            if self.cpu.native_bf16:
                candidates.append(self.openvino("bf16"))
                if getattr(self.family, "first_token_only", False):
                    candidates.append(self.openvino_bf16_fp32_tail())
            candidates.append(self.openvino_int8("all", rest))
            candidates.append(self.openvino_int8("feed-forward", rest))
        if backend != "openvino" and self.cpu.native_bf16:
            candidates.append(self.torch_bf16_feed_forward())
        return candidates

    def openvino(self, precision: str) -> Candidate:
        def build() -> Runner:
            compiled = openvino_runtime.compile_model(self.fp32_model(), precision, self.threads)
            return openvino_runtime.CompiledNetwork(compiled, self.input_names())

        return Candidate(
            f"openvino {precision}",
            "openvino",
            precision,
            build,
            exact=precision == "fp32",
            compiled_bytes=lambda: self._ir_bytes(self._fp32_path()),
        )

    def openvino_bf16_fp32_tail(self) -> Candidate:
        """bf16 up to the last layer's attention, its first-token feed-forward block and the head in fp32.

        The tail is where bf16 rounding reaches the score most directly, and with the first-token
        last layer it is a few products on one row per unit: MiniLM-L6 on TREC DL 2019, Kendall tau
        0.9884 -> 0.9939 against plain bf16, 510 against 485 pairs/s with widths padded to 16 (which
        cost plain bf16 agreement but not this; benchmarks/bf16_batching_spread.py). Offered where
        the first-token last layer is on; the graph is cut (`split_at_last_attention`) only when built.
        """

        def build() -> Runner:
            parts = openvino_runtime.split_at_last_attention(self.fp32_model())
            if parts is None:
                raise RuntimeError("the graph has no cut after the last layer's attention")
            body, tail = parts
            return openvino_runtime.ChainedNetwork(
                openvino_runtime.compile_model(body, "bf16", self.threads),
                openvino_runtime.compile_model(tail, "fp32", self.threads),
                self.input_names(),
                openvino_runtime.PADDED_WIDTH_MULTIPLE,
            )

        return Candidate(
            "openvino bf16+fp32 tail",
            "openvino",
            "bf16 (fp32 last feed-forward and head)",
            build,
            compiled_bytes=lambda: self._ir_bytes(self._fp32_path()),
        )

    def openvino_int8(self, scope: str, rest: str) -> Candidate:
        name = f"int8-v{CHOICE_VERSION}-{scope}-{texts_digest(self.queries)}.xml"
        path = self.root / "openvino" / self.graph_key / name

        def build() -> Runner:
            if path.exists():
                model = openvino_runtime.read(path)
            else:
                fp32 = self.fp32_model()
                ignored = self._kept_out_of_int8(openvino_runtime.matmul_names(fp32), scope)
                batches = [
                    {name: tensor.numpy() for name, tensor in inputs.items()}
                    for inputs in self.calibration_set().inputs()
                ]
                model = openvino_runtime.quantize_int8(fp32, batches, ignored)
                self._save(model, path)
            compiled = openvino_runtime.compile_model(model, rest, self.threads)
            multiple = openvino_runtime.PADDED_WIDTH_MULTIPLE
            return openvino_runtime.CompiledNetwork(compiled, self.input_names(), multiple)

        label = "int8" if scope == "all" else "int8 feed-forward"
        return Candidate(
            f"openvino {label}+{rest}",
            "openvino",
            f"{label} ({rest} elsewhere)",
            build,
            compiled_bytes=lambda: self._ir_bytes(path),
        )

    def _kept_out_of_int8(self, matmuls: list[str], scope: str) -> list[str]:
        """Products left in bf16/fp32: the head, the last layer and, for `feed-forward`, attention.

        The head (pooler, classifier) and the last layer (already cut to the first token,
        models/graphs.py) cost little, but in int8 they carry every earlier rounding straight
        into the score: on TREC DL 2019 with the benchmark's MiniLM cross-encoder, keeping them
        out raised per-query Kendall tau from 0.89 to 0.95 and top-10 overlap from 0.86 to 0.94
        for 6 % less speed (benchmarks/numerics_ndcg.py).
        """
        layers = encoder_layers(self.family.network)
        last = f".layer.{len(layers) - 1}." if layers else None
        kept = []
        for name in matmuls:
            in_layer = ".layer." in name
            if not in_layer or (last and last in name) or (scope == "feed-forward" and "attention" in name):
                kept.append(name)
        return kept

    def torch_bf16_feed_forward(self) -> Candidate:
        from rerankd.models.precision import restore, swap_feed_forward

        swapped: list = []

        def build() -> Runner:
            swapped[:] = swap_feed_forward(self.family.network, torch.bfloat16)  # type: ignore[arg-type]
            return eager(self.family)

        def undo() -> None:
            restore(self.family.network, swapped)  # type: ignore[arg-type]
            swapped.clear()

        return Candidate("torch bf16 feed-forward", "torch", "fp32+bf16-feed-forward", build, undo=undo)

    # -- the fp32 graph in OpenVINO, converted once per checkpoint and version
    def _fp32_path(self) -> Path:
        return self.root / "openvino" / self.graph_key / "fp32.xml"

    def fp32_model(self) -> Any:
        if self._fp32_model is None:
            path = self._fp32_path()
            if path.exists():
                self._fp32_model = openvino_runtime.read(path)
            else:
                began = time.perf_counter()
                self._fp32_model = openvino_runtime.convert(self.family.graph, self.example())  # type: ignore[arg-type]
                log.info("converted '%s' to OpenVINO in %.1f s", self.family.spec.name, time.perf_counter() - began)
                self._save(self._fp32_model, path)
        return self._fp32_model

    def _save(self, model: Any, path: Path) -> None:
        try:
            openvino_runtime.save(model, path)
        except OSError as error:
            log.warning("could not cache %s (%s): it is converted again next start", path, error)

    @staticmethod
    def _ir_bytes(path: Path) -> int:
        weights = path.with_suffix(".bin")
        return weights.stat().st_size if weights.exists() else 0
