"""Where a loaded rerankd server spends its time: the forward pass against everything around it.

Starts `rerankd serve` on the benchmark's MiniLM cross-encoder (or `--model`), sends
`--requests` 100-passage TREC DL 2019 requests from `--concurrency` clients over HTTP
(MessagePack, like `rerankd bench`), and samples the server with py-spy meanwhile (all
threads, native frames off: OpenVINO's and PyTorch's kernels show as the Python call that
entered them). Each sample is put in one bucket by the innermost rerankd / library frame
that tells what it is doing:

* forward: the network (`Family.forward`, `run_graph`, the compiled network, torch modules)
* collation: `collate` / `right_pad` (token lists to padded tensors)
* tokenization: `prepare` and the tokenizers
* post-processing: `scores`, sorting, building the result
* scheduling: the engine and its scheduler (batch cutting, queues, futures)
* serialization: msgspec / msgpack / JSON encoding and decoding
* HTTP: uvicorn, h11/httptools, Starlette, the middlewares
* other: the event loop itself, logging, anything else

It prints the share of busy samples per bucket, and the share of wall time the compute
thread spent in the forward pass (from the server's own `/metrics`: seconds of batches run).

    python benchmarks/profile_request_path.py [--concurrency 8] [--requests 48] [--precision exact]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgpack

from rerankd.bench.checkpoints import cached_minilm_cross_encoder
from rerankd.bench.data import default_data_path, load_queries
from rerankd.bench.server import RunningServer

# (bucket, substrings of a frame "function (file:line)"), checked innermost frame first.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("forward", ("run_graph", "CompiledNetwork.__call__", "openvino", "torch/nn/", "transformers/")),
    ("collation", ("collate", "right_pad")),
    ("tokenization", ("tokenization.py", "tokenizers", "encode_texts", "pairs.py", "prepare")),
    ("post-processing", ("def scores", "scores (", "max_over_units", "sigmoid", "_finish", "ScoreEntry")),
    ("serialization", ("msgspec", "msgpack", "codec.py", "json")),
    ("HTTP", ("uvicorn", "h11", "httptools", "starlette", "api/", "anyio")),
    ("scheduling", ("engine/", "scheduler", "admission", "core/", "asyncio/futures", "concurrent/futures")),
]


def bucket_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for bucket, needles in BUCKETS:
            if any(needle in frame for needle in needles):
                return bucket
    return "other"


def read_samples(path: Path) -> tuple[collections.Counter, collections.Counter]:
    """Busy samples per bucket, over all threads and for the compute thread alone."""
    everything: collections.Counter = collections.Counter()
    compute: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        bucket = bucket_of(frames[1:])
        everything[bucket] += int(count)
        if "rerankd-compute" in frames[0] or any("compute.py" in f for f in frames):
            compute[bucket] += int(count)
    return everything, compute


def batch_seconds(metrics: str) -> float:
    """Seconds of batches (collate + forward) the compute thread ran, summed over models."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("rerankd_inference_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def load(url: str, model: str, queries, concurrency: int, requests: int) -> float:
    body = [msgpack.packb({"query": {"text": q.query}, "items": [{"text": d} for d in q.documents]}) for q in queries]
    headers = {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}
    jobs = asyncio.Queue()
    for i in range(requests):
        jobs.put_nowait(body[i % len(body)])
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def worker() -> None:
            while not jobs.empty():
                response = await client.post(f"/v1/score/{model}", content=jobs.get_nowait(), headers=headers)
                response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="[NAME=]SOURCE (default: the benchmark's MiniLM cross-encoder)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--precision", default="exact")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args()
    name, _, source = (args.model or f"minilm={cached_minilm_cross_encoder()}").rpartition("=")
    name = name or source
    queries = load_queries(default_data_path(), 100)
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        server = RunningServer(
            ["--model", f"{name}={source}", "--precision", args.precision, "--log-level", "warning"],
            log_path=work_dir / "server.log",
        ).wait_ready(timeout=900)
        try:
            asyncio.run(load(server.url, name, queries[:2], 2, 4))  # warm-up
            before = batch_seconds(httpx.get(f"{server.url}/metrics").text)
            profile = work_dir / "profile.txt"
            command = ["py-spy", "record", "--pid", str(server.process.pid), "--rate", str(args.rate)]
            command += ["--threads", "--format", "raw", "--output", str(profile), "--nonblocking"]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
            wall = asyncio.run(load(server.url, name, queries, args.concurrency, args.requests))
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            after = batch_seconds(httpx.get(f"{server.url}/metrics").text)
            execution = httpx.get(f"{server.url}/v1/models/{name}").json().get("execution", {})
        finally:
            server.stop()
        everything, compute = read_samples(profile)
    busy = sum(everything.values()) or 1
    print(f"{args.requests} requests x 100 passages, {args.concurrency} clients, {wall:.1f} s wall")
    print(f"execution: {execution.get('backend')} {execution.get('numerics')} ({args.precision})")
    share = 100 * (after - before) / wall
    print(f"compute thread in batches (collate + forward): {after - before:.1f} s = {share:.1f} % of wall time")
    print("\n| where | share of busy samples (all threads) | compute thread |")
    print("| --- | --- | --- |")
    compute_total = sum(compute.values()) or 1
    for bucket in [b for b, _ in BUCKETS] + ["other"]:
        print(f"| {bucket} | {100 * everything[bucket] / busy:.1f} % | {100 * compute[bucket] / compute_total:.1f} % |")
    print(f"\n{busy} busy samples at {args.rate}/s on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
