"""Does `rerankd serve` give memory back after a flood? RSS at start, at peak, and idle after.

    PYTHONPATH=src python benchmarks/memory_flood.py --clients 64 --documents 1000 [-- SERVER FLAGS]

Starts the MiniLM-L6 cross-encoder server (built offline, as `rerankd bench` does), samples
the server's VmRSS from /proc while `--clients` clients each send `--rounds` requests of
`--documents` TREC DL 2019 passages at once, then idles `--idle` seconds and samples again.
Flags after `--` go to the server, e.g. `-- --idle-trim-seconds 0 --malloc-arenas 0` for the
behaviour before rerankd gave memory back.

`--cancel-when-queued`: once every request is tokenized and queued (the peak of what the
server holds for them), the clients hang up; the server drops their waiting work, and the
idle RSS is measured after that. It bounds the run on a slow machine (no need to score
64,000 pairs), at the cost of leaving out the memory of scoring itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from rerankd.bench.checkpoints import cached_minilm_cross_encoder
from rerankd.bench.data import default_data_path, load_queries
from rerankd.bench.server import RunningServer


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def metric(url: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=60).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def cancel_when_queued(url: str, clients: int, tasks: list[asyncio.Task]) -> None:
    while await asyncio.to_thread(metric, url, "rerankd_queue_active_requests") < clients:
        await asyncio.sleep(0.5)
    for task in tasks:
        task.cancel()


async def flood(url: str, bodies: list[dict], clients: int, rounds: int, cancel: bool = False) -> dict[int, int]:
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) as client:

        async def one(index: int) -> None:
            for round_ in range(rounds):
                body = bodies[(index + round_) % len(bodies)]
                response = await client.post("/v1/rerank", json=body)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        tasks = [asyncio.create_task(one(i)) for i in range(clients)]
        if cancel:
            await cancel_when_queued(url, clients, tasks)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    statuses[-1] = sum(isinstance(result, asyncio.CancelledError) for result in results)  # hung up
    if cancel:  # wait for the batches already dispatched, then the server is idle
        while metric(url, "rerankd_queue_units") or metric(url, "rerankd_queue_inflight_batches"):
            await asyncio.sleep(0.5)
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to wait after the flood")
    parser.add_argument("--cancel-when-queued", action="store_true", help="hang up once every request is queued")
    parser.add_argument("server_args", nargs="*", help="after --: flags for rerankd serve")
    args = parser.parse_args()

    queries = load_queries(default_data_path(), 100)
    passages = [doc for query in queries for doc in query.documents]
    bodies = [
        {
            "model": "minilm",
            "query": query.query,
            "documents": [passages[(i * 37 + j) % len(passages)] for j in range(args.documents)],
        }
        for i, query in enumerate(queries)
    ]
    log = Path(tempfile.mkdtemp()) / "server.log"
    server = RunningServer(
        ["--model", f"minilm={cached_minilm_cross_encoder()}", *args.server_args], log_path=log
    ).wait_ready()
    pid = server.process.pid
    try:
        # Warm up (first batches allocate the model's working set), then settle.
        asyncio.run(flood(server.url, [{**bodies[0], "documents": bodies[0]["documents"][:20]}], 1, 1))
        time.sleep(3)
        start = rss_mb(pid)
        peak = start
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.2):
                peak = max(peak, rss_mb(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        began = time.perf_counter()
        statuses = asyncio.run(flood(server.url, bodies, args.clients, args.rounds, args.cancel_when_queued))
        seconds = time.perf_counter() - began
        after = rss_mb(pid)
        time.sleep(args.idle)
        stop.set()
        sampler.join()
        idle = rss_mb(pid)
    finally:
        server.stop()
    print(
        json.dumps(
            {
                "clients": args.clients,
                "documents": args.documents,
                "rounds": args.rounds,
                "cancel_when_queued": args.cancel_when_queued,
                "server_args": args.server_args,
                "statuses": statuses,
                "flood_seconds": round(seconds, 1),
                "rss_mb": {
                    "start": round(start),
                    "peak": round(peak),
                    "end_of_flood": round(after),
                    f"idle_{args.idle:g}s": round(idle),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
