"""Reading a checkpoint's safetensors files ourselves (single file or sharded with an index).

Families whose published layout no `transformers` class loads (jina-reranker-v2's remote-code
tensors, ColBERT's projection next to the encoder) map these tensors onto modules they own.
Only safetensors are read: pickled `.bin` weights can run code when loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


class MissingWeights(FileNotFoundError):
    """The directory holds no safetensors weights."""


def safetensors_paths(model_dir: Path) -> list[Path]:
    """The weight files of `model_dir`: `model.safetensors`, or the shards its index names."""
    index = model_dir / INDEX
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / shard for shard in shards]
    single = model_dir / SINGLE
    if single.exists():
        return [single]
    raise MissingWeights(f"{model_dir} has no {SINGLE} (or {INDEX}); only safetensors weights are loaded")


def tensor_names(model_dir: Path) -> set[str]:
    """Names of every tensor in the checkpoint, without reading the tensors."""
    names: set[str] = set()
    for path in safetensors_paths(model_dir):
        with safe_open(str(path), framework="pt") as handle:
            names.update(handle.keys())
    return names


def load_tensors(model_dir: Path, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint (or only `names`), on CPU in their stored dtype."""
    tensors: dict[str, torch.Tensor] = {}
    for path in safetensors_paths(model_dir):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open handles are not iterable
                if names is None or name in names:
                    tensors[name] = handle.get_tensor(name)
    return tensors
