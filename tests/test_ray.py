"""rerankd on Ray Serve: the shard arithmetic here, the cluster in a private network namespace.

Ray listens on every interface (Serve's replicas bind `[::]`), so the cluster tests
(tests/test_ray_serve.py) run in a pytest of their own inside `unshare -n` with only the
loopback up; this module starts it and fails with its output when it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.ray_cluster import NETNS_ENV, netns_command, netns_unavailable

from rerankd.core.observer import Observer
from rerankd.core.types import Item, ScoreOptions, ScoreRequest

pytest.importorskip("ray.serve", reason="the [ray] extra is not installed (pip install -e '.[ray]')")

ROOT = Path(__file__).resolve().parent.parent


def test_ray_cluster_tests_inside_a_private_network_namespace() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    command = netns_command(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/test_ray_serve.py"]
    )
    environment = {**os.environ, NETNS_ENV: "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert " passed" in output and "skipped" not in output.splitlines()[-1], output[-2000:]


# ------------------------------------------------------------------- shards, without Ray
# One engine in this process scores the whole request, then each shard alone (as a replica
# with no other traffic would): the plan's shards must give the whole request's answer bit for bit.
WORDS = ["flea", "cat", "dog", "host", "larva", "carpet", "blood", "bite", "itch", "egg", "pupa", "jump"]


def documents(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))) for _ in range(count)]


class BatchLog(Observer):
    """An observer that records every batch the scheduler ran: (rows, padded tokens)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def batch(self, model: str, size: int, real_tokens: int, padded_tokens: int, seconds: float) -> None:
        self.batches.append((size, padded_tokens))


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_bi_encoder_dir: Path) -> Path:
    from support.encoder_checkpoints import build_bert_cross_encoder

    return build_bert_cross_encoder(tmp_path_factory.mktemp("tiny"), minilm_bi_encoder_dir, seed=0)


@pytest.fixture
async def engine_for(request: pytest.FixtureRequest):
    """`engine_for(path, **scheduler)`: a one-process engine (torch, 1 thread, like a replica) serving `m`."""
    from rerankd.api.app import ModelArg, ServerConfig, local_service
    from rerankd.engine.scheduler import SchedulerConfig
    from rerankd.models.runtime import configure_threads
    from rerankd.registry.registry import RegistrySettings

    services = []

    async def start(path: Path, observer: Observer | None = None, **scheduler):
        configure_threads(1)
        config = ServerConfig(
            models=[ModelArg("m", str(path))],
            registry=RegistrySettings(backend="torch"),
            scheduler=SchedulerConfig(**scheduler),
        )
        service = local_service(config, observer or Observer())
        services.append(service)
        await service.registry.load("m")
        return service.engine

    yield start
    for service in services:
        await service.close()


def score_request(texts: list[str], **options) -> ScoreRequest:
    items = [Item(id=f"d{i}", text=text) for i, text in enumerate(texts)]
    return ScoreRequest("m", Item(text="how long do fleas live"), items, options=ScoreOptions(**options))


async def scored_in_shards(engine, request, shards: int = 2):
    """(the plan, the merged answer): the plan's shards scored one after another, each alone, then merged."""
    from rerankd.ray.shards import merge, plan_shards

    units = await engine.units(request)
    plan = plan_shards(units, shards)
    parts = [(items, await engine.score(items.request(request), alone=True)) for items in plan]
    return plan, merge(request, parts, units.usage)


def by_index(result) -> np.ndarray:
    scores = np.empty(len(result.entries))
    for entry in result.entries:
        scores[entry.index] = entry.score
    return scores


async def test_a_lone_request_runs_exactly_the_batches_batch_plan_predicts(engine_for, tiny_cross_encoder) -> None:
    """The scheduler and the shard planner read one rule: what `lone_batches` says is what the scheduler runs."""
    from rerankd.engine.batch_plan import lone_batches

    log = BatchLog()
    engine = await engine_for(tiny_cross_encoder, observer=log, max_batch_tokens=512, max_batch_size=24)
    request = score_request(documents(300, seed=5))
    units = await engine.units(request)
    await engine.score(request)
    planned = lone_batches(units.costs, units.limits)
    assert units.limits.max_batch_tokens == 512 and units.limits.max_batch_size == 24
    assert planned.count > 10 and planned.sizes.max() == 24  # both limits bind somewhere
    assert log.batches == list(zip(planned.sizes.tolist(), planned.padded_tokens.tolist(), strict=True))


