"""`GET /metrics` counts exactly what was sent; request ids are echoed and logged as JSON lines.

One real server (two small cross-encoders, room for one: every switch evicts) takes a known
mix of requests: 200s on two models and two routes, 404s and 400s with known codes, a PUT
and a DELETE. The scrape must parse with prometheus-client's own parser and match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.lifecycle import DOCUMENTS, QUERY, TIMEOUT

OK_A_RERANK = 5
OK_A_SCORE = 3
NOT_FOUND = 2
MALFORMED = 2


def server_args(checkpoint_a: Path, checkpoint_b: Path) -> list[str]:
    """One list, so flags the server later needs (e.g. to enable the admin API) go in one place."""
    return [
        "--admin-api",
        "--model",
        f"a={checkpoint_a}",
        "--model",
        f"b={checkpoint_b}",
        "--lazy",
        "--max-loaded-models",
        "1",
        "--log-format",
        "json",
    ]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from `/metrics`, parsed by prometheus-client."""
    response = httpx.get(f"{url}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (never incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def rerank(client: httpx.Client, model: str, request_id: str | bytes | None = None) -> httpx.Response:
    body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
    return client.post("/v1/rerank", json=body, headers={"X-Request-ID": request_id} if request_id else {})


@pytest.fixture(scope="module")
def traffic(start_server, checkpoint_a, checkpoint_b):
    """The server, and the two scrapes taken after the scoring mix and after PUT + DELETE."""
    server = start_server(*server_args(checkpoint_a, checkpoint_b))
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(OK_A_RERANK):
            assert rerank(client, "a").status_code == 200
        for _ in range(OK_A_SCORE):
            body = {"query": {"text": QUERY}, "items": [{"text": t} for t in DOCUMENTS[:3]]}
            assert client.post("/v1/score/a", json=body, headers={"X-Request-ID": "sie-3-items"}).status_code == 200
        for _ in range(NOT_FOUND):
            assert rerank(client, "nope").status_code == 404
        for _ in range(MALFORMED):
            response = client.post("/v1/rerank", content=b"{not json", headers={"Content-Type": "application/json"})
            assert response.status_code == 400
        assert rerank(client, "b").status_code == 200  # loads b, evicting a
        before_admin = scrape(server.url)
        assert client.put("/v1/models/c", json={"source": str(checkpoint_a)}).status_code == 200  # evicts b
        loaded_c = scrape(server.url)
        assert client.delete("/v1/models/c").status_code == 200
        after_delete = scrape(server.url)
    return server, before_admin, loaded_c, after_delete


def test_requests_are_counted_by_route_model_and_status(traffic):
    _, samples, _, _ = traffic
    requests = "rerankd_http_requests_total"
    rerank_route = {"route": "/v1/rerank", "method": "POST"}
    assert value(samples, requests, **rerank_route, model="a", status="200") == OK_A_RERANK
    assert value(samples, requests, route="/v1/score/{model}", method="POST", model="a", status="200") == OK_A_SCORE
    assert value(samples, requests, **rerank_route, model="b", status="200") == 1
    # Names not served here are not labels (a client could grow the label set without end).
    assert value(samples, requests, **rerank_route, model="", status="404") == NOT_FOUND
    assert value(samples, requests, **rerank_route, model="", status="400") == MALFORMED
    assert not any(dict(labels).get("model") == "nope" for _, labels in samples)
    assert value(samples, "rerankd_http_requests_rejected_total", code="MODEL_NOT_FOUND") == NOT_FOUND
    assert value(samples, "rerankd_http_requests_rejected_total", code="MALFORMED_BODY") == MALFORMED
    total_rerank = OK_A_RERANK + NOT_FOUND + MALFORMED + 1
    assert value(samples, "rerankd_http_request_duration_seconds_count", **rerank_route) == total_rerank
    assert value(samples, "rerankd_http_request_duration_seconds_bucket", **rerank_route, le="+Inf") == total_rerank


def test_engine_histograms_are_consistent(traffic):
    _, samples, _, _ = traffic
    scored_a = OK_A_RERANK + OK_A_SCORE
    assert value(samples, "rerankd_tokenize_seconds_count", model="a") == scored_a
    assert value(samples, "rerankd_queue_wait_seconds_count", model="a") == scored_a
    assert value(samples, "rerankd_tokenize_seconds_count", model="b") == 1
    for model in ("a", "b"):
        batches = value(samples, "rerankd_batch_size_count", model=model)
        assert batches > 0
        assert value(samples, "rerankd_inference_seconds_count", model=model) == batches
        assert value(samples, "rerankd_batch_padded_tokens_count", model=model) == batches
        real = value(samples, "rerankd_batch_real_tokens_total", model=model)
        padded = value(samples, "rerankd_batch_padded_tokens_sum", model=model)
        assert 0 < real <= padded
        waste = value(samples, "rerankd_padding_waste_ratio", model=model)
        assert waste == pytest.approx(1 - real / padded)
    # Every sequence of every request ran: 6 documents x 5 + 3 x 3 on a, 6 on b.
    assert value(samples, "rerankd_batch_size_sum", model="a") == len(DOCUMENTS) * OK_A_RERANK + 3 * OK_A_SCORE
    assert value(samples, "rerankd_batch_size_sum", model="b") == len(DOCUMENTS)
    assert value(samples, "rerankd_queue_units", model="a") == 0  # idle: nothing waits
    assert value(samples, "process_resident_memory_bytes") > 0


def test_loads_evictions_and_memory(traffic):
    _, before, loaded_c, after = traffic
    model = {"kind": "model"}
    assert value(before, "rerankd_model_loads_total", model="a", **model) == 1
    assert value(before, "rerankd_model_loads_total", model="b", **model) == 1
    assert value(before, "rerankd_model_evictions_total", model="a", **model) == 1  # b needed the one slot
    assert value(before, "rerankd_models_loaded") == 1
    assert value(before, "rerankd_model_memory_bytes", model="b") > 10_000_000  # MiniLM-L6: ~90 MB in fp32
    assert value(before, "rerankd_model_memory_bytes", model="a") == 0  # evicted: no series
    assert value(loaded_c, "rerankd_model_loads_total", model="c", **model) == 1
    assert value(loaded_c, "rerankd_model_evictions_total", model="b", **model) == 1
    assert value(loaded_c, "rerankd_model_memory_bytes", model="c") == value(
        before, "rerankd_model_memory_bytes", model="b"
    )
    assert value(after, "rerankd_model_unloads_total", model="c", **model) == 1
    assert value(after, "rerankd_models_loaded") == 0
    assert value(after, "rerankd_model_load_failures_total", model="a", **model) == 0
    assert (
        value(after, "rerankd_http_requests_total", route="/v1/models/{name}", method="PUT", model="c", status="200")
        == 1
    )


def test_load_failures_are_counted(start_server, minilm_cross_encoder_dir, broken_model_dir):
    server = start_server(
        "--model", f"ok={minilm_cross_encoder_dir}", "--model", f"broken={broken_model_dir}", "--ready-when", "any"
    )
    body = {"model": "broken", "query": QUERY, "documents": DOCUMENTS}
    assert httpx.post(f"{server.url}/v1/rerank", json=body, timeout=TIMEOUT).status_code == 502
    samples = scrape(server.url)
    assert value(samples, "rerankd_model_load_failures_total", model="broken", kind="model") == 1  # at start-up
    assert value(samples, "rerankd_http_requests_rejected_total", code="MODEL_LOAD_FAILED") == 1


def test_request_ids_are_echoed_and_logged_as_json(traffic):
    server, *_ = traffic
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        assert rerank(client, "b", "client-id_1.2:3").headers["x-request-id"] == "client-id_1.2:3"
        generated = rerank(client, "b").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        for bad in (b"has spaces", b"x" * 129, "naïve".encode(), b"<script>"):
            echoed = rerank(client, "b", bad).headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", echoed), bad  # replaced, never echoed as sent
        error = rerank(client, "nope", "on-an-error")
        assert error.status_code == 404 and error.headers["x-request-id"] == "on-an-error"
        assert client.get("/nowhere", headers={"X-Request-ID": "no-route"}).headers["x-request-id"] == "no-route"
        assert client.get("/healthz").headers["x-request-id"]

    lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line["logger"] == "rerankd.access"}
    sie = access["sie-3-items"]
    assert sie["route"] == "/v1/score/{model}" and sie["path"] == "/v1/score/a"
    assert (sie["model"], sie["status"], sie["items"], sie["method"]) == ("a", 200, 3, "POST")
    assert sie["duration_ms"] > 0 and sie["level"] == "INFO" and sie["time"].endswith("+00:00")
    assert (access["on-an-error"]["status"], access["on-an-error"]["error_code"]) == (404, "MODEL_NOT_FOUND")
    assert access["no-route"]["route"] == "unmatched"
    assert access[generated]["model"] == "b"
    # uvicorn's own lines (start-up) come through the same JSON formatter; its access log is off.
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert not any(line["logger"] == "uvicorn.access" for line in lines)
