"""`rerankd serve` with no `--model` starts on the offline default model and serves it."""

from __future__ import annotations

import httpx

from rerankd import Client


def test_serve_without_model_uses_the_packaged_minilm(quickstart_server):
    server = quickstart_server
    models = httpx.get(f"{server.url}/v1/models").json()["data"]
    loaded = [m for m in models if m["state"] == "loaded"]
    assert [m["name"] for m in loaded] == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert loaded[0]["family"] == "bi-encoder"
    with Client(server.url) as client:
        result = client.rerank(
            "sentence-transformers/all-MiniLM-L6-v2",
            "what do pandas eat",
            ["Giant pandas eat bamboo almost exclusively.", "Python is a programming language."],
        )
    assert result.results[0].index == 0
    body = {"query": "what do pandas eat", "documents": ["bamboo", "compilers"]}
    default_model = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=60).json()
    assert default_model["model"] == "sentence-transformers/all-MiniLM-L6-v2"
