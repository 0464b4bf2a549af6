"""Reading a checkpoint's safetensors files ourselves (single file or sharded with an index).

Families whose published layout no `transformers` class loads (jina-reranker-v2's remote-code
tensors, ColBERT's projection next to the encoder) map these tensors onto modules they own.
Only safetensors are read: pickled `.bin` weights can run code when loaded. Directories that
`transformers` loads are checked by `refuse_pickled_weights` before any file is opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
# What `transformers.from_pretrained` falls back to when a directory has no safetensors.
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
PICKLE_REFUSED = (
    "unpickling can run code (torch's weights_only mode narrows that, it does not make a pickle safe to "
    "trust), so rerankd loads only safetensors unless started with --allow-pickle; or convert the "
    "checkpoint to safetensors"
)


class MissingWeights(FileNotFoundError):
    """The directory holds no safetensors weights."""


class PickledWeights(ValueError):
    """The weights that would be read are a pickle, and pickles are not allowed here."""


def refuse_pickled_weights(model_dir: Path) -> None:
    """Raise `PickledWeights` if `transformers` would read a pickle from `model_dir` or a sub-folder.

    It reads `model.safetensors` (or its index) when present, else `pytorch_model.bin` (or its
    index), or whatever `transformers_weights` in config.json names. Sub-folders with their own
    config.json (sentence-transformers layouts, ColBERT's encoder) are checked the same way.
    """
    folders = [model_dir, *(path.parent for path in model_dir.glob("*/config.json"))]
    for folder in folders:
        named = _explicit_weights(folder)
        if named is not None and not named.endswith((".safetensors", ".safetensors.index.json")):
            raise PickledWeights(
                f"config.json names {named!r} as the weights, not a safetensors file: {PICKLE_REFUSED}"
            )
        if (folder / SINGLE).exists() or (folder / INDEX).exists():
            continue
        found = [name for name in PICKLES if (folder / name).exists()]
        if found:
            raise PickledWeights(f"the weights are a pickle ({found[0]}): {PICKLE_REFUSED}")


def _explicit_weights(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None  # no config or a broken one: its load reports that
    named = config.get("transformers_weights") if isinstance(config, dict) else None
    return str(named) if named else None


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
