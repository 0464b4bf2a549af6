"""rerankd on Ray Serve against one `rerankd serve`: the Ray layer's latency, and a 10,000-document request split.

    python benchmarks/ray_scale_out.py [--requests 40] [--documents 10000] [--out bench-results/ray.json]

Runs itself inside a private network namespace (`unshare -n`, loopback only: Ray listens on every
interface). Model: the MiniLM-L6 cross-encoder built offline (`rerankd.bench.checkpoints`).

1. Latency of a 100-document request: a plain `rerankd serve` (2 threads) and the Ray application
   (1 replica of 2 CPUs, so 2 threads), requests alternating between them, p50 and p90 of each.
2. A 10,000-document request: the plain server against 2 replicas of 1 CPU each, the request split
   in 2 shards; wall time of each, and how the two answers compare (scores, order, usage).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
INSIDE = "RERANKD_RAY_NETNS"


def documents(count: int, seed: int) -> list[str]:
    words = (ROOT / "README.md").read_text().split()
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 90)))) for _ in range(count)]


def timed_post(client: httpx.Client, url: str, body: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post(url, json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "ray_scale_out.json")
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        from support.ray_cluster import netns_command

        environment = {**os.environ, INSIDE: "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
        sys.exit(subprocess.call(netns_command([sys.executable, *sys.argv]), env=environment))

    from ray import serve
    from support.ray_cluster import start_ray

    from rerankd.api.app import ModelArg, ServerConfig
    from rerankd.bench.checkpoints import cached_minilm_cross_encoder
    from rerankd.bench.server import RunningServer, free_port
    from rerankd.ray import build
    from rerankd.ray.options import RayOptions

    model = cached_minilm_cross_encoder()
    plain = RunningServer(
        ["--model", f"minilm={model}", "--threads", "2"], log_path=Path("/tmp/rerankd-plain.log")
    ).wait_ready()
    start_ray()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    ray_url = f"http://127.0.0.1:{port}"
    config = ServerConfig(models=[ModelArg("minilm", str(model))])

    def deploy(options: RayOptions) -> None:
        serve.run(build(config, options), name="rerankd", route_prefix="/")
        while httpx.get(f"{ray_url}/readyz", timeout=60).status_code != 200:
            time.sleep(0.2)

    report: dict = {"machine_cpus": os.cpu_count()}
    client = httpx.Client(timeout=600)
    try:
        # 1. the Ray layer's latency on a 100-document request
        deploy(RayOptions(replicas=1, replica_cpus=2))
        body = {"query": {"text": "how do I install rerankd"}, "items": [{"text": t} for t in documents(100, 1)]}
        for url in (plain.url, ray_url):  # warm-up: first batches, compiled graphs
            for _ in range(5):
                timed_post(client, f"{url}/v1/score/minilm", body)
        times: dict[str, list[float]] = {"plain": [], "ray": []}
        for _ in range(args.requests):
            for name, url in (("plain", plain.url), ("ray", ray_url)):
                times[name].append(timed_post(client, f"{url}/v1/score/minilm", body)[0])
        p50 = {name: percentile(values, 50) for name, values in times.items()}
        report["latency_100_documents_ms"] = {
            name: {"p50": round(p50[name], 1), "p90": round(percentile(values, 90), 1)}
            for name, values in times.items()
        }
        report["ray_overhead_p50_percent"] = round(100 * (p50["ray"] / p50["plain"] - 1), 1)
        print(json.dumps(report, indent=2), flush=True)

        # 2. a 10,000-document request: one process against 2 replicas of 1 CPU each
        deploy(RayOptions(replicas=2, replica_cpus=1, shard_items=1000))
        texts = documents(args.documents, 2)
        big = {"query": {"text": "how do I install rerankd"}, "items": [{"text": t} for t in texts]}
        timed_post(client, f"{ray_url}/v1/score/minilm", {**big, "items": big["items"][:2000]})  # warm both replicas
        plain_seconds, plain_answer = timed_post(client, f"{plain.url}/v1/score/minilm", big)
        ray_seconds, ray_answer = timed_post(client, f"{ray_url}/v1/score/minilm", big)
        reference = np.empty(len(texts))
        got = np.empty(len(texts))
        for entry in plain_answer["scores"]:
            reference[entry["index"]] = entry["score"]
        for entry in ray_answer["scores"]:
            got[entry["index"]] = entry["score"]
        same_order = [e["index"] for e in plain_answer["scores"]] == [e["index"] for e in ray_answer["scores"]]
        report["split_10000"] = {
            "documents": len(texts),
            "plain_seconds": round(plain_seconds, 2),
            "ray_2_replicas_seconds": round(ray_seconds, 2),
            "speed_up": round(plain_seconds / ray_seconds, 2),
            "bit_identical_scores": int((got == reference).sum()),
            "max_abs_score_difference": float(np.abs(got - reference).max()),
            "same_order": same_order,
            "same_usage": plain_answer["usage"] == ray_answer["usage"],
        }
    finally:
        client.close()
        serve.shutdown()
        plain.stop()
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
