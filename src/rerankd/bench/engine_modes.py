"""The in-process engine at each concurrency, and the scale check (one big request against small ones)."""

from __future__ import annotations

import time

import torch

from rerankd.api.service import Service
from rerankd.bench.config import BenchConfig, Job
from rerankd.bench.measure import ModeResult
from rerankd.bench.modes import (
    execution_of,
    first_scores,
    mode_result,
    numerics_of,
    peak_rss,
    reset_peak_rss,
    timed_workers,
)
from rerankd.bench.progress import QUIET, Progress
from rerankd.core.types import Item, ScoreRequest, ScoreResult
from rerankd.engine.engine import Engine
from rerankd.registry.registry import RegistrySettings


def score_request(name: str, query: str, documents: list[str]) -> ScoreRequest:
    return ScoreRequest(model=name, query=Item(text=query), items=[Item(text=d) for d in documents])


def scores_in_order(result: ScoreResult, count: int) -> list[float]:
    """The result's scores back in request order (entries come best first)."""
    scores = [0.0] * count
    for entry in result.entries:
        scores[entry.index] = entry.score
    return scores


def settings(config: BenchConfig, precision: str) -> RegistrySettings:
    return RegistrySettings(
        device=config.device,
        dtype=config.dtype,
        precision=precision,
        backend=config.backend,
        cache_dir=config.cache_dir,
        calibration_data=config.calibration_data,
    )


async def engine_modes(
    config: BenchConfig, precision: str, model_config: dict, progress: Progress = QUIET
) -> tuple[list[ModeResult], dict, dict[str, int]]:
    """(rows, scale check, real tokens per query text): the tokens are what the peers' rows count."""
    service = Service.create(settings(config, precision), config.scheduler)
    service.registry.register(config.model_name, config.model_source)
    engine = service.engine
    results: list[ModeResult] = []
    tokens_by_query: dict[str, int] = {}
    try:
        with progress.stage(f"engine load ({precision})"):
            scheduler = engine.scheduler(await service.registry.load(config.model_name))
        description = service.describe(config.model_name)
        numerics = numerics_of(description)
        progress.note(f"engine ({precision}) numerics: {numerics or 'not reported'}")
        for query in config.warmup_queries():
            await engine.score(score_request(config.model_name, query.query, query.documents))
        reset_peak_rss()  # a row's peak is serving's (weights included), not the load's or calibration's
        for concurrency in config.engine_concurrencies:
            jobs = config.jobs(concurrency)
            before = (scheduler.stats.real_tokens, scheduler.stats.padded_tokens)

            async def one(job: Job) -> tuple[int, list[float]]:
                documents = job.query.documents
                result = await engine.score(score_request(config.model_name, job.query.query, documents))
                return result.usage.input_tokens, scores_in_order(result, len(documents))

            stage = f"engine ({precision}) c={concurrency}"
            ticker = progress.ticker(stage, len(jobs))
            with progress.stage(f"{stage}, {len(jobs)} requests"):
                latencies, wall, outputs = await timed_workers(concurrency, jobs, one, ticker)
            tokens_by_query.update((job.query.query, tokens) for job, (tokens, _) in outputs)
            results.append(
                mode_result(
                    "engine",
                    "rerankd engine",
                    precision,
                    concurrency,
                    jobs,
                    sum(tokens for _, (tokens, _) in outputs),
                    wall,
                    latencies,
                    model_config,
                    real_padded=(scheduler.stats.real_tokens - before[0], scheduler.stats.padded_tokens - before[1]),
                    peak_memory_bytes=peak_rss(),
                    peak_device_memory_bytes=_device_peak(),
                    numerics=numerics,
                    details=execution_of(description),
                    scores=first_scores([(job, scores) for job, (_, scores) in outputs]),
                )
            )
        small, big = config.scale_items
        with progress.stage(f"scale check ({precision}): {big} items against {big // small}×{small}"):
            scale = await scale_check(engine, config)
    finally:
        await service.close()
    return results, scale, tokens_by_query


def _device_peak() -> int | None:
    """Peak memory torch allocated on the GPU so far (None on CPU)."""
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None


async def scale_check(engine: Engine, config: BenchConfig) -> dict:
    """One big request against the same documents sent as small requests (best of `scale_repeats` each).

    The big request is the small requests' documents together, so the ratio measures what
    size costs (splitting, rejoining, queueing), not a difference in document lengths.
    """
    pool = [doc for query in config.queries for doc in query.documents]
    small, big = config.scale_items
    documents = [pool[i % len(pool)] for i in range(big)]
    query = config.queries[0].query

    async def timed(items: list[str]) -> float:
        request = score_request(config.model_name, query, items)
        best = float("inf")
        for _ in range(config.scale_repeats):
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
        "repeats": config.scale_repeats,
        "small_s": mean_small,
        "big_s": big_s,
        "ratio": big_s / mean_small,
        "linear_ratio": big / small,
    }
