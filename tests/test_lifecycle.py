"""Models added, hot-swapped and removed at run time over the admin API, without failing a request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.lifecycle import DOCUMENTS, QUERY, TIMEOUT, close_to, score_body, scores_by_index
from support.reference import cross_encoder_scores

from rerankd import APIError, AsyncClient, Client
from rerankd.bench.server import RunningServer


@pytest.fixture(scope="module")
def reference_a(checkpoint_a) -> np.ndarray:
    return cross_encoder_scores(checkpoint_a, QUERY, DOCUMENTS)


@pytest.fixture(scope="module")
def reference_b(checkpoint_b) -> np.ndarray:
    return cross_encoder_scores(checkpoint_b, QUERY, DOCUMENTS)


@pytest.fixture(scope="module")
def admin_server(start_server: Callable[..., RunningServer], checkpoint_a: Path, minilm_cross_encoder_dir: Path):
    return start_server("--admin-api", "--model", f"m={checkpoint_a}", "--model", f"other={minilm_cross_encoder_dir}")


def post_score(url: str, model: str, http: httpx.Client | None = None) -> httpx.Response:
    return (http or httpx).post(f"{url}/v1/score/{model}", json=score_body(), timeout=TIMEOUT)


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@dataclass
class Sample:
    sent: float
    done: float
    status: int | None
    scores: np.ndarray | None
    error: str | None = None


def test_hot_swap_under_load_fails_nothing(admin_server, checkpoint_a, checkpoint_b, reference_a, reference_b):
    """8 clients score continuously while `PUT /v1/models/m` swaps checkpoint A for B."""
    assert np.abs(reference_a - reference_b).max() > 1e-2  # A and B are told apart by their scores
    url = admin_server.url
    assert close_to(scores_by_index(post_score(url, "m").json()), reference_a)
    samples: list[Sample] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(timeout=TIMEOUT) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post(f"{url}/v1/score/m", json=score_body())
                except httpx.HTTPError as error:
                    samples.append(Sample(sent, time.monotonic(), None, None, repr(error)))
                    continue
                done = time.monotonic()
                ok = response.status_code == 200
                scores = scores_by_index(response.json()) if ok else None
                samples.append(Sample(sent, done, response.status_code, scores, None if ok else response.text))

    clients = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in clients:
        thread.start()
    try:
        wait_until(lambda: len(samples) >= 16)  # every client in its loop: steady load on A
        put_sent = time.monotonic()
        response = httpx.put(f"{url}/v1/models/m", json={"source": str(checkpoint_b)}, timeout=300)
        put_done = time.monotonic()
        wait_until(lambda: sum(s.sent > put_done for s in samples) >= 16)
    finally:
        stop.set()
        for thread in clients:
            thread.join()

    assert response.status_code == 200, response.text
    info = response.json()
    assert info["state"] == "loaded"
    assert info["source"] == str(checkpoint_b)
    assert info["swaps"] == 1
    failures = [s for s in samples if s.status != 200]
    assert not failures, failures[:3]
    served_by = []
    for sample in samples:
        is_a, is_b = close_to(sample.scores, reference_a), close_to(sample.scores, reference_b)
        assert is_a or is_b, f"a response matches neither checkpoint: {sample.scores}"
        served_by.append("A" if is_a else "B")
    after = [v for s, v in zip(samples, served_by, strict=True) if s.sent > put_done]
    before = [v for s, v in zip(samples, served_by, strict=True) if s.done < put_sent]
    during = [s for s in samples if s.sent < put_done and s.done > put_sent]
    assert after and set(after) == {"B"}
    assert before and set(before) == {"A"}
    assert during
    longest = max(s.done - s.sent for s in during)
    steady = float(np.median([s.done - s.sent for s in samples if s.done < put_sent]))
    print(
        f"\nhot-swap: PUT took {put_done - put_sent:.2f}s; {len(during)} requests overlapped it "
        f"(longest {longest * 1000:.0f} ms; median before the PUT {steady * 1000:.0f} ms); "
        f"{len(samples)} requests in all, 0 failed; {len(before)} before (A), {len(after)} after (B)"
    )


def test_failed_swap_keeps_the_old_version_serving(admin_server, checkpoint_a, broken_model_dir, reference_a):
    url = admin_server.url
    with Client(url) as client:
        client.swap("m", str(checkpoint_a))
        for source, reason in (("/nonexistent/rerankd-model", "does not exist"), (str(broken_model_dir), "Error")):
            with pytest.raises(APIError) as caught:
                client.swap("m", source)
            assert caught.value.status == 502
            assert caught.value.code == "MODEL_LOAD_FAILED"
            assert reason in caught.value.message
            assert "previous version keeps serving" in caught.value.message
            info = client.get_model("m")
            assert info["state"] == "loaded"
            assert info["source"] == str(checkpoint_a)
            assert info["last_swap_error"]
            assert close_to(scores_by_index(client.score("m", QUERY, DOCUMENTS)), reference_a)


def test_model_added_at_run_time_serves_then_unloads(admin_server, checkpoint_b, reference_b):
    url = admin_server.url
    name = "team/reranker-b"  # names may hold '/', like Hugging Face ids
    with Client(url) as client:
        info = client.load_model(name, str(checkpoint_b))
        assert info["state"] == "loaded"
        assert info["family"] == "cross-encoder"
        assert close_to(scores_by_index(client.score(name, QUERY, DOCUMENTS)), reference_b)
        listed = {m["name"]: m for m in client.list_models()}
        assert listed[name]["registered"] is True
        assert client.unload_model(name)["deleted"] is True
        with pytest.raises(APIError) as caught:
            client.score(name, QUERY, DOCUMENTS)
        assert caught.value.status == 404
        assert name not in {m["name"] for m in client.list_models()}
    assert httpx.get(f"{url}/v1/models/{name}", timeout=TIMEOUT).status_code == 404
    assert httpx.delete(f"{url}/v1/models/{name}", timeout=TIMEOUT).status_code == 404


def test_unload_lets_in_flight_work_finish(admin_server, checkpoint_b):
    url = admin_server.url
    with Client(url) as client:
        client.load_model("doomed", str(checkpoint_b))
    documents = [f"{text} (copy {i})" for i in range(50) for text in DOCUMENTS]
    outcome: dict = {}

    def big_request() -> None:
        body = {"query": {"text": QUERY}, "items": [{"text": text} for text in documents]}
        response = httpx.post(f"{url}/v1/score/doomed", json=body, timeout=TIMEOUT)
        outcome["status"], outcome["done"] = response.status_code, time.monotonic()
        outcome["count"] = len(response.json().get("scores", []))

    thread = threading.Thread(target=big_request)
    thread.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/v1/models/doomed", timeout=TIMEOUT).json()["queue"]["in_flight_requests"] == 0:
        assert time.monotonic() < deadline, "the big request never started"
        time.sleep(0.01)
    response = httpx.delete(f"{url}/v1/models/doomed", timeout=TIMEOUT)
    deleted = time.monotonic()
    thread.join()
    assert response.status_code == 200
    assert outcome["status"] == 200 and outcome["count"] == len(documents)
    assert outcome["done"] <= deleted + 0.5  # the DELETE answered only once the request was done
    assert post_score(url, "doomed").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/models/x", {}, "source"),
        ("/v1/models/x", {"source": 3}, "source"),
        ("/v1/models/x", {"source": "  "}, "source"),
        ("/v1/models/x", {"source": "/tmp", "revision": 1}, "revision"),
        ("/v1/models/x", {"source": "/tmp", "dtype": "fp16"}, "dtype"),
        ("/v1/models/a:b", {"source": "/tmp"}, "name"),
        ("/v1/models/x", [], None),
    ],
)
def test_admin_bodies_are_validated(admin_server, path, body, param):
    response = httpx.put(f"{admin_server.url}{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == 400, response.text
    assert response.json()["error"].get("param") == param
    assert httpx.get(f"{admin_server.url}/v1/models/x", timeout=TIMEOUT).status_code == 404


def test_load_failure_is_502_with_reason_and_recovers_without_restart(
    admin_server, broken_model_dir, minilm_cross_encoder_dir
):
    url = admin_server.url
    with Client(url) as client:
        for source in ("/nonexistent/rerankd-model", str(broken_model_dir)):
            with pytest.raises(APIError) as caught:
                client.load_model("fragile", source)
            assert caught.value.status == 502
            assert caught.value.code == "MODEL_LOAD_FAILED"
            assert len(caught.value.message) > len("model 'fragile' failed to load: ") + 10
            info = client.get_model("fragile")
            assert info["state"] == "failed"
            assert info["last_error"]["message"]
            response = post_score(url, "fragile")
            assert response.status_code == 502
            assert response.json()["error"]["code"] == "MODEL_LOAD_FAILED"
            assert post_score(url, "other").status_code == 200
        assert client.load_model("fragile", str(minilm_cross_encoder_dir))["state"] == "loaded"
        assert post_score(url, "fragile").status_code == 200
        client.unload_model("fragile")
    assert admin_server.alive()


def test_model_info_reports_state_memory_and_use(admin_server, minilm_cross_encoder_dir):
    url = admin_server.url
    before = httpx.get(f"{url}/v1/models/other", timeout=TIMEOUT).json()
    assert post_score(url, "other").status_code == 200
    info = httpx.get(f"{url}/v1/models/other", timeout=TIMEOUT).json()
    assert info["requests_served"] == before["requests_served"] + 1
    assert info["state"] == "loaded"
    assert info["family"] == "cross-encoder"
    assert info["source"] == str(minilm_cross_encoder_dir)
    assert info["dtype"] == "float32"
    assert info["device"] == "cpu"
    compiled = info["execution"].get("compiled_bytes", 0)  # OpenVINO's own copy of the weights, if it serves
    assert 80e6 < info["memory_bytes"] - compiled < 100e6  # MiniLM-L6: 22.7M fp32 parameters
    assert compiled == 0 or 80e6 < compiled < 100e6
    assert info["adapters"] == []
    listing = httpx.get(f"{url}/v1/models", timeout=TIMEOUT).json()
    assert listing["memory"]["used_bytes"] >= info["memory_bytes"]
    catalog_only = [m for m in listing["data"] if not m["registered"]]
    assert catalog_only and all(m["state"] == "available" for m in catalog_only)
    assert listing["models"] == listing["data"]
    # a catalog id that was never registered does not load on demand without --allow-download
    response = post_score(url, "cross-encoder/ms-marco-MiniLM-L-6-v2")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "MODEL_NOT_FOUND"


def test_async_client_admin_methods(admin_server, checkpoint_b, reference_b):
    async def scenario() -> None:
        async with AsyncClient(admin_server.url) as client:
            info = await client.load_model("async-model", str(checkpoint_b))
            assert info["state"] == "loaded"
            result = await client.score("async-model", QUERY, DOCUMENTS)
            assert close_to(scores_by_index(result), reference_b)
            assert (await client.swap("async-model", str(checkpoint_b)))["swaps"] == 1
            assert "async-model" in {m["name"] for m in await client.list_models()}
            assert (await client.get_model("async-model"))["requests_served"] == 1
            await client.unload_model("async-model")
            with pytest.raises(APIError):
                await client.get_model("async-model")

    asyncio.run(scenario())
