"""SIGTERM under load: /readyz turns 503 at once, new requests get 503 SHUTTING_DOWN, in-flight
requests finish within --drain-timeout (or are cancelled with SHUTTING_DOWN), and the process exits 0.

In-flight requests are long by work alone: many documents cut into small batches
(`--max-batch-tokens`), on a tiny BERT cross-encoder that loads in a moment.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.encoder_checkpoints import build_bert_cross_encoder

from rerankd.bench.server import RunningServer

TIMEOUT = 120
QUERY = {"text": "how long does a flea live"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, minilm_bi_encoder_dir: Path) -> Path:
    return build_bert_cross_encoder(tmp_path_factory.mktemp("drain") / "tiny", minilm_bi_encoder_dir, seed=5)


def body(documents: int) -> dict:
    items = [{"text": f"document {i}: a flea lives for about a year on its host animal"} for i in range(documents)]
    return {"query": QUERY, "items": items}


def active_requests(server: RunningServer) -> int:
    info = httpx.get(f"{server.url}/v1/models/m", timeout=TIMEOUT).json()
    return info.get("queue", {}).get("active_requests", 0)


def send_in_flight(
    server: RunningServer, count: int, documents: int
) -> tuple[list[httpx.Response], list[threading.Thread]]:
    """`count` scoring requests on their own connections, returned once all are queued in the scheduler."""
    responses: list[httpx.Response] = []

    def one() -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            responses.append(client.post(f"{server.url}/v1/score/m", json=body(documents)))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIMEOUT
    while active_requests(server) < count:
        assert not responses, f"a request finished before all {count} were in flight: make them longer"
        assert time.monotonic() < deadline, "the requests never all reached the scheduler"
        time.sleep(0.02)
    return responses, threads


def exit_code(server: RunningServer, within: float) -> int:
    try:
        return server.process.wait(timeout=max(0.01, within))
    except subprocess.TimeoutExpired:
        server.process.wait(timeout=TIMEOUT)
        raise AssertionError(f"still running {within:.2f}s later than allowed:\n{server.log[-3000:]}") from None


def start(start_server: Callable[..., RunningServer], model: Path, batch_tokens: int, *args: str) -> RunningServer:
    # The queue bound is lifted: these requests are long on purpose, and must all be in flight.
    return start_server(
        "--model", f"m={model}", "--max-batch-tokens", str(batch_tokens), "--max-queued-tokens", "100000000", *args
    )


def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_ones(start_server, tiny_model, record_property):
    server = start(start_server, tiny_model, 128, "--drain-timeout", "30")
    # Long by work (a few seconds on a quiet 2-core machine), far inside the 30 s drain on a slow one.
    responses, threads = send_in_flight(server, 8, documents=400)

    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    ready = httpx.get(f"{server.url}/readyz", timeout=TIMEOUT)
    record_property("readyz_503_round_trip_s", round(time.monotonic() - signalled, 4))
    assert ready.status_code == 503  # the very first probe after the signal
    assert ready.json()["draining"] is True
    assert ready.headers["connection"] == "close"
    assert httpx.get(f"{server.url}/healthz", timeout=TIMEOUT).status_code == 200  # still alive

    refused = httpx.post(f"{server.url}/v1/score/m", json=body(1), timeout=TIMEOUT)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "SHUTTING_DOWN"
    assert refused.headers["x-error-code"] == "SHUTTING_DOWN"
    assert refused.headers["connection"] == "close"
    assert httpx.get(f"{server.url}/v1/models", timeout=TIMEOUT).status_code == 503  # every route but health

    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert [r.status_code for r in responses] == [200] * 8, [r.text[:200] for r in responses]
    assert all(len(r.json()["scores"]) == 400 for r in responses)
    assert all(r.headers["connection"] == "close" for r in responses)  # answered while draining

    returncode = exit_code(server, within=30 + 2 - (time.monotonic() - signalled))
    record_property("exit_after_signal_s", round(time.monotonic() - signalled, 3))
    assert returncode == 0
    assert "drained in" in server.log


def test_work_past_the_drain_timeout_is_cancelled_with_shutting_down(start_server, tiny_model, record_property):
    server = start(start_server, tiny_model, 128, "--drain-timeout", "1")
    # Far more than a second of work: ~8 s of a tiny model on OpenVINO on a quiet 2-core AVX-512 machine.
    responses, threads = send_in_flight(server, 4, documents=8000)

    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert [r.status_code for r in responses] == [503] * 4, server.log[-3000:]
    for response in responses:
        error = response.json()["error"]
        assert error["code"] == "SHUTTING_DOWN"
        assert "did not finish within 1s" in error["message"]
    returncode = exit_code(server, within=1 + 2 - (time.monotonic() - signalled))
    record_property("exit_after_signal_s", round(time.monotonic() - signalled, 3))
    assert returncode == 0
    assert "cancelling 4 request(s)" in server.log
