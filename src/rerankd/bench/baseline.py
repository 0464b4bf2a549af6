"""The baseline most users run today: sentence-transformers `CrossEncoder.predict` with its defaults.

Runs in its own process (`python -m rerankd.bench.baseline < requests.json`) so that its
memory and threads are measured apart from rerankd's.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def run(model_dir: str, requests: list[tuple[str, list[str]]], device: str, warmup: int = 1) -> dict:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, device=device)
    for query, documents in requests[:warmup]:
        model.predict([(query, doc) for doc in documents], show_progress_bar=False)
    latencies = []
    start = time.perf_counter()
    for query, documents in requests:
        began = time.perf_counter()
        model.predict([(query, doc) for doc in documents], show_progress_bar=False)  # returns numpy: synced
        latencies.append(time.perf_counter() - began)
    wall = time.perf_counter() - start
    import torch

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    device_peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return {
        "latencies_s": latencies,
        "wall_s": wall,
        "peak_memory_bytes": peak,
        "peak_device_memory_bytes": device_peak,
    }


def main() -> int:
    job = json.load(sys.stdin)
    result = run(job["model_dir"], [tuple(r) for r in job["requests"]], job["device"], job.get("warmup", 1))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
