"""rerankd on Ray Serve: the shard arithmetic here, the cluster in a private network namespace.

Ray listens on every interface (Serve's replicas bind `[::]`), so the cluster tests
(tests/test_ray_serve.py) run in a pytest of their own inside `unshare -n` with only the
loopback up; this module starts it and fails with its output when it fails.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.ray_cluster import NETNS_ENV, netns_command, netns_unavailable

pytest.importorskip("ray.serve", reason="the [ray] extra is not installed (pip install -e '.[ray]')")

ROOT = Path(__file__).resolve().parent.parent


def test_ray_cluster_tests_inside_a_private_network_namespace() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    command = netns_command(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/test_ray_serve.py"]
    )
    environment = {**os.environ, NETNS_ENV: "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert " passed" in output and "skipped" not in output.splitlines()[-1], output[-2000:]


# ------------------------------------------------------------------- shards, without Ray
async def test_split_then_merge_equals_one_request_for_a_bi_encoder(minilm_bi_encoder_dir: Path) -> None:
    """Query-only units (a bi-encoder encodes the query once) are counted once in the merged usage."""
    from rerankd.api.app import ModelArg, ServerConfig, local_service
    from rerankd.core.observer import NO_OBSERVER
    from rerankd.core.types import Item, ScoreOptions, ScoreRequest
    from rerankd.ray.shards import merge, split

    config = ServerConfig(models=[ModelArg("m", str(minilm_bi_encoder_dir))])
    service = local_service(config, NO_OBSERVER)
    texts = [f"document {i} about {'fleas' if i % 3 else 'cats'} and dogs" for i in range(30)]
    request = ScoreRequest(
        "m", Item(text="fleas"), [Item(text=t, id=f"x{i}") for i, t in enumerate(texts)], options=ScoreOptions(top_k=9)
    )
    try:
        whole = await service.engine.score(request)
        parts = [(offset, await service.engine.score(part)) for offset, part in split(request, 3)]
    finally:
        await service.close()
    merged = merge(request, parts, max_tokens=None)
    assert [p.options.top_k for _, p in split(request, 3)] == [None] * 3
    assert [e.index for e in merged.entries] == [e.index for e in whole.entries]
    assert [e.item_id for e in merged.entries] == [e.item_id for e in whole.entries]
    np.testing.assert_allclose([e.score for e in merged.entries], [e.score for e in whole.entries], atol=1e-6)
    assert merged.usage == whole.usage
    assert dataclasses.replace(merged, entries=[]) == dataclasses.replace(whole, entries=[])


def test_shard_count_and_split_cover_every_item_once() -> None:
    from rerankd.core.types import Item, ScoreRequest
    from rerankd.ray.shards import shard_count, split

    assert shard_count(1000, 1000, 4) == 1
    assert shard_count(1001, 1000, 4) == 2
    assert shard_count(10_000, 1000, 2) == 2
    assert shard_count(10_000, 0, 8) == 1
    assert shard_count(10_000, 1000, 1) == 1
    request = ScoreRequest("m", Item(text="q"), [Item(text=str(i)) for i in range(10)])
    pieces = split(request, 3)
    assert [offset for offset, _ in pieces] == [0, 3, 7] or [offset for offset, _ in pieces] == [0, 3, 6]
    covered = [offset + i for offset, part in pieces for i in range(len(part.items))]
    assert covered == list(range(10))
    assert [item.text for _, part in pieces for item in part.items] == [str(i) for i in range(10)]
