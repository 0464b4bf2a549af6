"""rerankd on Ray Serve against one `rerankd serve`: the Ray layer's latency, and a 10,000-document request split.

    python benchmarks/ray_scale_out.py [--requests 40] [--documents 10000] [--repeats 3] [--parts latency,split]
                                       [--out bench-results/ray_scale_out.json]

Runs itself inside a private network namespace (`unshare -n`, loopback only: Ray listens on every
interface). Model: the MiniLM-L6 cross-encoder built offline (`rerankd.bench.checkpoints`). Every
timed request records the 1-minute load average before it (the machine may be shared).

1. `latency`: a 100-document request to a plain `rerankd serve` (2 threads) and to the Ray
   application (1 replica of 2 CPUs, so 2 threads), alternating, `--requests` each; p50 and p90.
2. `split`: a `--documents` request to the plain server and to 2 replicas of 1 CPU each (the
   request split in 2 shards of whole batches), alternating, `--repeats` each; wall times, the
   speed-up of each pair, and how the answers compare (scores `==`, order, usage). Then what the
   split costs besides scoring: the replica's `units` call (the whole request tokenized once, on
   one replica, before any shard starts) and the padded tokens of each shard.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
INSIDE = "RERANKD_RAY_NETNS"
QUERY = "how do I install rerankd"


def documents(count: int, seed: int) -> list[str]:
    words = (ROOT / "README.md").read_text().split()
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 90)))) for _ in range(count)]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def timed_post(client: httpx.Client, url: str, body: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post(url, json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def compare(reference: dict, answer: dict) -> dict:
    """How `answer` compares with `reference` (the plain server's): scores by index, order, usage."""
    count = len(reference["scores"])
    expected, got = np.empty(count), np.empty(count)
    for entry in reference["scores"]:
        expected[entry["index"]] = entry["score"]
    for entry in answer["scores"]:
        got[entry["index"]] = entry["score"]
    return {
        "bit_identical_scores": int((got == expected).sum()),
        "max_abs_score_difference": float(np.abs(got - expected).max()),
        "same_entries": answer["scores"] == reference["scores"],  # order, ids, ranks, flags and scores
        "same_usage": answer["usage"] == reference["usage"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="latency,split", help="comma-separated: latency, split")
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
    from rerankd.core.types import Item, ScoreRequest
    from rerankd.ray import build
    from rerankd.ray.options import RayOptions
    from rerankd.ray.shards import ModelState, Shard, plan_shards

    parts = set(args.parts.split(","))
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

    def execution(url: str) -> dict:
        return httpx.get(f"{url}/v1/models/minilm", timeout=60).json().get("execution", {})

    report: dict = {"machine_cpus": os.cpu_count(), "model": "MiniLM-L6 cross-encoder (seed 0)"}
    client = httpx.Client(timeout=1800)
    try:
        if "latency" in parts:  # 1. the Ray layer's latency on a 100-document request
            deploy(RayOptions(replicas=1, replica_cpus=2))
            body = {"query": {"text": QUERY}, "items": [{"text": t} for t in documents(100, 1)]}
            for url in (plain.url, ray_url):  # warm-up: first batches, compiled graphs
                for _ in range(5):
                    timed_post(client, f"{url}/v1/score/minilm", body)
            times: dict[str, list[float]] = {"plain": [], "ray": []}
            loads = []
            for _ in range(args.requests):
                loads.append(load_average())
                for name, url in (("plain", plain.url), ("ray", ray_url)):
                    times[name].append(timed_post(client, f"{url}/v1/score/minilm", body)[0])
            p50 = {name: percentile(values, 50) for name, values in times.items()}
            report["latency_100_documents_ms"] = {
                name: {"p50": round(p50[name], 1), "p90": round(percentile(values, 90), 1)}
                for name, values in times.items()
            }
            report["ray_overhead_p50_percent"] = round(100 * (p50["ray"] / p50["plain"] - 1), 1)
            report["latency_load_average"] = {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
            print(json.dumps(report, indent=2), flush=True)

        if "split" in parts:  # 2. a big request: one process against 2 replicas of 1 CPU each
            deploy(RayOptions(replicas=2, replica_cpus=1, shard_items=1000))
            report["execution"] = {"plain": execution(plain.url), "ray": execution(ray_url)}
            texts = documents(args.documents, 2)
            big = {"query": {"text": QUERY}, "items": [{"text": t} for t in texts]}
            timed_post(client, f"{ray_url}/v1/score/minilm", {**big, "items": big["items"][:2000]})  # warm both
            timed_post(client, f"{plain.url}/v1/score/minilm", {**big, "items": big["items"][:1000]})
            runs = []
            reference = None
            for repeat in range(args.repeats):
                run: dict = {}
                for name, url in (("plain", plain.url), ("ray", ray_url)):
                    load = load_average()
                    seconds, answer = timed_post(client, f"{url}/v1/score/minilm", big)
                    run[name] = {"seconds": round(seconds, 2), "load_average_before": load}
                    if name == "plain":
                        reference = answer
                    else:
                        run["ray_vs_plain"] = compare(reference, answer)
                run["speed_up"] = round(run["plain"]["seconds"] / run["ray"]["seconds"], 3)
                runs.append(run)
                print(json.dumps({"repeat": repeat, **run}), flush=True)
            # What the split adds before any shard scores: one replica tokenizes the whole request.
            replicas = serve.get_deployment_handle("EngineReplica", "rerankd").options(multiplexed_model_id="minilm")
            request = ScoreRequest("minilm", Item(text=QUERY), [Item(text=t) for t in texts])
            started = time.perf_counter()
            units = replicas.units.remote(Shard(request, ModelState("minilm", str(model), None, 0))).result().result
            units_seconds = time.perf_counter() - started
            plan = plan_shards(units, 2)
            report["split"] = {
                "documents": len(texts),
                "runs": runs,
                "plain_seconds_median": statistics.median(r["plain"]["seconds"] for r in runs),
                "ray_2_replicas_seconds_median": statistics.median(r["ray"]["seconds"] for r in runs),
                "speed_up_median": statistics.median(r["speed_up"] for r in runs),
                "exact_in_every_run": all(
                    r["ray_vs_plain"]["same_entries"] and r["ray_vs_plain"]["same_usage"] for r in runs
                ),
                "units_call_seconds": round(units_seconds, 2),
                "batches": units.batches().count,
                "shard_items": [len(items.indices) for items in plan],
                "shard_padded_tokens": [items.padded_tokens for items in plan],
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
