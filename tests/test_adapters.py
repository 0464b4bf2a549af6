"""LoRA adapters: hot-loaded at run time, chosen per request, each scoring like PEFT's merged model."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from support.lifecycle import DOCUMENTS as LIFECYCLE_DOCUMENTS
from support.lifecycle import QUERY, TIMEOUT, scores_by_index
from support.lora import build_lora_adapter
from support.reference import cross_encoder_scores

from rerankd import APIError, Client
from rerankd.bench.server import RunningServer

# The lifecycle texts with two more off-topic ones among them.
DOCUMENTS = [
    *LIFECYCLE_DOCUMENTS[:5],
    "Paris is the capital of France.",
    LIFECYCLE_DOCUMENTS[5],
    "Photosynthesis converts light into chemical energy.",
]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory, minilm_cross_encoder_dir: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (adapter dir, merged reference dir): two different LoRA set-ups on the MiniLM cross-encoder."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        # attention and MLP projections, plus the classification head PEFT saves in full
        "alpha": build_lora_adapter(
            minilm_cross_encoder_dir,
            root / "alpha",
            seed=11,
            targets=("query", "value", "dense"),
            perturb_head=True,
        ),
        # another rank, rsLoRA scaling and a per-module alpha
        "beta": build_lora_adapter(
            minilm_cross_encoder_dir,
            root / "beta",
            seed=12,
            rank=8,
            targets=("key", "query"),
            use_rslora=True,
            alpha_pattern={"query": 4},
        ),
    }


@pytest.fixture(scope="module")
def references(adapters, minilm_cross_encoder_dir) -> dict[str, np.ndarray]:
    refs = {name: cross_encoder_scores(merged, QUERY, DOCUMENTS) for name, (_, merged) in adapters.items()}
    refs["base"] = cross_encoder_scores(minilm_cross_encoder_dir, QUERY, DOCUMENTS)
    return refs


@pytest.fixture(scope="module")
def lora_server(start_server: Callable[..., RunningServer], minilm_cross_encoder_dir: Path) -> RunningServer:
    return start_server("--admin-api", "--model", f"m={minilm_cross_encoder_dir}")


def score(client: Client, model: str, **options) -> np.ndarray:
    return scores_by_index(client.score(model, QUERY, DOCUMENTS, options=options or None))


def test_references_differ_so_the_tests_can_fail(references):
    for name in ("alpha", "beta"):
        assert np.abs(references[name] - references["base"]).max() > 0.02, name
    assert np.abs(references["alpha"] - references["beta"]).max() > 0.02


def test_adapter_scores_equal_peft_merged_reference(lora_server, references, adapters):
    with Client(lora_server.url) as client:
        info = client.load_adapter("m", "alpha", str(adapters["alpha"][0]))
        assert info["state"] == "loaded"
        assert info["id"] == "m:alpha"
        assert info["memory_bytes"] > 0
        got = score(client, "m:alpha")
        delta = np.abs(got - references["alpha"]).max()
        assert delta <= 1e-4
        client.load_adapter("m", "beta", str(adapters["beta"][0]))
        delta_beta = np.abs(score(client, "m:beta") - references["beta"]).max()
        assert delta_beta <= 1e-4
        assert np.abs(score(client, "m") - references["base"]).max() <= 1e-5
        shift = np.abs(references["alpha"] - references["base"]).max()
        print(f"\nLoRA vs PEFT merged: max |Δ| alpha {delta:.2e}, beta {delta_beta:.2e} (alpha shifts {shift:.3f})")


def test_every_route_chooses_the_adapter(lora_server, references, adapters):
    url = lora_server.url
    with Client(url) as client:
        client.load_adapter("m", "alpha", str(adapters["alpha"][0]))
        via_option = score(client, "m", lora_id="alpha")
        assert np.abs(via_option - references["alpha"]).max() <= 1e-4
        via_sie_name = score(client, "m", lora="alpha")  # sie-sdk's own option name
        assert np.abs(via_sie_name - references["alpha"]).max() <= 1e-4
    cohere = httpx.post(
        f"{url}/v1/rerank", timeout=TIMEOUT, json={"model": "m:alpha", "query": QUERY, "documents": DOCUMENTS}
    ).json()
    got = np.empty(len(DOCUMENTS))
    for hit in cohere["results"]:
        got[hit["index"]] = hit["relevance_score"]
    assert cohere["model"] == "m:alpha"
    assert np.abs(got - references["alpha"]).max() <= 1e-4
    tei = httpx.post(
        f"{url}/rerank", timeout=TIMEOUT, json={"model": "m:alpha", "query": QUERY, "texts": DOCUMENTS}
    ).json()
    got = np.empty(len(DOCUMENTS))
    for hit in tei:
        got[hit["index"]] = hit["score"]
    assert np.abs(got - references["alpha"]).max() <= 1e-4


def test_adapter_errors_name_the_field(lora_server, adapters):
    url = lora_server.url
    body = {"query": {"text": QUERY}, "items": [{"text": DOCUMENTS[0]}]}
    response = httpx.post(f"{url}/v1/score/m:nope", timeout=TIMEOUT, json=body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ADAPTER_NOT_FOUND"
    response = httpx.post(f"{url}/v1/score/m", timeout=TIMEOUT, json={**body, "options": {"lora_id": "nope"}})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "options.lora_id"
    response = httpx.post(f"{url}/v1/score/m:alpha", timeout=TIMEOUT, json={**body, "options": {"lora_id": "beta"}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "options.lora_id"
    response = httpx.post(f"{url}/v1/score/m:alpha", timeout=TIMEOUT, json={**body, "options": {"lora": "beta"}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "options.lora"  # errors name the field the client sent
    both = {"lora_id": "alpha", "lora": "beta"}
    response = httpx.post(f"{url}/v1/score/m", timeout=TIMEOUT, json={**body, "options": both})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "options.lora"
    response = httpx.put(
        f"{url}/v1/models/m/adapters/bad%20name", timeout=TIMEOUT, json={"source": str(adapters["alpha"][0])}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "adapter"
    response = httpx.put(f"{url}/v1/models/m/adapters/x", timeout=TIMEOUT, json={"source": 3})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "source"
    response = httpx.put(f"{url}/v1/models/m/adapters/x", timeout=TIMEOUT, json={"source": "/tmp", "rank": 4})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "rank"
    response = httpx.put(f"{url}/v1/models/nope/adapters/x", timeout=TIMEOUT, json={"source": "/tmp"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "MODEL_NOT_FOUND"


def test_two_adapters_and_base_concurrently_each_match_their_reference(lora_server, references, adapters):
    with Client(lora_server.url) as client:
        client.load_adapter("m", "alpha", str(adapters["alpha"][0]))
        client.load_adapter("m", "beta", str(adapters["beta"][0]))
    results: dict[str, list[np.ndarray]] = {"m": [], "m:alpha": [], "m:beta": []}
    errors: list[BaseException] = []

    def worker(model: str) -> None:
        try:
            with Client(lora_server.url) as client:
                for _ in range(6):
                    results[model].append(score(client, model))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(model,)) for model in results for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    expected = {"m": references["base"], "m:alpha": references["alpha"], "m:beta": references["beta"]}
    worst = 0.0
    for model, runs in results.items():
        assert len(runs) == 12
        for got in runs:
            assert np.abs(got - expected[model]).max() <= 1e-4, model
            worst = max(worst, float(np.abs(got - expected[model]).max()))
    print(f"\nbase + 2 adapters, 6 clients x 6 requests at once: all matched their own reference, max |Δ| {worst:.2e}")
    info = {a["name"]: a for a in httpx.get(f"{lora_server.url}/v1/models/m", timeout=TIMEOUT).json()["adapters"]}
    assert info["alpha"]["requests_served"] >= 12
    assert info["beta"]["requests_served"] >= 12


def test_unload_and_reload_without_restart(lora_server, references, adapters):
    pid = lora_server.process.pid
    with Client(lora_server.url) as client:
        client.load_adapter("m", "beta", str(adapters["beta"][0]))
        assert client.unload_adapter("m", "beta")["deleted"] is True
        with pytest.raises(APIError) as caught:
            client.score("m:beta", QUERY, DOCUMENTS)
        assert caught.value.status == 404
        assert caught.value.code == "ADAPTER_NOT_FOUND"
        listed = {m["name"]: m for m in client.list_models()}
        assert "beta" not in {a["name"] for a in listed["m"]["adapters"]}
        # loaded again under another name, and a name can be re-pointed at other weights
        client.load_adapter("m", "gamma", str(adapters["beta"][0]))
        assert np.abs(score(client, "m:gamma") - references["beta"]).max() <= 1e-4
        client.load_adapter("m", "gamma", str(adapters["alpha"][0]))
        assert np.abs(score(client, "m:gamma") - references["alpha"]).max() <= 1e-4
        client.unload_adapter("m", "gamma")
        assert np.abs(score(client, "m") - references["base"]).max() <= 1e-5
    assert lora_server.alive() and lora_server.process.pid == pid


def _copy_adapter(source: Path, target: Path, *, config: dict | None = None, weights: bytes | None = None) -> Path:
    target.mkdir(parents=True)
    stored = json.loads((source / "adapter_config.json").read_text())
    (target / "adapter_config.json").write_text(json.dumps({**stored, **(config or {})}))
    weights_file = target / "adapter_model.safetensors"
    weights_file.write_bytes(weights if weights is not None else (source / "adapter_model.safetensors").read_bytes())
    return target


def test_bad_adapters_are_502_with_a_reason_and_nothing_else_changes(lora_server, references, adapters, tmp_path):
    alpha = adapters["alpha"][0]
    bad = {
        "missing": (tmp_path / "does-not-exist", "does not exist"),
        "corrupt": (_copy_adapter(alpha, tmp_path / "corrupt", weights=b"not safetensors" * 20), "cannot read"),
        "dora": (_copy_adapter(alpha, tmp_path / "dora", config={"use_dora": True}), "use_dora"),
        "prefix": (_copy_adapter(alpha, tmp_path / "prefix", config={"peft_type": "PREFIX_TUNING"}), "LoRA"),
    }
    with Client(lora_server.url) as client:
        client.load_adapter("m", "alpha", str(alpha))
        for name, (path, reason) in bad.items():
            with pytest.raises(APIError) as caught:
                client.load_adapter("m", name, str(path))
            assert caught.value.status == 502, name
            assert caught.value.code == "MODEL_LOAD_FAILED"
            assert reason in caught.value.message, caught.value.message
            with pytest.raises(APIError) as caught:
                client.score(f"m:{name}", QUERY, DOCUMENTS)
            assert caught.value.status == 502
        # a failed replacement leaves the serving adapter in place
        with pytest.raises(APIError):
            client.load_adapter("m", "alpha", str(bad["corrupt"][0]))
        assert np.abs(score(client, "m:alpha") - references["alpha"]).max() <= 1e-4
        assert np.abs(score(client, "m") - references["base"]).max() <= 1e-5
        states = {a["name"]: a["state"] for a in client.get_model("m")["adapters"]}
        assert states["alpha"] == "loaded"
        assert states["dora"] == "failed"
        for name in bad:
            client.unload_adapter("m", name)


def test_adapter_for_another_architecture_is_refused(tmp_path, minilm_cross_encoder_dir):
    """In process: a LoRA whose shapes do not fit is refused and the network is left untouched."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from rerankd.models.lora import AdapterFormatError, LoraHost, read_adapter

    small = BertForSequenceClassification(
        BertConfig(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128, num_labels=1)
    )
    get_peft_model(small, LoraConfig(r=2, target_modules=["query"])).save_pretrained(str(tmp_path / "small"))
    network = AutoModelForSequenceClassification.from_pretrained(str(minilm_cross_encoder_dir)).eval()
    inputs = {"input_ids": torch.tensor([[101, 2129, 2146, 102, 1037, 102]])}
    with torch.no_grad():
        before = network(**inputs).logits
    host = LoraHost(network)
    with pytest.raises(AdapterFormatError, match="another model"):
        host.attach("small", read_adapter(tmp_path / "small"))
    with torch.no_grad(), host.activate("small"):
        assert torch.equal(network(**inputs).logits, before)
    assert all(not module._forward_hooks for module in network.modules())
