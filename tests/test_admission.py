"""Admission control on real servers: a token-bounded queue that answers 429 QUEUE_FULL with
Retry-After, per-request limits (413), client deadlines (504, work cancelled), and
tokenization that no huge request can monopolise.

Every test is bounded by work (a number of requests), not by the clock: timeouts are safety
nets only. The flood acceptance of issue 10 has a short CI form and a 60-second `slow` form.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from support.reference import cross_encoder_scores

from rerankd import Client
from rerankd.core.errors import QueueFull
from rerankd.engine.admission import DrainRate, QueueBound

TIMEOUT = 300
# The flood's server: MiniLM-L6 (~80 MB of fp32 weights) idles at ~0.5 GB here; bodies of 64
# in-flight 1,000-document requests, one admitted request's tokens and activations add little.
RSS_BOUND = 1024 * 1024 * 1024  # measured: 592 MiB peak (CI form)


def short_passages(trec, count: int, words: int) -> list[str]:
    """`count` TREC passages cut to their first `words` words (cheap to score, real text)."""
    passages = [d for q in trec for d in q.documents]
    return [" ".join(passages[i % len(passages)].split()[:words]) for i in range(count)]


def sie_body(query: str, documents: list[str], **options) -> dict:
    body: dict = {"query": {"text": query}, "items": [{"text": d} for d in documents]}
    if options:
        body["options"] = options
    return body


def assert_queue_full(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["x-error-code"] == "QUEUE_FULL"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "QUEUE_FULL"


def model_queue(url: str, name: str = "minilm") -> dict:
    return httpx.get(f"{url}/v1/models/{name}", timeout=TIMEOUT).json()["queue"]


# ------------------------------------------------------------------------------ the policy alone


def test_drain_rate_counts_busy_time_once_and_skips_idle_gaps():
    rate = DrainRate()
    assert rate.tokens_per_second is None
    rate.finished(1000, dispatched_at=0.0, now=1.0)
    rate.finished(1000, dispatched_at=0.0, now=2.0)  # in flight beside the first: only its last second counts
    rate.finished(500, dispatched_at=10.0, now=10.5)  # after an idle gap of 8 s, which is not counted
    assert rate.tokens_per_second == pytest.approx(2500 / 2.5)


def test_bound_refuses_with_the_time_to_make_room():
    bound = QueueBound(fixed=10_000, floor=1)
    bound.check(ahead=0, tokens=50_000)  # an empty queue takes even a request over the bound
    bound.check(ahead=4_000, tokens=6_000)  # fits exactly
    bound.rate.finished(2_000, dispatched_at=0.0, now=1.0)  # 2,000 tokens/s
    with pytest.raises(QueueFull) as refused:
        bound.check(ahead=9_000, tokens=5_000)
    assert refused.value.retry_after == 2  # 4,000 tokens must drain first: 2 s
    with pytest.raises(QueueFull) as refused:
        bound.check(ahead=9_000, tokens=50_000)
    assert refused.value.retry_after == 5  # larger than the bound: the whole queue must drain
    assert refused.value.extra == {"queued_tokens": 9_000, "max_queued_tokens": 10_000}


def test_default_bound_follows_the_measured_rate():
    bound = QueueBound(fixed=None, floor=4_096, target_wait=30.0)
    assert bound.limit == 4_096  # no rate yet: the floor
    bound.rate.finished(10_000, dispatched_at=0.0, now=1.0)
    assert bound.limit == 300_000  # 30 s at 10,000 tokens/s


# ------------------------------------------------------------------------------ queue bound


@pytest.fixture(scope="module")
def small_queue_server(start_server, minilm_cross_encoder_dir):
    """A bound below one 100-document request: such a request is admitted only onto an empty queue."""
    return start_server("--model", f"minilm={minilm_cross_encoder_dir}", "--max-queued-tokens", "3000")


def test_flood_past_the_token_bound_gets_queue_full_with_retry_after(small_queue_server, trec):
    url = small_queue_server.url
    bodies = [sie_body(q.query, q.documents) for q in trec[:12]]  # 12 x 100 passages, ~9,500 tokens each

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            return await asyncio.gather(*(http.post(f"{url}/v1/score/minilm", json=body) for body in bodies))

    responses = asyncio.run(flood())
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= 1 and statuses[429] >= 1, statuses
    for response in responses:
        if response.status_code == 429:
            assert_queue_full(response)
        else:
            assert len(response.json()["scores"]) == 100
    queue = model_queue(url)
    assert queue["max_queued_tokens"] == 3000
    assert queue["queued_tokens"] == 0 and queue["reserved_tokens"] == 0  # nothing leaked
    assert queue["drain_tokens_per_second"] > 0  # measured from the batches that ran


SIE_RETRY_SCRIPT = r"""
import json, sys
from sie_sdk import SIEClient
print("ready", flush=True)  # imported: the request goes out as soon as the test sends it
request = json.loads(sys.stdin.readline())
result = SIEClient(request["url"]).score(request["model"], {"text": request["query"]},
                                         [{"text": d} for d in request["documents"]])
