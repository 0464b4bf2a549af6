"""The engines users would pick instead of rerankd, run by `peer_runner.py` in their own processes.

`st-torch-*` need only sentence-transformers and run with this interpreter (the `[bench]`
extra); the ONNX and OpenVINO backends need optimum, which needs transformers < 5, so they run
with a second virtual environment's Python (`benchmarks/make_peers_venv.sh`), found from
`--peers-python`, `$RERANKD_PEERS_PYTHON`, or `.venv-peers/bin/python` in the working directory
or the project root. Without it those peers are skipped, with a note.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rerankd.bench.config import BenchConfig
from rerankd.bench.measure import ModeResult
from rerankd.bench.modes import first_scores, mode_result
from rerankd.bench.progress import QUIET, Progress
from rerankd.core.cpu import CpuInfo
from rerankd.models.runtime import resolve_device

RUNNER = Path(__file__).with_name("peer_runner.py")
TORCH_PEERS = ("st-torch-fp32", "st-torch-bf16")
OPTIMUM_PEERS = ("st-onnx-fp32", "st-onnx-int8", "st-openvino", "st-openvino-int8")
PEERS = ("st-torch-fp32", *OPTIMUM_PEERS, "st-torch-bf16")
REFERENCE = "st-torch-fp32"  # the authors' reference: every row's agreement is measured against it
CALIBRATION_PASSAGES = 300  # sentence-transformers' default num_samples for static quantization
# The peers' environment: offline, and no telemetry (OpenVINO's, NNCF's, the hub's).
QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class PeerFailed(RuntimeError):
    """A peer's process exited without a result (its stderr's tail says why)."""


@dataclass
class PeerPlan:
    """Which peers run, with which interpreter; `skipped` says why the others do not."""

    runs: list[tuple[str, str]] = field(default_factory=list)  # (peer, python)
    skipped: dict[str, str] = field(default_factory=dict)


def project_root() -> Path:
    return Path(__file__).resolve().parents[3]


def find_peers_python(explicit: Path | None = None) -> Path | None:
    """`explicit`, else `$RERANKD_PEERS_PYTHON`, else `.venv-peers/bin/python` here or in the project root."""
    if explicit is not None:
        return explicit if explicit.exists() else None
    if os.environ.get("RERANKD_PEERS_PYTHON"):
        path = Path(os.environ["RERANKD_PEERS_PYTHON"])
        return path if path.exists() else None
    for root in (Path.cwd(), project_root()):
        candidate = root / ".venv-peers" / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def int8_onnx_config(cpu: CpuInfo) -> str:
    """What sentence-transformers' efficiency guide tells users to quantize for on this CPU."""
    flags = cpu.hardware_features  # ONNX Runtime picks its kernels from CPUID, whatever PyTorch's caps
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def plan_peers(wanted: list[str], cpu: CpuInfo, peers_python: Path | None) -> PeerPlan:
    """Assign each wanted peer an interpreter, or a reason it cannot run here."""
    plan = PeerPlan()
    own = sys.executable if importlib.util.find_spec("sentence_transformers") else None
    for peer in wanted:
        if peer == "st-torch-bf16" and not cpu.native_bf16:
            plan.skipped[peer] = "this CPU has no native bf16"
        elif peer in TORCH_PEERS and (own or peers_python):
            plan.runs.append((peer, own or str(peers_python)))
        elif peer in OPTIMUM_PEERS and peers_python:
            plan.runs.append((peer, str(peers_python)))
        elif peer in TORCH_PEERS:
            plan.skipped[peer] = "sentence-transformers is not installed (pip install -e '.[bench]')"
        else:
            plan.skipped[peer] = "no peers environment (benchmarks/make_peers_venv.sh, or --peers-python)"
    return plan


def run_peer(python: str, job: dict, progress: Progress = QUIET) -> dict:
    """Run one peer's job in `python`; its `@@` stderr lines become progress, the rest is kept for errors."""
    env = {**os.environ, **QUIET_ENV}
    process = subprocess.Popen(
        [python, str(RUNNER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    tail: deque[str] = deque(maxlen=40)

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("@@ "):
                progress.note(f"  {job['engine']}: {line[3:].rstrip()}")
            else:
                tail.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert process.stdin is not None and process.stdout is not None
    try:
        with process.stdin:
            process.stdin.write(json.dumps(job))  # the runner reads all of it before writing anything
    except BrokenPipeError:  # it died first: its stderr says why
        pass
    stdout = process.stdout.read()
    process.wait()
    reader.join()
    if process.returncode != 0:
        raise PeerFailed(f"{job['engine']} exited with {process.returncode}:\n{''.join(tail)}")
    return json.loads(stdout)


def cache_root(config: BenchConfig) -> Path:
    """Where peers' exports are kept: `<cache dir>/bench/peers/<checkpoint hash>/` (`--cache-dir`, else XDG)."""
    root = config.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerankd"
    return root / "bench" / "peers"


def calibration_passages(config: BenchConfig, count: int = CALIBRATION_PASSAGES) -> list[str]:
    """`count` distinct bench passages, taken across the queries (for the static int8 OpenVINO peer)."""
    seen: dict[str, None] = {}
    for rank in range(max(len(q.documents) for q in config.queries)):
        for query in config.queries:
            if rank < len(query.documents):
                seen.setdefault(query.documents[rank])
            if len(seen) >= count:
                return list(seen)
    return list(seen)


def peer_modes(
    config: BenchConfig,
    model_dir: Path,
    tokens_by_query: dict[str, int],
    model_config: dict,
    cpu: CpuInfo,
    progress: Progress = QUIET,
) -> tuple[list[ModeResult], dict[str, str]]:
    """Every peer that can run here, one process each, at concurrency 1: (rows, {peer: why it did not run})."""
    plan = plan_peers(config.peers, cpu, find_peers_python(config.peers_python))
    for peer, reason in plan.skipped.items():
        progress.note(f"skipping {peer}: {reason}")
    jobs = config.jobs(1)
    base = {
        "model_dir": str(model_dir),
        "cache_dir": str(cache_root(config)),
        "requests": [[job.query.query, job.query.documents] for job in jobs],
        "warmup_requests": [[q.query, q.documents] for q in config.warmup_queries()],
        "device": str(resolve_device(config.device)),
        "int8_config": int8_onnx_config(cpu),
    }
    if any(peer == "st-openvino-int8" for peer, _ in plan.runs):
        base["calibration_texts"] = calibration_passages(config)
    rows: list[ModeResult] = []
    skipped = dict(plan.skipped)
    for peer, python in plan.runs:
        try:
            with progress.stage(f"peer {peer}, {len(jobs)} requests"):
                data = run_peer(python, {**base, "engine": peer}, progress)
        except PeerFailed as error:
            progress.note(str(error))
            skipped[peer] = str(error).splitlines()[0]
            continue
        rows.append(
            mode_result(
                "peer",
                peer,
                None,
                1,
                jobs,
                sum(tokens_by_query.get(job.query.query, 0) for job in jobs),
                data["wall_s"],
                data["latencies_s"],
                model_config,
                peak_memory_bytes=data["peak_memory_bytes"],
                peak_device_memory_bytes=data.get("peak_device_memory_bytes"),
                numerics=data["details"],
                details={key: data[key] for key in ("prepare_s", "load_s", "versions") if key in data},
                scores=first_scores(list(zip(jobs, data["scores"], strict=True))),
            )
        )
    return rows, skipped
