"""Cross-request batching: exact scores under concurrency, big requests split, cancellation, fairness."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rerankd.api.service import Service
from rerankd.core.types import Item, ScoreRequest
from rerankd.engine.batch_plan import longest_first
from rerankd.engine.engine import Engine
from rerankd.engine.scheduler import Scheduler, SchedulerConfig


def request(query: str, documents: list[str], **kwargs) -> ScoreRequest:
    return ScoreRequest(model="m", query=Item(text=query), items=[Item(text=d) for d in documents], **kwargs)


def by_index(result) -> np.ndarray:
    scores = np.empty(len(result.entries))
    for entry in result.entries:
        scores[entry.index] = entry.score
    return scores


async def make_engine(model_dir, **scheduler) -> Engine:
    service = Service.create(scheduler=SchedulerConfig(**scheduler))
    service.registry.register("m", str(model_dir))
    await service.registry.load("m")
    return service.engine


def current_scheduler(engine: Engine) -> Scheduler:
    """The scheduler of model m's current version (the engine creates it on first use)."""
    return engine.scheduler(engine.models.current("m"))


async def close(engine: Engine) -> None:
    await engine.models.close()
    engine.close()
    engine.compute.shutdown()


async def test_concurrent_requests_get_their_own_exact_scores(minilm_cross_encoder_dir, trec):
    engine = await make_engine(minilm_cross_encoder_dir, max_batch_tokens=2048)
    try:
        requests = [request(q.query, q.documents[: 5 + 7 * i]) for i, q in enumerate(trec[:8])]
        alone = [by_index(await engine.score(r)) for r in requests]
        together = await asyncio.gather(*(engine.score(r) for r in requests))
        for solo, shared in zip(alone, together, strict=True):
            assert np.abs(by_index(shared) - solo).max() <= 1e-5
        stats = current_scheduler(engine).stats
        assert stats.units == 2 * sum(len(r.items) for r in requests)
    finally:
        await close(engine)


def test_a_batch_takes_the_longest_units_across_requests():
    heads = [np.array([90, 50, 40]), np.array([100, 80, 50, 10]), np.array([50, 45])]
    assert longest_first(heads, 4).tolist() == [2, 2, 0]  # 100 90 80, then the first request's 50
    assert longest_first(heads, 6).tolist() == [2, 3, 1]  # ... and every 50, earlier requests first
    assert longest_first(heads, 100).tolist() == [3, 4, 2]
    assert longest_first([np.array([7, 7, 3])], 2).tolist() == [2]


async def test_concurrent_requests_pad_less_than_one_at_a_time(minilm_cross_encoder_dir, trec):
    engine = await make_engine(minilm_cross_encoder_dir, max_batch_tokens=1024)
    try:
        requests = [request(q.query, q.documents[:24]) for q in trec[:8]]
        stats = current_scheduler(engine).stats
        for r in requests:
            await engine.score(r)
        alone = stats.padding_waste
        real, padded = stats.real_tokens, stats.padded_tokens
        await asyncio.gather(*(engine.score(r) for r in requests))
        together = 1 - (stats.real_tokens - real) / (stats.padded_tokens - padded)
        assert together < 0.75 * alone, (together, alone)
    finally:
        await close(engine)


async def test_thousand_item_request_is_split_into_budgeted_batches(minilm_cross_encoder_dir, trec):
    engine = await make_engine(minilm_cross_encoder_dir, max_batch_tokens=4096, max_batch_size=64)
    try:
        documents = [d for q in trec[:10] for d in q.documents][:1000]
        result = await engine.score(request(trec[0].query, documents))
        assert len(result.entries) == 1000
        assert sorted(e.index for e in result.entries) == list(range(1000))
        scheduler = current_scheduler(engine)
        assert scheduler.stats.batches >= 1000 // 64
        assert scheduler.stats.padded_tokens <= scheduler.stats.batches * 4096
        # The first 100 scored alone are the same as inside the big request.
        head = by_index(await engine.score(request(trec[0].query, documents[:100])))
        assert np.abs(by_index(result)[:100] - head).max() <= 1e-5
    finally:
        await close(engine)


async def test_cancelled_request_does_not_disturb_others(minilm_cross_encoder_dir, trec):
    engine = await make_engine(minilm_cross_encoder_dir, max_batch_tokens=1024)
    try:
        small = request(trec[1].query, trec[1].documents[:20])
        expected = by_index(await engine.score(small))
        big = asyncio.ensure_future(engine.score(request(trec[0].query, trec[0].documents * 5)))
        others = [asyncio.ensure_future(engine.score(small)) for _ in range(3)]
        await asyncio.sleep(0.2)
        big.cancel()
        results = await asyncio.gather(*others)
        with pytest.raises(asyncio.CancelledError):
            await big
        for result in results:
            assert np.abs(by_index(result) - expected).max() <= 1e-5
        scheduler = current_scheduler(engine)
        assert scheduler._queued_units == 0
        assert scheduler.active_requests == 0
        assert scheduler.stats.units < 20 + 500 + 60  # the cancelled request's waiting pairs never ran
    finally:
        await close(engine)


async def test_small_request_is_not_starved_by_a_huge_one(minilm_cross_encoder_dir, trec):
    engine = await make_engine(minilm_cross_encoder_dir, max_batch_tokens=2048, fair_share_batches=2)
    try:
        finished: list[str] = []

        async def run(name: str, score_request: ScoreRequest) -> None:
            await engine.score(score_request)
            finished.append(name)

        huge = asyncio.ensure_future(run("huge", request(trec[0].query, trec[0].documents * 8)))
        await asyncio.sleep(0.05)
        small = asyncio.ensure_future(run("small", request(trec[1].query, trec[1].documents[:10])))
        await asyncio.gather(huge, small)
        assert finished == ["small", "huge"]
    finally:
        await close(engine)


async def test_top_k_and_stable_ties(minilm_cross_encoder_dir):
    engine = await make_engine(minilm_cross_encoder_dir)
    try:
        result = await engine.score(
            request("fleas", ["same text", "other", "same text", "same text"], options=_options(top_k=10))
        )
        same = [e.index for e in result.entries if e.index != 1]
        assert same == [0, 2, 3]  # equal scores keep request order
    finally:
        await close(engine)


def _options(**kwargs):
    from rerankd.core.types import ScoreOptions

    return ScoreOptions(**kwargs)


async def test_ten_thousand_item_request_is_answered_whole(minilm_cross_encoder_dir):
    engine = await make_engine(minilm_cross_encoder_dir)
    try:
        documents = [f"passage {i} about fleas and {i % 97} other things" for i in range(10_000)]
        result = await engine.score(request("how long do fleas live", documents, options=_options(top_k=10_000)))
        assert len(result.entries) == 10_000
        assert sorted(e.index for e in result.entries) == list(range(10_000))
        scores = [e.score for e in result.entries]
        assert scores == sorted(scores, reverse=True)
        scheduler = current_scheduler(engine)
        assert scheduler.stats.batches >= 10_000 // scheduler.config.max_batch_size
        solo = by_index(await engine.score(request("how long do fleas live", documents[:50])))
        assert np.abs(by_index(result)[:50] - solo).max() <= 1e-5
    finally:
        await close(engine)
