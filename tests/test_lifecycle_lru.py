"""`--max-loaded-models 1`: models take turns in memory, evicted least recently used, reloaded on demand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.lifecycle import DOCUMENTS, QUERY, TIMEOUT, close_to, scores_by_index
from support.reference import bi_encoder_scores, cross_encoder_scores

from rerankd import Client
from rerankd.bench.server import RunningServer

CATALOG_ID = "sentence-transformers/all-MiniLM-L6-v2"  # installed offline by the [demo] extra


@pytest.fixture(scope="module")
def checkpoints(checkpoint_a: Path, checkpoint_b: Path) -> dict[str, Path]:
    return {"a": checkpoint_a, "b": checkpoint_b}


@pytest.fixture(scope="module")
def references(checkpoints) -> dict[str, np.ndarray]:
    return {name: cross_encoder_scores(path, QUERY, DOCUMENTS) for name, path in checkpoints.items()}


@pytest.fixture(scope="module")
def lru_server(start_server: Callable[..., RunningServer], checkpoints) -> RunningServer:
    return start_server(
        "--max-loaded-models",
        "1",
        "--allow-download",
        "--model",
        f"a={checkpoints['a']}",
        "--model",
        f"b={checkpoints['b']}",
        "--lazy",
    )


def models(server: RunningServer) -> dict[str, dict]:
    listing = httpx.get(f"{server.url}/v1/models", timeout=TIMEOUT).json()
    return {m["name"]: m for m in listing["data"] if m["registered"]} | {"": listing["memory"]}


def test_lazy_model_is_registered_but_not_loaded(lru_server):
    # runs first: nothing has asked for `b` yet
    listed = models(lru_server)
    assert listed["a"]["state"] == "loaded"
    assert listed["b"]["state"] == "available"
    assert listed["b"]["lazy"] is True
    assert listed["b"]["memory_bytes"] == 0
    for route in ("/readyz", "/health"):  # `/health` is TEI's name for it
        ready = httpx.get(f"{lru_server.url}{route}", timeout=TIMEOUT)
        assert ready.status_code == 200  # lazy models do not hold readiness back
        assert ready.json()["models"] == {"a": "loaded", "b": "available"}


def test_alternating_requests_evict_and_reload_with_correct_scores(lru_server, references):
    with Client(lru_server.url) as client:
        for _ in range(3):
            for name in ("a", "b"):
                result = client.score(name, QUERY, DOCUMENTS)
                assert close_to(scores_by_index(result), references[name]), name
                listed = models(lru_server)
                other = "b" if name == "a" else "a"
                assert listed[name]["state"] == "loaded"
                assert listed[other]["state"] == "available"
                assert listed[""]["loaded_models"] == 1
    listed = models(lru_server)
    assert listed["a"]["evictions"] >= 3
    assert listed["b"]["evictions"] >= 2
    assert listed["a"]["loads"] >= 3 and listed["b"]["loads"] >= 3


def test_concurrent_requests_for_two_models_share_one_slot(lru_server, references):
    """Busy models are never evicted: loads wait for the other model to go idle, nothing fails."""
    results: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with Client(lru_server.url) as client:
                for _ in range(3):
                    results[name].append(scores_by_index(client.score(name, QUERY, DOCUMENTS)))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b") for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for name, runs in results.items():
        assert len(runs) == 6
        assert all(close_to(got, references[name]) for got in runs)
    assert models(lru_server)[""]["loaded_models"] == 1


def test_catalog_id_loads_on_demand_with_allow_download(lru_server, minilm_bi_encoder_dir):
    before = models(lru_server)
    assert CATALOG_ID not in before
    reference = bi_encoder_scores(minilm_bi_encoder_dir, QUERY, DOCUMENTS)
    with Client(lru_server.url) as client:
        result = client.score(CATALOG_ID, QUERY, DOCUMENTS)
    assert close_to(scores_by_index(result), reference, 1e-5)
    listed = models(lru_server)
    assert listed[CATALOG_ID]["state"] == "loaded"
    assert listed[CATALOG_ID]["family"] == "bi-encoder"
    assert listed["a"]["state"] == listed["b"]["state"] == "available"  # it took the one slot
