"""A real `rerankd serve` process per precision, driven over HTTP (MessagePack) at each concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import msgpack

from rerankd.bench.config import BenchConfig, Job
from rerankd.bench.measure import ModeResult
from rerankd.bench.modes import execution_of, first_scores, mode_result, numerics_of, reset_peak_rss, timed_workers
from rerankd.bench.progress import QUIET, Progress
from rerankd.bench.server import RunningServer

HEADERS = {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}


def scores_in_order(response: dict, count: int) -> list[float]:
    """SIE's `scores` (best first, `item_id` = `item-{i}` when the request gave no ids) in request order."""
    scores = [0.0] * count
    for entry in response["scores"]:
        scores[int(entry["item_id"].removeprefix("item-"))] = entry["score"]
    return scores


async def http_mode(
    server: RunningServer,
    config: BenchConfig,
    precision: str,
    concurrency: int,
    model_config: dict,
    progress: Progress,
    warm_up: bool = True,
) -> ModeResult:
    path = f"/v1/score/{config.model_name}"
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits) as client:

        async def post(query: str, documents: list[str]) -> dict:
            body = msgpack.packb({"query": {"text": query}, "items": [{"text": d} for d in documents]})
            response = await client.post(path, content=body, headers=HEADERS)
            response.raise_for_status()
            return msgpack.unpackb(response.content)

        async def one(job: Job) -> tuple[int, list[float]]:
            answer = await post(job.query.query, job.query.documents)
            return answer["usage"]["input_tokens"], scores_in_order(answer, len(job.query.documents))

        for query in config.warmup_queries() if warm_up else []:
            await post(query.query, query.documents)
        reset_peak_rss(server.process.pid)  # the row's peak is serving's, not the load's or an earlier mode's
        description = (await client.get(f"/v1/models/{config.model_name}")).json()
        before = description["queue"]
        jobs = config.jobs(concurrency)
        stage = f"HTTP ({precision}) c={concurrency}"
        with progress.stage(f"{stage}, {len(jobs)} requests"):
            latencies, wall, outputs = await timed_workers(concurrency, jobs, one, progress.ticker(stage, len(jobs)))
        after = (await client.get(f"/v1/models/{config.model_name}")).json()["queue"]
    return mode_result(
        "http",
        "rerankd http",
        precision,
        concurrency,
        jobs,
        sum(tokens for _, (tokens, _) in outputs),
        wall,
        latencies,
        model_config,
        real_padded=(after["real_tokens"] - before["real_tokens"], after["padded_tokens"] - before["padded_tokens"]),
        peak_memory_bytes=server.peak_rss_bytes(),
        numerics=numerics_of(description),
        details=execution_of(description),
        scores=first_scores([(job, scores) for job, (_, scores) in outputs]),
    )


def server_args(config: BenchConfig, precision: str) -> list[str]:
    args = ["--model", f"{config.model_name}={config.model_source}", *config.engine_options(precision)]
    args += ["--max-batch-size", str(config.scheduler.max_batch_size), "--log-level", "warning"]
    if config.scheduler.max_batch_tokens:
        args += ["--max-batch-tokens", str(config.scheduler.max_batch_tokens)]
    if config.threads:
        args += ["--threads", str(config.threads)]
    return args


def http_modes(
    config: BenchConfig, precision: str, model_config: dict, workdir: Path, progress: Progress = QUIET
) -> list[ModeResult]:
    """One server for `precision` (a fast one calibrates while loading: minutes on a small CPU), every concurrency."""
    server = RunningServer(server_args(config, precision), log_path=workdir / f"server-{precision}.log")
    try:
        with progress.stage(f"HTTP server start ({precision})"):
            server.wait_ready(config.server_ready_timeout, heartbeat=lambda s: progress.note(f"  waiting ({s:.0f}s)"))
        rows = [
            asyncio.run(http_mode(server, config, precision, c, model_config, progress, warm_up=i == 0))
            for i, c in enumerate(config.concurrencies)
        ]
        if rows:
            progress.note(f"server ({precision}) numerics: {rows[0].numerics or 'not reported'}")
        return rows
    finally:
        server.stop()
