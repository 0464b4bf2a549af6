"""The registry in process: what a held version guarantees, when loads wait, and what they report."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from support.lifecycle import DOCUMENTS, QUERY
from support.reference import cross_encoder_scores

from rerankd.api.service import Service
from rerankd.core.errors import InvalidRequest, ModelLoadFailed, ModelLoading, ModelNotFound, NoCapacity
from rerankd.core.types import Item, ScoreOptions, ScoreRequest
from rerankd.registry.budget import estimate_weight_bytes, parse_size
from rerankd.registry.registry import ModelRegistry, RegistrySettings


def request(model: str, adapter: str | None = None) -> ScoreRequest:
    return ScoreRequest(
        model=model,
        query=Item(text=QUERY),
        items=[Item(text=text) for text in DOCUMENTS],
        options=ScoreOptions(adapter=adapter),
    )


def by_index(result) -> np.ndarray:
    scores = np.empty(len(result.entries))
    for entry in result.entries:
        scores[entry.index] = entry.score
    return scores


async def settle() -> None:
    """Let background drains run."""
    for _ in range(5):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("6GB", 6_000_000_000), ("1.5GiB", 1_610_612_736), ("512 MB", 512_000_000), ("800M", 800_000_000), ("42", 42)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "6XB", "-1GB", "0", "1.2.3GB"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(ValueError):
        parse_size(text)


async def test_estimate_matches_the_loaded_weights(checkpoint_a):
    registry = ModelRegistry()
    registry.register("a", str(checkpoint_a))
    try:
        loaded = await registry.load("a")
        estimate = estimate_weight_bytes(checkpoint_a, loaded.placement.dtype)
        compiled = loaded.family.execution.get("compiled_bytes", 0)  # OpenVINO's copy, when it serves
        assert 0 < loaded.memory_bytes - compiled - estimate <= 8192  # the non-persistent id buffers only
        assert compiled == 0 or abs(compiled - estimate) <= 65536  # an fp32 copy of the same weights
    finally:
        await registry.close()


async def test_resolve_model_ids(checkpoint_a):
    registry = ModelRegistry(RegistrySettings(allow_download=False))
    registry.register("team/m", str(checkpoint_a))
    assert registry.resolve("team/m") == ("team/m", None, "model")
    assert registry.resolve("team/m:x") == ("team/m", "x", "model")
    assert registry.resolve("team/m", "x") == ("team/m", "x", "adapter")
    assert registry.resolve("team/m:x", "x") == ("team/m", "x", "adapter")
    with pytest.raises(InvalidRequest) as caught:
        registry.resolve("team/m:x", "y")
    assert caught.value.param == "adapter"
    for unknown in ("nope", "nope:x", "cross-encoder/ms-marco-MiniLM-L-6-v2"):
        with pytest.raises(ModelNotFound):
            registry.resolve(unknown)
    downloads = ModelRegistry(RegistrySettings(allow_download=True))
    catalog_id = "cross-encoder/ms-marco-MiniLM-L-6-v2"
    with pytest.raises(ModelNotFound):  # resolving has no side effects
        downloads.resolve(catalog_id)
    assert catalog_id not in downloads
    assert downloads.register_on_demand(catalog_id) and downloads.resolve(catalog_id)[0] == catalog_id
    assert not registry.register_on_demand(catalog_id)  # without --allow-download


async def test_busy_model_is_never_evicted_and_the_load_waits_for_it(checkpoint_a, checkpoint_b):
    registry = ModelRegistry(RegistrySettings(max_loaded_models=1, load_timeout=0.5))
    registry.register("a", str(checkpoint_a))
    registry.register("b", str(checkpoint_b))
    try:
        await registry.load("a")
        async with registry.use("a") as held:
            with pytest.raises(NoCapacity) as caught:
                await registry.load("b")  # `a` has work in flight the whole time
            assert "model 'a'" in caught.value.message and caught.value.retry_after
            assert registry.entry("a").current is held and held.family.network is not None
            assert registry.describe("b")["state"] == "available"  # a transient refusal, not a failure
        patient = ModelRegistry(RegistrySettings(max_loaded_models=1, load_timeout=60))
        patient.register("a", str(checkpoint_a))
        patient.register("b", str(checkpoint_b))
        try:
            await patient.load("a")
            async with patient.use("a"):
                waiting = asyncio.create_task(patient.load("b"))
                await asyncio.sleep(0.5)
                assert not waiting.done()
                assert patient.describe("a")["state"] == "loaded"
            await waiting  # `a` went idle: it is evicted and `b` loads
            assert patient.describe("a")["state"] == "available"
            assert patient.describe("a")["evictions"] == 1
            assert patient.describe("b")["state"] == "loaded"
        finally:
            await patient.close()
    finally:
        await registry.close()


async def test_concurrent_loads_never_exceed_the_limit(checkpoint_a, checkpoint_b):
    registry = ModelRegistry(RegistrySettings(max_loaded_models=1, load_timeout=60))
    registry.register("a", str(checkpoint_a))
    registry.register("b", str(checkpoint_b))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, sum(registry.entry(n).current is not None for n in ("a", "b")))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(registry.load("a"), registry.load("b"))
        assert peak <= 1  # sampled: a model can come and go between two looks, never overlap
        assert sum(registry.entry(n).current is not None for n in ("a", "b")) == 1
        assert registry.memory()["loaded_models"] == 1
        assert registry.describe("a")["evictions"] + registry.describe("b")["evictions"] == 1
    finally:
        watcher.cancel()
        await registry.close()


async def test_swap_lets_held_requests_finish_on_the_old_version(checkpoint_a, checkpoint_b):
    reference_a = cross_encoder_scores(checkpoint_a, QUERY, DOCUMENTS)
    reference_b = cross_encoder_scores(checkpoint_b, QUERY, DOCUMENTS)
    service = Service.create()
    registry, engine = service.registry, service.engine
    registry.register("m", str(checkpoint_a))
    try:
        await registry.load("m")
        async with registry.use("m") as old:
            info = await registry.put_model("m", str(checkpoint_b))
            assert info["source"] == str(checkpoint_b) and info["swaps"] == 1
            assert registry.entry("m").current is not old
            # new requests get B at once; the held version still scores A
            assert np.abs(by_index(await engine.score(request("m"))) - reference_b).max() <= 1e-5
            prepared = old.family.prepare(QUERY, DOCUMENTS, None, ScoreOptions())
            outputs = await engine.scheduler(old).run(prepared)
            assert np.abs(old.family.scores(prepared, outputs, False) - reference_a).max() <= 1e-5
            await settle()
            assert old.family.network is not None  # not freed under a request
        await settle()
        assert old.family.network is None  # freed once the last holder left
        assert registry.memory()["used_bytes"] == registry.entry("m").current.memory_bytes
    finally:
        await service.close()


async def test_unload_refuses_new_requests_at_once_and_frees_after_in_flight(checkpoint_a):
    registry = ModelRegistry()
    registry.register("m", str(checkpoint_a))
    try:
        await registry.load("m")
        async with registry.use("m") as held:
            unloading = asyncio.create_task(registry.unload("m"))
            await settle()
            assert not unloading.done()
            assert registry.describe("m")["state"] == "unloading"
            with pytest.raises(ModelNotFound):
                registry.resolve("m")
            assert held.family.network is not None
        await unloading
        assert held.family.network is None
        assert "m" not in registry
    finally:
        await registry.close()


async def test_request_waits_load_timeout_then_gets_model_loading(checkpoint_a):
    registry = ModelRegistry(RegistrySettings(load_timeout=0.001))
    registry.register("m", str(checkpoint_a), lazy=True)
    try:
        with pytest.raises(ModelLoading) as caught:
            async with registry.use("m"):
                pass
        assert caught.value.code == "MODEL_LOADING" and caught.value.retry_after >= 1
        assert registry.describe("m")["state"] == "loading"  # the load goes on without the request
        await registry.load("m")
        async with registry.use("m") as loaded:
            assert loaded.family.network is not None
    finally:
        await registry.close()


async def test_failed_load_is_remembered_not_retried(tmp_path):
    registry = ModelRegistry()
    registry.register("gone", str(tmp_path / "missing"))
    try:
        attempts = []
        for _ in range(3):
            with pytest.raises(ModelLoadFailed) as caught:
                async with registry.use("gone"):
                    pass
            assert "does not exist" in caught.value.message
            attempts.append(registry.entry("gone").load_task)
        assert attempts[0] is attempts[1] is attempts[2]  # one load, its failure answered thereafter
        assert registry.describe("gone")["state"] == "failed"
        assert registry.describe("gone")["last_error"]["error_class"] == "SourceNotFound"
    finally:
        await registry.close()


async def test_family_without_adapter_support_refuses_adapters(checkpoint_a, tmp_path):
    """A family that keeps weight-derived state across batches opts out; the refusal names why."""
    registry = ModelRegistry()
    registry.register("m", str(checkpoint_a))
    try:
        loaded = await registry.load("m")
        loaded.family.supports_adapters = False  # as a family with a prefix KV cache declares
        with pytest.raises(ModelLoadFailed) as caught:
            await registry.put_adapter("m", "x", str(tmp_path))
        assert "does not support LoRA adapters" in caught.value.message
        assert registry.describe_adapter("m", "x")["state"] == "failed"
        async with registry.use("m") as served:
            assert served is loaded  # the model itself is untouched
    finally:
        await registry.close()
