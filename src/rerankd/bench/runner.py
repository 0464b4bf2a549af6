"""`rerankd bench`: the engine in-process and the HTTP server at each precision, and the engines users
would pick instead (sentence-transformers with its torch, ONNX and OpenVINO backends), on the same
model and the same 100-candidate requests, each row with its agreement with the fp32 reference."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rerankd.bench.agreement import agreement
from rerankd.bench.config import BenchConfig
from rerankd.bench.engine_modes import engine_modes
from rerankd.bench.http_modes import http_modes
from rerankd.bench.machine import machine_info
from rerankd.bench.measure import ModeResult, Target
from rerankd.bench.peers import REFERENCE, peer_modes
from rerankd.bench.progress import QUIET, Progress
from rerankd.bench.targets import compute_targets
from rerankd.core.cpu import detect
from rerankd.engine.scheduler import default_batch_tokens
from rerankd.models.execution import REDUCED_PRECISION_BATCH_TOKENS
from rerankd.models.hf import read_config
from rerankd.models.runtime import resolve_device, resolve_placement


@dataclass
class BenchReport:
    machine: dict
    config: dict
    results: list[ModeResult]
    scales: dict[str, dict]  # per precision
    targets: list[Target]
    skipped: dict[str, str] = field(default_factory=dict)  # peer -> why it did not run

    @property
    def scale(self) -> dict:
        """The first precision's scale check (what one-precision callers read)."""
        return next(iter(self.scales.values()), {})

    def to_json(self) -> dict:
        return {
            "machine": self.machine,
            "config": self.config,
            "results": [result.summary() for result in self.results],
            "scale": self.scale,
            "scales": self.scales,
            "targets": [target.summary() for target in self.targets],
            "skipped_peers": self.skipped,
        }


def attach_agreement(results: list[ModeResult]) -> str | None:
    """Give every row its agreement with the reference row: st-torch-fp32, else rerankd's first exact row."""
    reference = next((r for r in results if r.mode == "peer" and r.name == REFERENCE), None)
    if reference is None:
        reference = next((r for r in results if r.precision == "exact"), None)
    if reference is None:
        return None
    for row in results:
        row.agreement = agreement(reference.scores, row.scores, reference.label)
    return reference.label


def run_bench(config: BenchConfig, progress: Progress = QUIET) -> BenchReport:
    """Every mode in one run: engine first per precision (it also counts each request's tokens), peers, HTTP."""
    from rerankd.registry.sources import resolve_source

    model_dir = resolve_source(config.model_source, allow_download=False)
    model_config = read_config(model_dir)
    device = resolve_device(config.device)
    cpu = detect()
    progress.note(f"CPU: {cpu.describe()}")
    machine = machine_info(resolve_placement(config.dtype, device), progress)
    results: list[ModeResult] = []
    scales: dict[str, dict] = {}
    tokens_by_query: dict[str, int] = {}
    for precision in config.precisions:
        rows, scales[precision], tokens = asyncio.run(engine_modes(config, precision, model_config, progress))
        results += rows
        tokens_by_query = tokens_by_query or tokens  # real tokens do not depend on numerics
    peers, skipped = peer_modes(config, model_dir, tokens_by_query, model_config, cpu, progress)
    results += peers
    if config.http:
        with tempfile.TemporaryDirectory(prefix="rerankd-bench-") as workdir:
            for precision in config.precisions:
                results += http_modes(config, precision, model_config, Path(workdir), progress)
    reference = attach_agreement(results)
    settings = {
        "model": config.model_name,
        "source": config.model_source,
        "requests_per_mode": config.requests,
        "documents_per_request": len(config.queries[0].documents),
        "concurrencies": config.concurrencies,
        "precisions": config.precisions,
        "backend": config.backend,
        "peers": config.peers,
        "agreement_reference": reference,
        "max_batch_tokens": config.scheduler.max_batch_tokens or default_batch_tokens(device),
        # a `fast` model on reduced-precision OpenVINO batches more unless --max-batch-tokens says otherwise
        "max_batch_tokens_reduced_precision": config.scheduler.max_batch_tokens or REDUCED_PRECISION_BATCH_TOKENS,
        "max_batch_size": config.scheduler.max_batch_size,
    }
    targets = compute_targets(results, scales, machine)
    return BenchReport(machine, settings, results, scales, targets, skipped)
