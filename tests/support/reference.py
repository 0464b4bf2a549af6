"""Reference scores from the libraries users compare against (never from rerankd itself)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np


@cache
def _cross_encoder(path: str):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, device="cpu")


def cross_encoder_scores(model_dir: Path, query: str, documents: list[str], *, raw: bool = False) -> np.ndarray:
    """sentence-transformers `CrossEncoder.predict` with its defaults (logits when `raw`)."""
    import torch

    model = _cross_encoder(str(model_dir))
    activation = torch.nn.Identity() if raw else None
    return np.asarray(model.predict([(query, doc) for doc in documents], activation_fn=activation), dtype=np.float64)


def bi_encoder_scores(model_dir: Path, query: str, documents: list[str]) -> np.ndarray:
    """Cosine similarity of sentence-transformers embeddings."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    query_vector = model.encode([query], normalize_embeddings=True)[0]
    vectors = model.encode(documents, normalize_embeddings=True)
    return np.asarray(vectors @ query_vector, dtype=np.float64)
