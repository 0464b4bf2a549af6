"""`rerankd bench`: the engine in-process, the HTTP server at several concurrencies, and the
sentence-transformers baseline, on the same model and the same 100-candidate requests."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgpack
import torch

from rerankd.api.service import Service
from rerankd.bench.data import BenchQuery
from rerankd.bench.flops import encoder_flops, matmul_rate
from rerankd.bench.measure import ModeResult, Target
from rerankd.bench.server import RunningServer
from rerankd.core.types import Item, ScoreRequest
from rerankd.engine.engine import Engine
from rerankd.engine.scheduler import SchedulerConfig, default_batch_tokens
from rerankd.models.hf import read_config
from rerankd.models.runtime import Placement, resolve_device, resolve_placement
from rerankd.registry.registry import RegistrySettings


@dataclass
class BenchConfig:
    """What to run; `quick` shrinks every mode so the whole run fits in CI."""

    model_name: str
    model_source: str
    queries: list[BenchQuery]
    requests: int
    concurrencies: list[int]
    engine_concurrencies: list[int]
    scale_items: tuple[int, int] = (100, 1000)
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    baseline: bool = True
    http: bool = True
    warmup: int = 2


@dataclass
class BenchReport:
    machine: dict
    config: dict
    results: list[ModeResult]
    scale: dict
    targets: list[Target]

    def to_json(self) -> dict:
        return {
            "machine": self.machine,
            "config": self.config,
            "results": [result.summary() for result in self.results],
            "scale": self.scale,
            "targets": [target.summary() for target in self.targets],
        }


def _device_peak() -> int | None:
    """Peak memory torch allocated on the GPU so far (None on CPU)."""
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None


def _requests(queries: list[BenchQuery], count: int) -> list[BenchQuery]:
    return [queries[i % len(queries)] for i in range(count)]


def _machine(placement: Placement) -> dict:
    device = placement.device
    info = {
        "device": str(device),
        "dtype": placement.dtype_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": sys.version.split()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        model_names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu"] = model_names[0] if model_names else None
    except OSError:
        pass
    info["matmul_flops_bf16"] = matmul_rate(torch.bfloat16, device)
    info["matmul_flops_fp32"] = matmul_rate(torch.float32, device)
    return info


async def _timed_workers(count: int, jobs: list, run_one) -> tuple[list[float], float, list]:
    """Run `jobs` with `count` concurrent workers; (latencies, wall seconds, outputs)."""
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []
    outputs: list = []

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            began = time.perf_counter()
            outputs.append(await run_one(job))
            latencies.append(time.perf_counter() - began)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(count)))
    return latencies, time.perf_counter() - start, outputs


def _mode_result(
    mode: str,
    concurrency: int,
    jobs: list[BenchQuery],
    tokens: int,
    wall: float,
    latencies: list[float],
    model_config: dict,
    *,
    real_padded: tuple[int, int] | None = None,
    peak_memory: int | None = None,
    peak_device_memory: int | None = None,
) -> ModeResult:
    """What every mode reports; `real_padded` (real, padded tokens batched) where rerankd batched them."""
    pairs = sum(len(q.documents) for q in jobs)
    padding_waste = None
    if real_padded is not None:
        real, padded = real_padded
        padding_waste = 1 - real / padded if padded else 0.0
    return ModeResult(
        mode=mode,
        concurrency=concurrency,
        requests=len(jobs),
        pairs=pairs,
        tokens=tokens,
        wall_s=wall,
        latencies_s=latencies,
        padding_waste=padding_waste,
        peak_memory_bytes=peak_memory,
        peak_device_memory_bytes=peak_device_memory,
        flops=encoder_flops(model_config, tokens, pairs),
    )


def _score_request(name: str, query: BenchQuery) -> ScoreRequest:
    return ScoreRequest(model=name, query=Item(text=query.query), items=[Item(text=d) for d in query.documents])


async def _engine_modes(config: BenchConfig, model_config: dict) -> tuple[list[ModeResult], dict, dict]:
    service = Service.create(RegistrySettings(device=config.device, dtype=config.dtype), config.scheduler)
    service.registry.register(config.model_name, config.model_source)
    engine = service.engine
    results: list[ModeResult] = []
    try:
        scheduler = engine.scheduler(await service.registry.load(config.model_name))
        for query in config.queries[: config.warmup]:
            await engine.score(_score_request(config.model_name, query))
        tokens_by_query: dict[str, int] = {}
        for concurrency in config.engine_concurrencies:
            jobs = _requests(config.queries, config.requests)
            before = (scheduler.stats.real_tokens, scheduler.stats.padded_tokens)

            async def one(query: BenchQuery) -> tuple[str, int]:
                result = await engine.score(_score_request(config.model_name, query))
                return query.query, result.usage.input_tokens

            latencies, wall, outputs = await _timed_workers(concurrency, jobs, one)
            tokens_by_query.update(outputs)
            results.append(
                _mode_result(
                    "engine",
                    concurrency,
                    jobs,
                    sum(tokens for _, tokens in outputs),
                    wall,
                    latencies,
                    model_config,
                    real_padded=(scheduler.stats.real_tokens - before[0], scheduler.stats.padded_tokens - before[1]),
                    peak_memory=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                    peak_device_memory=_device_peak(),
                )
            )
        scale = await _scale_check(engine, config)
    finally:
        await service.close()
    return results, scale, tokens_by_query


async def _scale_check(engine: Engine, config: BenchConfig) -> dict:
    """One big request against the same documents sent as small requests (best of two runs each).

    The big request is the small requests' documents together, so the ratio measures what
    size costs (splitting, rejoining, queueing), not a difference in document lengths.
    """
    pool = [doc for query in config.queries for doc in query.documents]
    small, big = config.scale_items
    documents = [pool[i % len(pool)] for i in range(big)]
    query = config.queries[0].query

    async def timed(items: list[str]) -> float:
        request = ScoreRequest(model=config.model_name, query=Item(text=query), items=[Item(text=d) for d in items])
        best = float("inf")
        for _ in range(2):
            began = time.perf_counter()
            await engine.score(request)
            best = min(best, time.perf_counter() - began)
        return best

    big_s = await timed(documents)
    small_s = [await timed(documents[start : start + small]) for start in range(0, big, small)]
    mean_small = sum(small_s) / len(small_s)
    return {
        "small_items": small,
        "big_items": big,
        "small_s": mean_small,
        "big_s": big_s,
        "ratio": big_s / mean_small,
        "linear_ratio": big / small,
    }


async def _http_mode(server: RunningServer, config: BenchConfig, concurrency: int, model_config: dict) -> ModeResult:
    path = f"/v1/score/{config.model_name}"
    headers = {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits) as client:

        async def one(query: BenchQuery) -> int:
            body = msgpack.packb({"query": {"text": query.query}, "items": [{"text": d} for d in query.documents]})
            response = await client.post(path, content=body, headers=headers)
            response.raise_for_status()
            return msgpack.unpackb(response.content)["usage"]["input_tokens"]

        for query in config.queries[: config.warmup]:
            await one(query)
        before = (await client.get(f"/v1/models/{config.model_name}")).json()["queue"]
        jobs = _requests(config.queries, config.requests)
        latencies, wall, outputs = await _timed_workers(concurrency, jobs, one)
        after = (await client.get(f"/v1/models/{config.model_name}")).json()["queue"]
    return _mode_result(
        "http",
        concurrency,
        jobs,
        sum(outputs),
        wall,
        latencies,
        model_config,
        real_padded=(after["real_tokens"] - before["real_tokens"], after["padded_tokens"] - before["padded_tokens"]),
        peak_memory=server.peak_rss_bytes(),
    )


def _http_modes(config: BenchConfig, model_config: dict, workdir: Path) -> list[ModeResult]:
    args = ["--model", f"{config.model_name}={config.model_source}", "--device", config.device]
    args += ["--dtype", config.dtype, "--max-batch-size", str(config.scheduler.max_batch_size)]
    args += ["--log-level", "warning"]
    if config.scheduler.max_batch_tokens:
        args += ["--max-batch-tokens", str(config.scheduler.max_batch_tokens)]
    if config.threads:
        args += ["--threads", str(config.threads)]
    server = RunningServer(args, log_path=workdir / "server.log").wait_ready()
    try:
        return [asyncio.run(_http_mode(server, config, c, model_config)) for c in config.concurrencies]
    finally:
        server.stop()


def _baseline_mode(config: BenchConfig, model_dir: Path, tokens_by_query: dict[str, int], model_config: dict):
    jobs = _requests(config.queries, config.requests)
    job = {
        "model_dir": str(model_dir),
        "requests": [[q.query, q.documents] for q in jobs],
        "warmup": min(config.warmup, len(jobs)),
        "device": str(resolve_device(config.device)),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "rerankd.bench.baseline"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(completed.stdout)
    return _mode_result(
        "baseline",
        1,
        jobs,
        sum(tokens_by_query.get(q.query, 0) for q in jobs),
        data["wall_s"],
        data["latencies_s"],
        model_config,
        peak_memory=data["peak_memory_bytes"],
        peak_device_memory=data.get("peak_device_memory_bytes"),
    )


def _targets(results: list[ModeResult], scale: dict, machine: dict) -> list[Target]:
    def find(mode: str, concurrency: int | None = None) -> ModeResult | None:
        matches = [r for r in results if r.mode == mode and (concurrency is None or r.concurrency == concurrency)]
        return matches[-1] if matches else None

    baseline, engine8 = find("baseline"), find("engine", 8)
    http1, http8 = find("http", 1), find("http", 8)
    targets: list[Target] = []
    if baseline and http8:
        targets.append(Target("http c=8 throughput / baseline", http8.pairs_per_s / baseline.pairs_per_s, 4.0, True))
    if baseline and http1:
        targets.append(Target("http c=1 p50 latency / baseline", http1.latency(50) / baseline.latency(50), 0.3, False))
    if engine8 and http8:
        targets.append(Target("http c=8 throughput / engine", http8.pairs_per_s / engine8.pairs_per_s, 0.9, True))
    best = max((r for r in results if r.mode != "baseline"), key=lambda r: r.flops_per_s, default=None)
    if best is not None:
        ratio = best.flops_per_s / machine["matmul_flops_bf16"]
        targets.append(Target("model FLOP/s / bf16 matmul FLOP/s", ratio, 0.4, True))
    if scale:
        targets.append(Target("1000-item / 100-item request cost", scale["ratio"], 11.0, False))
    return targets


def run_bench(config: BenchConfig) -> BenchReport:
    """All modes in one run, engine first (it also counts each request's tokens)."""
    from rerankd.registry.sources import resolve_source

    model_dir = resolve_source(config.model_source, allow_download=False)
    model_config = read_config(model_dir)
    device = resolve_device(config.device)
    machine = _machine(resolve_placement(config.dtype, device))
    results, scale, tokens_by_query = asyncio.run(_engine_modes(config, model_config))
    if config.baseline:
        results.append(_baseline_mode(config, model_dir, tokens_by_query, model_config))
    if config.http:
        with tempfile.TemporaryDirectory(prefix="rerankd-bench-") as workdir:
            results.extend(_http_modes(config, model_config, Path(workdir)))
    settings = {
        "model": config.model_name,
        "source": config.model_source,
        "requests_per_mode": config.requests,
        "documents_per_request": len(config.queries[0].documents),
        "concurrencies": config.concurrencies,
        "max_batch_tokens": config.scheduler.max_batch_tokens or default_batch_tokens(device),
        "max_batch_size": config.scheduler.max_batch_size,
    }
    return BenchReport(machine, settings, results, scale, _targets(results, scale, machine))