json.dump({"scores": len(result["scores"])}, sys.stdout)
"""


def _queue_occupied(url: str, trec, count: int, documents: int = 50):
    """Start `count` requests and return once one of them is queued (the rest get 429)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(count)
    body = sie_body(trec[0].query, trec[0].documents[:documents])  # 50: ~4,700 tokens, over the bound of 3,000
    futures = [pool.submit(httpx.post, f"{url}/v1/score/minilm", json=body, timeout=TIMEOUT) for _ in range(count)]
    deadline = time.monotonic() + 60
    while model_queue(url).get("queued_tokens", 0) <= 3000 and time.monotonic() < deadline:
        time.sleep(0.02)
    return pool, futures


def refused(server) -> int:
    """429 answers so far, from the server's access log (one `rerankd.access` line per request)."""
    return len(re.findall(r"rerankd\.access: POST \S+ 429 ", server.log))


def test_sdks_retry_queue_full_until_admitted(small_queue_server, trec):
    """rerankd's SDK and the official sie-sdk both sleep Retry-After on 429 QUEUE_FULL and get their scores."""
    from test_sie_sdk_compat import sie_python

    url = small_queue_server.url
    documents = trec[5].documents[:20]  # ~2,000 tokens: refused while more than 1,000 tokens are queued
    refusals = refused(small_queue_server)
    pool, futures = _queue_occupied(url, trec, 2)
    with Client(url, wait_for_model=TIMEOUT) as client:
        result = client.score("minilm", trec[5].query, documents)
    assert len(result["scores"]) == 20
    assert {f.result().status_code for f in futures} <= {200, 429}
    assert refused(small_queue_server) >= refusals + 2  # the SDK's own refusal among them
    pool.shutdown()

    # sie-sdk imported before the queue fills, and 100 documents queued (~9,500 tokens): its request
    # arrives while they are, however slowly Python 3.12 starts and however fast this CPU drains.
    sie = subprocess.Popen(
        [sie_python(), "-c", SIE_RETRY_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sie.stdout.readline().strip() == "ready", sie.stderr.read()[-2000:]
    refusals = refused(small_queue_server)
    pool, futures = _queue_occupied(url, trec, 1, documents=100)
    payload = {"url": url, "model": "minilm", "query": trec[5].query, "documents": documents}
    output, errors = sie.communicate(json.dumps(payload) + "\n", timeout=TIMEOUT)
    assert sie.returncode == 0, errors[-2000:]
    assert json.loads(output) == {"scores": 20}
    assert futures[0].result().status_code == 200
    assert refused(small_queue_server) > refusals  # sie-sdk was refused, retried, and scored
    pool.shutdown()


# ------------------------------------------------------------------------------ flood acceptance


@dataclass
class FloodResult:
    statuses: Counter = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    probe_latencies: list[float] = field(default_factory=list)


async def _flood(
    url: str, big: list[str], probe: list[str], query: str, *, requests_per_client: int | None, seconds: float | None
) -> FloodResult:
    """64 clients sending 1,000-document requests (honouring Retry-After) and one 20-document probe."""
    result = FloodResult()
    end = None if seconds is None else time.monotonic() + seconds
    big_body = sie_body(query, big)
    probe_body = sie_body(query, probe)

    def keep_going(sent: int) -> bool:
        if end is not None:
            return time.monotonic() < end
        return sent < requests_per_client  # type: ignore[operator]

    def record(response: httpx.Response) -> float | None:
        result.statuses[response.status_code] += 1
        if response.status_code == 200:
            return None
        if response.status_code in (429, 503) and response.headers.get("retry-after"):
            return float(response.headers["retry-after"])
        result.bad.append(f"{response.status_code} {response.text[:200]}")
        return 1.0

    async def big_client(http: httpx.AsyncClient, index: int) -> None:
        sent = 0
        while keep_going(sent):
            sent += 1
            delay = record(await http.post(f"{url}/v1/score/minilm", json=big_body))
            if delay is not None and keep_going(sent):
                await asyncio.sleep(min(delay, 5.0) + (0.05 * index) % 1)  # spread, like jittered clients

    async def probe_client(http: httpx.AsyncClient, done: asyncio.Event) -> None:
        while not done.is_set() or not result.probe_latencies:
            started = time.monotonic()
            response = await http.post(f"{url}/v1/score/minilm", json=probe_body)
            delay = record(response)
            if response.status_code == 200:
                result.probe_latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.2)
            else:  # a latency probe: it polls for room rather than sleeping a whole Retry-After
                await asyncio.sleep(min(delay or 1.0, 0.2))

    limits = httpx.Limits(max_connections=80, max_keepalive_connections=80)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:
        done = asyncio.Event()
        probe = asyncio.create_task(probe_client(http, done))
        await asyncio.gather(*(big_client(http, i) for i in range(64)))
        done.set()
        await asyncio.wait_for(probe, TIMEOUT)
    return result


def _check_flood(server, result: FloodResult) -> dict:
    assert not result.bad, result.bad[:5]
    assert set(result.statuses) <= {200, 429, 503}, result.statuses
    assert result.statuses[429] > 0  # the bound was reached
    latencies = np.array(result.probe_latencies)
    p99 = float(np.percentile(latencies, 99))
    rss = server.peak_rss_bytes()
    summary = {
        "statuses": dict(result.statuses),
        "probe_accepted": len(latencies),
        "probe_p50_s": round(float(np.median(latencies)), 3),
        "probe_p99_s": round(p99, 3),
        "peak_rss_mib": None if rss is None else rss // 2**20,
    }
    print(f"\nflood: {summary}")
    assert p99 < 5.0, summary
    if rss is not None:
        assert rss < RSS_BOUND, summary
    return summary


@pytest.fixture(scope="module")
def flood_server(start_server, minilm_cross_encoder_dir):
    # A 20-document probe (~2,000 tokens) is admitted once at most 3,000 tokens wait: ~1 s of work on 2 cores.
    return start_server("--model", f"minilm={minilm_cross_encoder_dir}", "--max-queued-tokens", "5000")


def test_flood_of_thousand_document_requests_stays_bounded(flood_server, trec):
    """CI form: 64 clients x 3 requests of 1,000 short passages, and a 20-passage probe meanwhile."""
    big = short_passages(trec, 1000, 12)  # ~20 tokens per pair: the flood's shape at a CI cost
    probe = trec[7].documents[:20]
    result = asyncio.run(_flood(flood_server.url, big, probe, trec[7].query, requests_per_client=3, seconds=None))
    _check_flood(flood_server, result)
    assert sum(result.statuses.values()) >= 64 * 3


@pytest.mark.slow
def test_flood_sixty_seconds_of_full_passages(start_server, minilm_cross_encoder_dir, trec):
    """Issue 10's acceptance: 64 clients x 1,000 full TREC passages for 60 s."""
    # The bound is the latency target x throughput: ~1.5 s of queue at MiniLM-L6's ~5,000 tokens/s on 2 cores.
    server = start_server("--model", f"minilm={minilm_cross_encoder_dir}", "--max-queued-tokens", "8000")
    big = [d for q in trec for d in q.documents][:1000]
    probe = trec[7].documents[:20]
    result = asyncio.run(_flood(server.url, big, probe, trec[7].query, requests_per_client=None, seconds=60))
    _check_flood(server, result)


# ------------------------------------------------------------------------------ per-request limits


@pytest.fixture(scope="module")
def limited_server(start_server, minilm_cross_encoder_dir):
    return start_server(
        "--model",
        f"minilm={minilm_cross_encoder_dir}",
        "--max-items",
        "5",
        "--max-text-bytes",
        "1000",
        "--max-tokens-per-request",
        "300",
    )


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/score/minilm", sie_body("q", ["d"] * 6), "items"),
        ("/v1/score/minilm", sie_body("q", ["d", "x" * 1001]), "items[1].text"),
        ("/v1/score/minilm", sie_body("é" * 501, ["d"]), "query.text"),  # 501 characters, 1,002 bytes
        ("/v1/score/minilm", sie_body("q", ["word " * 90] * 4), "items"),  # ~4 x 93 tokens > 300
        ("/v1/rerank", {"model": "minilm", "query": "q", "documents": ["d", {"text": "x" * 1001}]}, "documents[1]"),
        ("/v1/rerank", {"model": "minilm", "query": "q", "documents": ["word " * 90] * 4}, "documents"),
        ("/rerank", {"model": "minilm", "query": "x" * 1001, "texts": ["d"]}, "query"),
        ("/rerank", {"model": "minilm", "query": "q", "texts": ["word " * 90] * 4}, "texts"),
    ],
)
def test_per_request_limits_answer_413_naming_the_field(limited_server, path, body, param):
    response = httpx.post(f"{limited_server.url}{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "REQUEST_TOO_LARGE"
    assert error["param"] == param


def test_requests_within_the_limits_are_scored(limited_server):
    body = sie_body("é" * 500, ["word " * 90] * 3)  # 1,000 bytes exactly; ~280 tokens
    response = httpx.post(f"{limited_server.url}/v1/score/minilm", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------------------ deadlines


def test_deadline_answers_504_cancels_the_work_and_the_server_still_serves(server, trec):
    documents = [d for q in trec[:10] for d in q.documents]  # 1,000 passages: tens of seconds of work here
    before = model_queue(server.url)
    response = httpx.post(
        f"{server.url}/v1/score/minilm", json=sie_body(trec[0].query, documents, timeout_ms=2000), timeout=TIMEOUT
    )
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "DEADLINE_EXCEEDED" and error["timeout_ms"] == 2000
    # Its queued units were dropped: the queue empties once the batches already running finish.
    deadline = time.monotonic() + 60
    while (queue := model_queue(server.url))["queued_units"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue["queued_units"] == 0 and queue["queued_tokens"] == 0 and queue["reserved_tokens"] == 0
    computed = queue["real_tokens"] - before.get("real_tokens", 0)
    assert computed < 50_000  # about half the ~95,000 tokens of the whole request at most (~2 s of work)
    for path, body in (
        ("/v1/rerank", {"model": "minilm", "query": trec[0].query, "documents": documents}),
        ("/rerank", {"model": "minilm", "query": trec[0].query, "texts": documents, "truncate": True}),
    ):
        timed = httpx.post(f"{server.url}{path}", json=body, headers={"X-Request-Timeout-Ms": "200"}, timeout=TIMEOUT)
        assert timed.status_code == 504 and timed.json()["error"]["code"] == "DEADLINE_EXCEEDED", timed.text
    ok = httpx.post(f"{server.url}/v1/score/minilm", json=sie_body("q", ["d"], timeout_ms=60_000), timeout=TIMEOUT)
    assert ok.status_code == 200


@pytest.mark.parametrize("value", ["0", "-5", "soon", "1.5", "99999999999"])
def test_bad_deadline_header_is_400(server, value):
    response = httpx.post(
        f"{server.url}/v1/score/minilm",
        json=sie_body("q", ["d"]),
        headers={"X-Request-Timeout-Ms": value},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Request-Timeout-Ms"


# ------------------------------------------------------------------------------ huge texts


def long_text(trec, chars: int) -> str:
    text = " ".join(d for q in trec for d in q.documents)
    return (text * (chars // len(text) + 1))[:chars]


def test_huge_text_is_scored_as_if_tokenized_whole(server, minilm_cross_encoder_dir, trec):
    """Truncation tokenizes only a prefix; the score equals the reference's, which tokenizes everything."""
    query = trec[2].query
    documents = [long_text(trec, 300_000), trec[2].documents[0]]
    with Client(server.url) as client:
        result = client.score("minilm", query, documents)
    got = {entry.index: entry.score for entry in result.scores}
    reference = cross_encoder_scores(minilm_cross_encoder_dir, query, documents)
    assert abs(got[0] - reference[0]) <= 1e-5 and abs(got[1] - reference[1]) <= 1e-5
    assert {entry.index: entry.truncated for entry in result.scores} == {0: True, 1: False}


@pytest.fixture(scope="module")
def fairness_server(start_server, minilm_cross_encoder_dir):
    # Room for both huge requests in the queue; their tokens past the per-request limit end them (413).
    return start_server(
        "--model",
        f"minilm={minilm_cross_encoder_dir}",
        "--max-queued-tokens",
        "100000000",
        "--max-tokens-per-request",
        "200000",
    )


def test_small_request_is_not_stuck_behind_huge_tokenization(fairness_server, trec):
    """Two requests that need a multi-megabyte text tokenized whole (chunked) cannot hold both threads."""
    url = fairness_server.url
    huge = long_text(trec, 3_000_000)
    huge_body = sie_body(trec[1].query, [huge], max_tokens_per_doc=256)  # every window: all of it tokenized
    small_body = sie_body(trec[1].query, [trec[1].documents[0]])

    async def run() -> tuple[list[int], int, bool]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            heavy = [asyncio.create_task(http.post(f"{url}/v1/score/minilm", json=huge_body)) for _ in range(2)]
            # Both huge requests are admitted (their tokens reserved) before the small one is sent.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                queue = (await http.get(f"{url}/v1/models/minilm")).json()["queue"]
                if queue.get("reserved_tokens", 0) >= 2 * len(huge) // 4:
                    break
                await asyncio.sleep(0.05)
            small = await http.post(f"{url}/v1/score/minilm", json=small_body)
            huge_pending = not any(task.done() for task in heavy)
            return [r.status_code for r in await asyncio.gather(*heavy)], small.status_code, huge_pending

    heavy_statuses, small_status, huge_pending = asyncio.run(run())
    assert small_status == 200
    assert huge_pending  # the small request finished while both huge ones were still being tokenized
    assert heavy_statuses == [413, 413]  # ~750,000 tokens each, past --max-tokens-per-request
