"""Shared pieces of the model-lifecycle tests: distinct checkpoints, fixed texts, score vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rerankd.bench.checkpoints import build_minilm_cross_encoder

TIMEOUT = 120  # the machine may be shared: never fail on httpx's 5 s default
QUERY = "how long do fleas live"
DOCUMENTS = [
    "A flea can live up to a year in ideal conditions.",
    "Bananas are yellow and grow in tropical climates.",
    "Adult fleas usually live two to three months on a host.",
    "The stock market closed higher on Tuesday.",
    "Flea larvae feed on organic debris in carpets.",
    "Cats and dogs are common hosts for fleas, which can survive weeks without feeding.",
]


def seeded_checkpoint(tmp_path_factory: pytest.TempPathFactory, seed: int) -> Path:
    """The MiniLM cross-encoder with the classification head of `seed`; built once per session."""
    target = tmp_path_factory.getbasetemp() / f"minilm-cross-encoder-seed{seed}"
    if not (target / "model.safetensors").exists():
        build_minilm_cross_encoder(target, seed=seed)
    return target


def score_body(documents: list[str] = DOCUMENTS) -> dict:
    return {"query": {"text": QUERY}, "items": [{"text": text} for text in documents]}


def scores_by_index(payload: dict) -> np.ndarray:
    """SIE response scores back in request order."""
    scores = np.empty(len(payload["scores"]))
    for entry in payload["scores"]:
        scores[entry["index"]] = entry["score"]
    return scores


def close_to(got: np.ndarray, reference: np.ndarray, tolerance: float = 1e-4) -> bool:
    return got.shape == reference.shape and float(np.abs(got - reference).max()) <= tolerance
