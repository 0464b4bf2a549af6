"""Soak: 32 concurrent clients for a fixed number of requests → 0 errors, RSS flat after warm-up.

RSS (VmRSS from /proc) is sampled once the warm-up phase is over and the server has been
idle long enough to give freed memory back (`--idle-trim-seconds`), and again at the end in
the same state; a leak of retained requests, batches or buffers shows up as growth. The CI
form is bounded by request count (about a minute on 2 idle cores); the `slow` form runs ten
times as many requests (about 10 minutes).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from support.lifecycle import TIMEOUT
from test_metrics import scrape, value

CLIENTS = 32
DOCUMENTS = 5  # many small requests: a per-request leak shows sooner than in a few big ones
IDLE_TRIM_SECONDS = 0.5
MAX_GROWTH = 0.10


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc")


async def run_clients(url: str, bodies: list[dict], per_client: int) -> dict[int, int]:
    """`CLIENTS` clients, each sending `per_client` requests back to back; statuses counted."""
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:

        async def one(index: int) -> None:
            for sent in range(per_client):
                response = await client.post("/v1/rerank", json=bodies[(index * 7 + sent) % len(bodies)])
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await asyncio.gather(*(one(index) for index in range(CLIENTS)))
    return statuses


def settled_rss(pid: int) -> int:
    """RSS once the server has been idle long enough to trim its heap."""
    time.sleep(IDLE_TRIM_SECONDS + 1.5)
    return rss_bytes(pid)


def soak(start_server, model_dir: Path, trec, warmup_per_client: int, per_client: int) -> None:
    server = start_server("--model", f"minilm={model_dir}", "--idle-trim-seconds", str(IDLE_TRIM_SECONDS))
    bodies = [
        {"model": "minilm", "query": query.query, "documents": query.documents[offset : offset + DOCUMENTS]}
        for query in trec
        for offset in (0, 20, 40)
    ]
    warmup = asyncio.run(run_clients(server.url, bodies, warmup_per_client))
    assert warmup == {200: CLIENTS * warmup_per_client}
    before = settled_rss(server.process.pid)
    statuses = asyncio.run(run_clients(server.url, bodies, per_client))
    after = settled_rss(server.process.pid)
    assert statuses == {200: CLIENTS * per_client}, statuses
    assert server.alive()
    growth = after / before - 1
    print(f"RSS after warm-up {before / 2**20:.0f} MiB, at the end {after / 2**20:.0f} MiB ({growth:+.1%})")
    assert growth <= MAX_GROWTH, f"RSS grew {growth:.1%}: {before / 2**20:.0f} -> {after / 2**20:.0f} MiB"
    sent = CLIENTS * (warmup_per_client + per_client)
    samples = scrape(server.url)
    ok = value(samples, "rerankd_http_requests_total", route="/v1/rerank", method="POST", model="minilm", status="200")
    assert ok == sent
    assert value(samples, "rerankd_queue_units", model="minilm") == 0


def test_soak_32_clients(start_server, minilm_cross_encoder_dir, trec):
    # 576 requests, 2,880 pairs: about a minute of MiniLM-L6 on 2 cores (~60 pairs/s).
    soak(start_server, minilm_cross_encoder_dir, trec, warmup_per_client=2, per_client=16)


@pytest.mark.slow
def test_soak_32_clients_10_minutes(start_server, minilm_cross_encoder_dir, trec):
    # 5,760 requests after warm-up: about 10 minutes on 2 cores.
    soak(start_server, minilm_cross_encoder_dir, trec, warmup_per_client=10, per_client=170)
