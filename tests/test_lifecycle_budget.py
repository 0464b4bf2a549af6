"""`--memory-budget`: loaded weights (models and adapters) stay under it; a short `--load-timeout` answers 503.

The budget is sized from the checkpoint files (read here with safetensors, not by rerankd) to
hold one model and one adapter, but neither two adapters nor two models. The server runs the
torch backend, so that a model is its torch weights alone (a compiled OpenVINO copy doubles
them; tests/test_lifecycle_registry.py checks that accounting).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from safetensors.torch import load_file
from support.lifecycle import DOCUMENTS, QUERY, TIMEOUT, close_to, score_body, scores_by_index
from support.lora import build_lora_adapter
from support.reference import cross_encoder_scores

from rerankd import APIError, Client
from rerankd.bench.server import RunningServer

# BERT's two non-persistent int64 (1, 512) buffers (position and token type ids) live in memory, not in the file.
BUFFERS = 2 * 512 * 8


def tensor_bytes(path: Path) -> int:
    return sum(tensor.numel() * 4 for tensor in load_file(str(path)).values())  # fp32 on CPU


@pytest.fixture(scope="module")
def setup(tmp_path_factory, checkpoint_a: Path, checkpoint_b: Path) -> dict:
    root = tmp_path_factory.mktemp("budget")
    base, other = checkpoint_a, checkpoint_b
    big = ("query", "key", "value", "dense")  # a few MB each: room for exactly one beside the model
    x = build_lora_adapter(base, root / "x", seed=21, rank=16, targets=big)
    y = build_lora_adapter(base, root / "y", seed=22, rank=16, targets=big)
    model_bytes = tensor_bytes(base / "model.safetensors") + BUFFERS
    adapter_bytes = tensor_bytes(x[0] / "adapter_model.safetensors")
    return {
        "base": base,
        "other": other,
        "adapters": {"x": x[0], "y": y[0]},
        "references": {
            "m": cross_encoder_scores(base, QUERY, DOCUMENTS),
            "n": cross_encoder_scores(other, QUERY, DOCUMENTS),
            "m:x": cross_encoder_scores(x[1], QUERY, DOCUMENTS),
            "m:y": cross_encoder_scores(y[1], QUERY, DOCUMENTS),
        },
        "budget": model_bytes + adapter_bytes * 3 // 2,
        "adapter_bytes": adapter_bytes,
    }


@pytest.fixture(scope="module")
def budget_server(start_server: Callable[..., RunningServer], setup) -> RunningServer:
    return start_server(
        "--backend",
        "torch",
        "--admin-api",
        "--memory-budget",
        str(setup["budget"]),
        "--load-timeout",
        "0.001",  # every on-demand load outlasts it: requests get 503 MODEL_LOADING, the SDK retries
        "--model",
        f"m={setup['base']}",
        "--model",
        f"n={setup['other']}",
        "--lazy",
    )


def describe(server: RunningServer, name: str) -> dict:
    return httpx.get(f"{server.url}/v1/models/{name}", timeout=TIMEOUT).json()


def test_adapters_are_evicted_least_recently_used_to_stay_in_budget(budget_server, setup):
    references = setup["references"]
    with Client(budget_server.url) as client:
        assert setup["adapter_bytes"] > 1_000_000
        for name, path in setup["adapters"].items():
            client.load_adapter("m", name, str(path))  # y evicts x: both do not fit
        for _ in range(2):
            for model in ("m:x", "m:y", "m"):
                result = client.score(model, QUERY, DOCUMENTS)
                assert close_to(scores_by_index(result), references[model]), model
        info = client.get_model("m")
        adapters = {a["name"]: a for a in info["adapters"]}
        assert adapters["x"]["evictions"] >= 2 and adapters["y"]["evictions"] >= 1
        assert sorted(a["state"] for a in adapters.values()) == ["available", "loaded"]
        assert info["memory_bytes"] + info["adapters_memory_bytes"] <= setup["budget"]
        memory = httpx.get(f"{budget_server.url}/v1/models", timeout=TIMEOUT).json()["memory"]
        assert memory["used_bytes"] <= memory["budget_bytes"] == setup["budget"]


def test_second_model_evicts_the_first_and_loading_answers_503(budget_server, setup):
    response = httpx.post(f"{budget_server.url}/v1/score/n", json=score_body(), timeout=TIMEOUT)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "MODEL_LOADING"
    assert int(response.headers["Retry-After"]) >= 1
    deadline = time.monotonic() + 120
    while describe(budget_server, "n")["state"] != "loaded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    response = httpx.post(f"{budget_server.url}/v1/score/n", json=score_body(), timeout=TIMEOUT)
    assert response.status_code == 200
    assert close_to(scores_by_index(response.json()), setup["references"]["n"])
    first = describe(budget_server, "m")
    assert first["state"] == "available" and first["evictions"] >= 1
    assert all(a["state"] == "available" for a in first["adapters"])  # gone with their model
    with Client(budget_server.url) as client:  # retries 503 MODEL_LOADING until `m` is back
        assert close_to(scores_by_index(client.score("m:x", QUERY, DOCUMENTS)), setup["references"]["m:x"])
    assert describe(budget_server, "n")["state"] == "available"


def test_model_larger_than_the_budget_fails_with_a_reason(budget_server, minilm_bi_encoder_dir, tmp_path):
    # two copies of the model's weights in one checkpoint directory cannot fit
    with Client(budget_server.url) as client:
        with pytest.raises(APIError) as caught:
            client.load_model("huge", str(_doubled_checkpoint(minilm_bi_encoder_dir, tmp_path)))
        assert caught.value.status == 502
        assert "--memory-budget" in caught.value.message
        assert client.score("m", QUERY, DOCUMENTS)["scores"]


def _doubled_checkpoint(source: Path, target: Path) -> Path:
    """all-MiniLM-L6-v2 with an extra, unused copy of every tensor: twice the weights on disk."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(source / "model.safetensors"))
    doubled = {**weights, **{f"spare.{key}": torch.clone(value) for key, value in weights.items()}}
    for path in source.iterdir():
        if path.is_file() and path.name != "model.safetensors":
            (target / path.name).write_bytes(path.read_bytes())
    save_file(doubled, str(target / "model.safetensors"))
    return target