async def test_contiguous_shards_move_low_bits_and_plan_shards_are_bit_exact(engine_for, tiny_cross_encoder) -> None:
    import dataclasses

    engine = await engine_for(tiny_cross_encoder)
    request = score_request(documents(1_200))
    whole = await engine.score(request)
    expected = by_index(whole)
    contiguous = np.empty(1_200)
    for start, end in ((0, 600), (600, 1_200)):
        part = await engine.score(dataclasses.replace(request, items=request.items[start:end]))
        contiguous[start:end] = by_index(part)
    # Other batch neighbours (other padding, other batch sizes) move float32 low bits: not the same answer.
    assert (contiguous != expected).sum() > 0

    plan, merged = await scored_in_shards(engine, request)
    assert len(plan) == 2 and all(items.owned.all() for items in plan)
    assert min(items.padded_tokens for items in plan) > 0.9 * max(items.padded_tokens for items in plan)
    assert merged.entries == whole.entries  # every score (==), index, id, rank, order and flag
    assert merged.usage == whole.usage


async def test_shards_scored_at_once_among_other_traffic_stay_exact(engine_for, tiny_cross_encoder) -> None:
    """Both shards on one replica, with small requests arriving meanwhile: `alone` keeps the plan's batches."""
    import asyncio

    from rerankd.ray.shards import merge, plan_shards

    engine = await engine_for(tiny_cross_encoder)
    request = score_request(documents(1_200, seed=9))
    whole = await engine.score(request)
    units = await engine.units(request)
    plan = plan_shards(units, 2)
    small = [score_request(documents(5, seed=seed)) for seed in range(20)]
    answers = await asyncio.gather(
        *(engine.score(items.request(request), alone=True) for items in plan),
        *(engine.score(other) for other in small),
    )
    merged = merge(request, list(zip(plan, answers[: len(plan)], strict=True)), units.usage)
    assert merged.entries == whole.entries


async def test_windowed_documents_stay_whole_in_one_shard_and_exact(engine_for, tiny_cross_encoder) -> None:
    texts = documents(1_200, seed=6)
    for index in range(0, 1_200, 120):  # ten long documents, cut into windows of 48 tokens
        texts[index] = " ".join(texts[index : index + 10])
    engine = await engine_for(tiny_cross_encoder)
    request = score_request(texts, max_tokens_per_doc=48)
    whole = await engine.score(request)
    assert whole.usage.chunks > whole.usage.pairs  # some documents really are several windows
    plan, merged = await scored_in_shards(engine, request)
    assert len(plan) == 2
    assert merged.entries == whole.entries and merged.usage == whole.usage

    everywhere = score_request(texts, max_tokens_per_doc=8)  # windows tie every batch together: not split
    plan, merged = await scored_in_shards(engine, everywhere)
    assert len(plan) == 1 and merged.entries == (await engine.score(everywhere)).entries


async def test_a_bi_encoders_query_batch_is_scored_by_every_shard_and_answered_once(
    engine_for, minilm_bi_encoder_dir: Path
) -> None:
    """The query's vector must come from the batch one process computes it in: every shard runs that batch."""
    engine = await engine_for(minilm_bi_encoder_dir, max_batch_tokens=256)
    request = score_request(documents(120, seed=7), top_k=50)
    whole = await engine.score(request)
    plan, merged = await scored_in_shards(engine, request)
    assert len(plan) == 2
    helpers = [set(items.indices[~items.owned].tolist()) for items in plan]
    assert helpers[0] == set() and helpers[1]  # the second shard re-scores the query's batch, answers none of it
    owned = np.concatenate([items.indices[items.owned] for items in plan])
    assert sorted(owned.tolist()) == list(range(120))  # every item answered for exactly once
    assert merged.entries == whole.entries and len(merged.entries) == 50
    assert merged.usage == whole.usage  # the query's tokens counted once


async def test_an_item_error_in_a_shard_names_the_item_in_the_whole_request(engine_for, tiny_cross_encoder) -> None:
    from rerankd.core.errors import InputTooLong
    from rerankd.ray.shards import located, plan_shards

    texts = documents(1_200, seed=8)
    engine = await engine_for(tiny_cross_encoder)
    plan = plan_shards(await engine.units(score_request(texts)), 2)
    second = plan[1]
    victim = int(second.indices[7])
    texts[victim] = "flea " * 600  # past the 512-token limit
    with pytest.raises(InputTooLong) as raised:
        await engine.score(second.request(score_request(texts, truncate=False)))
    assert raised.value.extra["index"] == 7
    error = located(raised.value, second.indices)
    assert error.extra["index"] == victim and f"item {victim} " in error.message


def test_shard_count() -> None:
    from rerankd.ray.shards import shard_count

    assert shard_count(1000, 1000, 4) == 1
    assert shard_count(1001, 1000, 4) == 2
    assert shard_count(10_000, 1000, 2) == 2
    assert shard_count(10_000, 0, 8) == 1
    assert shard_count(10_000, 1000, 1) == 1
