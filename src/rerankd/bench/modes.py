"""What every mode shares: concurrent timed clients, the row they make, peak memory, reported numerics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rerankd.bench.config import Job
from rerankd.bench.flops import encoder_flops
from rerankd.bench.measure import ModeResult

# What `GET /v1/models/{name}` may say about a model's numerics, at its top level or under `execution`
# (the fields are the server's to add; those absent are left out, not guessed).
NUMERICS_FIELDS = ("precision", "backend", "numerics", "dtype")


async def timed_workers(
    count: int, jobs: list[Job], run_one: Callable[[Job], Awaitable[Any]], on_done: Callable[[], None] | None = None
):
    """Run `jobs` with `count` concurrent workers: (latencies, wall seconds, [(job, output)]).

    `on_done` is called after each job (progress for a person watching a long mode).
    """
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []
    outputs: list[tuple[Job, Any]] = []

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            began = time.perf_counter()
            outputs.append((job, await run_one(job)))
            latencies.append(time.perf_counter() - began)
            if on_done is not None:
                on_done()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(count)))
    return latencies, time.perf_counter() - start, outputs


def first_scores(outputs: list[tuple[Job, list[float]]]) -> dict[int, list[float]]:
    """Each query's scores from its first request (a query repeats when requests outnumber queries)."""
    scores: dict[int, list[float]] = {}
    for job, values in outputs:
        scores.setdefault(job.index, values)
    return scores


def mode_result(
    mode: str,
    name: str,
    precision: str | None,
    concurrency: int,
    jobs: list[Job],
    tokens: int,
    wall: float,
    latencies: list[float],
    model_config: dict,
    **extra: Any,
) -> ModeResult:
    """What every row reports; `real_padded` (real, padded tokens batched) where rerankd batched them."""
    pairs = sum(len(job.query.documents) for job in jobs)
    real_padded = extra.pop("real_padded", None)
    if real_padded is not None:
        real, padded = real_padded
        extra["padding_waste"] = 1 - real / padded if padded else 0.0
    return ModeResult(
        mode=mode,
        name=name,
        precision=precision,
        concurrency=concurrency,
        requests=len(jobs),
        pairs=pairs,
        tokens=tokens,
        wall_s=wall,
        latencies_s=latencies,
        flops=encoder_flops(model_config, tokens, pairs),
        **extra,
    )


def numerics_of(description: dict) -> dict:
    """The few numerics fields of a model description a table can show (`execution_of` keeps the rest)."""
    found = {key: description[key] for key in NUMERICS_FIELDS if description.get(key) is not None}
    execution = description.get("execution")
    if isinstance(execution, dict):
        found |= {key: execution[key] for key in NUMERICS_FIELDS if execution.get(key) is not None}
    return found


def execution_of(description: dict) -> dict:
    """The description's whole `execution` record (calibration trials included), for bench.json."""
    execution = description.get("execution")
    return {"execution": execution} if execution else {}


def reset_peak_rss(pid: int | str = "self") -> None:
    """Linux: restart a process's peak-RSS count (`VmHWM`), so a row's peak is its own, not an earlier mode's."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int | str = "self") -> int | None:
    """Peak resident memory since the last reset (Linux `VmHWM`), or None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
