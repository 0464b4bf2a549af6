"""The admin API is off by default, behind its own key when on; local sources stay inside --model-root
(refused with one message whether or not the path exists); bearer tokens per RFC 6750; health
routes open; pickled weights refused unless --allow-pickle; readiness per --ready-when."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from support.encoder_checkpoints import build_bert_cross_encoder

from rerankd.api.service import Service
from rerankd.bench.server import RunningServer
from rerankd.core.types import Item, ScoreRequest
from rerankd.registry.registry import RegistrySettings

TIMEOUT = 60
API_KEY, ADMIN_KEY = "user-key", "admin-key"
SCORE = {"query": {"text": "how long does a flea live"}, "items": [{"text": "a year"}, {"text": "paris"}]}
HEALTH = ("/healthz", "/readyz", "/health")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, minilm_bi_encoder_dir: Path) -> Path:
    """A model root: a tiny cross-encoder, a copy of it with pickled weights, and a symlink out of the root."""
    root = tmp_path_factory.mktemp("model-root")
    model = build_bert_cross_encoder(root / "tiny", minilm_bi_encoder_dir, seed=7)
    pickled = root / "pickled"
    shutil.copytree(model, pickled)
    # What save_pretrained(safe_serialization=False) wrote before transformers 5 dropped the option:
    # the state dict, pickled by torch.save, as pytorch_model.bin.
    from safetensors.torch import load_file

    torch.save(load_file(str(pickled / "model.safetensors")), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    os.symlink("/etc", root / "escape")
    return root


@pytest.fixture(scope="module")
def open_server(start_server: Callable[..., RunningServer], root: Path) -> RunningServer:
    """No keys, no --admin-api: the admin API is off. A start-up model that fails: never ready under `all`."""
    server = start_server("--model", f"m={root / 'tiny'}", "--model", "broken=/nonexistent/model", ready=False)
    deadline = time.monotonic() + 120
    while True:  # wait until both start-up loads have ended (one loaded, one failed)
        try:
            ready = httpx.get(f"{server.url}/readyz", timeout=TIMEOUT).json()
            if ready["models"] == {"m": "loaded", "broken": "failed"}:
                return server
        except httpx.TransportError:
            pass
        assert server.alive() and time.monotonic() < deadline, server.log
        time.sleep(0.1)


@pytest.fixture(scope="module")
def locked_server(start_server: Callable[..., RunningServer], root: Path) -> RunningServer:
    return start_server(
        "--api-key", API_KEY, "--admin-api-key", ADMIN_KEY, "--model-root", str(root), "--model", f"m={root / 'tiny'}"
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ----------------------------------------------------------------------------------- readiness
def test_a_failed_start_up_model_keeps_the_server_unready_under_all(open_server):
    for path in ("/readyz", "/health"):
        response = httpx.get(f"{open_server.url}{path}", timeout=TIMEOUT)
        assert response.status_code == 503
        assert response.json() == {
            "ready": False,
            "models": {"m": "loaded", "broken": "failed"},
            "not_ready": {"broken": "failed"},
            "draining": False,
        }
    assert httpx.get(f"{open_server.url}/healthz", timeout=TIMEOUT).status_code == 200  # liveness is not readiness
    assert httpx.post(f"{open_server.url}/v1/score/m", json=SCORE, timeout=TIMEOUT).status_code == 200


def test_ready_when_any_is_ready_while_start_up_models_fail(server):
    # The shared server runs with --ready-when any; two of its start-up models never load.
    for model in ("missing", "corrupt"):
        assert httpx.post(f"{server.url}/v1/score/{model}", json=SCORE, timeout=TIMEOUT).status_code == 502
    response = httpx.get(f"{server.url}/readyz", timeout=TIMEOUT)
    assert response.status_code == 200
    ready = response.json()
    assert ready["ready"] is True and ready["models"]["minilm"] == "loaded"
    assert ready["not_ready"]["missing"] == ready["not_ready"]["corrupt"] == "failed"
    assert "minilm" not in ready["not_ready"]  # (the bi-encoder may still be loading: it is listed until it serves)


# ------------------------------------------------------------------------------ admin API off
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/models/new", {"source": "/etc"}),
        ("PUT", "/v1/models/m", {"source": "/tmp"}),
        ("DELETE", "/v1/models/m", None),
        ("PUT", "/v1/models/m/adapters/a", {"source": "/tmp"}),
        ("DELETE", "/v1/models/m/adapters/a", None),
    ],
)
def test_without_keys_the_admin_api_is_off(open_server, method, path, body):
    response = httpx.request(method, f"{open_server.url}{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "FORBIDDEN"
    assert "--admin-api" in error["message"]
    assert "/etc" not in error["message"] and "/tmp" not in error["message"]
    listed = httpx.get(f"{open_server.url}/v1/models", timeout=TIMEOUT).json()  # reads stay open
    assert {m["name"] for m in listed["data"] if m["registered"]} == {"m", "broken"}


# --------------------------------------------------------------------------------- the keys
def test_tokens_are_read_per_rfc_6750(locked_server):
    url = f"{locked_server.url}/v1/score/m"
    for header in (API_KEY, f"Token {API_KEY}", f"Bearer{API_KEY}", f"Bearer {API_KEY} x", "Bearer", "Bearer wrong"):
        response = httpx.post(url, json=SCORE, headers={"Authorization": header}, timeout=TIMEOUT)
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.post(url, json=SCORE, timeout=TIMEOUT).status_code == 401
    for header in (f"Bearer {API_KEY}", f"bearer {API_KEY}", f"BEARER  {API_KEY}", f"Bearer {ADMIN_KEY}"):
        assert httpx.post(url, json=SCORE, headers={"Authorization": header}, timeout=TIMEOUT).status_code == 200


def test_health_routes_need_no_key(locked_server):
    for path in HEALTH:
        assert httpx.get(f"{locked_server.url}{path}", timeout=TIMEOUT).status_code == 200, path


def test_admin_writes_need_the_admin_key(locked_server, root):
    url = f"{locked_server.url}/v1/models/extra"
    body = {"source": str(root / "tiny")}
    as_user = httpx.put(url, json=body, headers=bearer(API_KEY), timeout=TIMEOUT)
    assert as_user.status_code == 403
    assert as_user.json()["error"]["code"] == "FORBIDDEN"
    assert "admin API key" in as_user.json()["error"]["message"]
    assert httpx.put(url, json=body, headers={"Authorization": ADMIN_KEY}, timeout=TIMEOUT).status_code == 401
    assert httpx.delete(f"{locked_server.url}/v1/models/m", headers=bearer(API_KEY), timeout=TIMEOUT).status_code == 403
    reads = httpx.get(f"{locked_server.url}/v1/models/m", headers=bearer(API_KEY), timeout=TIMEOUT)
    assert reads.status_code == 200  # reads take the API key

    loaded = httpx.put(url, json=body, headers=bearer(ADMIN_KEY), timeout=TIMEOUT)  # inside the root: works
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["state"] == "loaded"
    scored = httpx.post(f"{locked_server.url}/v1/score/extra", json=SCORE, headers=bearer(API_KEY), timeout=TIMEOUT)
    assert scored.status_code == 200
    deleted = httpx.delete(url, headers=bearer(f"{ADMIN_KEY}"), timeout=TIMEOUT)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True


# ------------------------------------------------------------------------------- model roots
def test_sources_outside_the_roots_are_refused_alike(locked_server, root):
    outside = [
        "/etc",
        "../..",
        str(root / "escape"),  # a symlink inside the root to /etc
        str(root / "escape" / "passwd"),
        str(root / "tiny" / ".." / ".."),
        "/nonexistent/rerankd",
        "~",
        "~nobody-here/x",
        "/etc\u0000x",
    ]
    answers = []
    for source in outside:
        for path in ("/v1/models/probe", "/v1/models/m/adapters/probe"):
            response = httpx.put(
                f"{locked_server.url}{path}", json={"source": source}, headers=bearer(ADMIN_KEY), timeout=TIMEOUT
            )
            assert response.status_code == 403, (source, path, response.text)
            answers.append(response.json())
    assert all(answer == answers[0] for answer in answers), answers  # nothing tells them apart
    assert answers[0]["error"]["code"] == "FORBIDDEN"
    assert answers[0]["error"]["param"] == "source"
    assert "--model-root" in answers[0]["error"]["message"]
    listed = httpx.get(f"{locked_server.url}/v1/models", headers=bearer(API_KEY), timeout=TIMEOUT).json()
    assert "probe" not in {m["name"] for m in listed["data"]}  # nothing was registered


def test_errors_inside_the_roots_keep_their_detail(locked_server, root):
    response = httpx.put(
        f"{locked_server.url}/v1/models/absent",
        json={"source": str(root / "absent")},
        headers=bearer(ADMIN_KEY),
        timeout=TIMEOUT,
    )
    assert response.status_code == 502
    assert "does not exist" in response.json()["error"]["message"]


# ------------------------------------------------------------------------------ safe weights
def test_pickled_weights_are_refused_naming_the_flag(locked_server, root):
    response = httpx.put(
        f"{locked_server.url}/v1/models/pickled",
        json={"source": str(root / "pickled")},
        headers=bearer(ADMIN_KEY),
        timeout=TIMEOUT,
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "MODEL_LOAD_FAILED"
    assert "pytorch_model.bin" in error["message"] and "--allow-pickle" in error["message"]
    assert "run code" in error["message"]


def test_config_naming_pickled_weights_is_refused(root, tmp_path):
    from rerankd.models.safetensors_files import PickledWeights, refuse_pickled_weights

    refuse_pickled_weights(root / "tiny")  # safetensors: fine
    with pytest.raises(PickledWeights, match=r"pytorch_model\.bin"):
        refuse_pickled_weights(root / "pickled")
    shutil.copytree(root / "tiny", tmp_path / "named")
    config = json.loads((tmp_path / "named" / "config.json").read_text())
    (tmp_path / "named" / "config.json").write_text(json.dumps(config | {"transformers_weights": "w.bin"}))
    with pytest.raises(PickledWeights, match=r"w\.bin"):  # transformers would read it despite model.safetensors
        refuse_pickled_weights(tmp_path / "named")


def test_pickled_weights_load_with_allow_pickle_and_score_like_safetensors(root):
    async def scores(settings: RegistrySettings, directory: Path) -> np.ndarray:
        service = Service.create(settings)
        service.registry.register("m", str(directory))
        try:
            request = ScoreRequest(model="m", query=Item(text="fleas"), items=[Item(text="a year"), Item(text="x")])
            result = await service.engine.score(request)
        finally:
            await service.close()
        return np.array([entry.score for entry in sorted(result.entries, key=lambda e: e.index)])

    reference = asyncio.run(scores(RegistrySettings(), root / "tiny"))
    pickled = asyncio.run(scores(RegistrySettings(allow_pickle=True), root / "pickled"))
    np.testing.assert_allclose(pickled, reference, rtol=0, atol=1e-6)
