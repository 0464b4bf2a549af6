"""Known model ids and what each needs to score the way its authors intended.

Entries live in `catalog/*.yaml` (id -> family, activation, max length, dtype, template...).
A model outside the catalog is described by `detect_spec` from its own `config.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

FAMILIES = ("cross-encoder", "bi-encoder", "jina-reranker", "late-interaction", "causal-lm")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the registry and a family need to know about one model."""

    name: str
    source: str
    family: str
    catalog_id: str | None = None
    architecture: str | None = None
    activation: str = "config"
    max_length: int | None = None
    dtype: str | None = None
    pooling: str = "mean"
    package: str | None = None
    license: str | None = None
    notes: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def with_source(self, name: str, source: str) -> ModelSpec:
        return replace(self, name=name, source=source)


_SPEC_FIELDS = {
    "family",
    "architecture",
    "activation",
    "max_length",
    "dtype",
    "pooling",
    "package",
    "license",
    "notes",
}


@cache
def catalog() -> dict[str, ModelSpec]:
    """All catalog entries by id (read once from the package data)."""
    entries: dict[str, ModelSpec] = {}
    folder = resources.files("rerankd.models") / "catalog"
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yaml"):
            continue
        for raw in yaml.safe_load(path.read_text()) or []:
            known = {key: raw[key] for key in _SPEC_FIELDS if key in raw}
            settings = {key: value for key, value in raw.items() if key not in _SPEC_FIELDS and key != "id"}
            entries[raw["id"]] = ModelSpec(
                name=raw["id"], source=raw["id"], catalog_id=raw["id"], settings=settings, **known
            )
    return entries


def lookup(model_id: str) -> ModelSpec | None:
    return catalog().get(model_id)


class UnknownFamily(ValueError):
    """The checkpoint's config does not tell which family would score it."""


def detect_spec(name: str, source: str, model_dir: Path) -> ModelSpec:
    """Describe an uncatalogued checkpoint from its `config.json` architectures."""
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise UnknownFamily(f"{model_dir} has no config.json, so its model family cannot be told")
    config = json.loads(config_path.read_text())
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures else None
    if architecture and architecture.endswith("ForSequenceClassification"):
        return ModelSpec(name=name, source=source, family="cross-encoder", architecture=architecture)
    if architecture and architecture.endswith("ForCausalLM"):
        llm_ids = sorted(spec.name for spec in catalog().values() if spec.family == "causal-lm")
        raise UnknownFamily(
            f"{source!r} is a causal language model ({architecture}); an LLM reranker scores with its own "
            f"prompt template, so serve it under its catalog id as NAME=SOURCE, NAME one of: {', '.join(llm_ids)}"
        )
    if (model_dir / "modules.json").exists() or (architecture and architecture.endswith("Model")):
        return ModelSpec(name=name, source=source, family="bi-encoder", architecture=architecture)
    raise UnknownFamily(
        f"cannot tell the family of {source!r} from its config (architectures={architectures}); "
        f"use a catalog id as the model name (NAME=SOURCE) or a supported architecture"
    )
