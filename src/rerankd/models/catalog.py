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
# How a (query, document) pair is cut to the model's limit. `longest_first`: Hugging Face's
# default, what sentence-transformers' CrossEncoder does. `only_second`: FlagEmbedding's
# FlagReranker: the query is first cut to `query_max_length` tokens, then only the document is cut.
TRUNCATIONS = ("longest_first", "only_second")


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
    truncation: str = "longest_first"
    query_max_length: int | None = None
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
    "truncation",
    "query_max_length",
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
            spec = ModelSpec(name=raw["id"], source=raw["id"], catalog_id=raw["id"], settings=settings, **known)
            validate_entry(spec, path.name)
            entries[raw["id"]] = spec
    return entries


def validate_entry(spec: ModelSpec, filename: str = "catalog") -> None:
    """A typo in a catalog file must fail loudly at start-up, not change scores silently."""
    where = f"catalog entry {spec.name!r} ({filename})"
    if spec.truncation not in TRUNCATIONS:
        raise ValueError(f"{where}: truncation {spec.truncation!r} is not one of {TRUNCATIONS}")
    if spec.query_max_length is not None:
        if spec.truncation != "only_second":
            raise ValueError(f"{where}: query_max_length only applies to truncation: only_second")
        if spec.max_length is not None and not 0 < spec.query_max_length < spec.max_length:
            raise ValueError(f"{where}: query_max_length must be between 1 and max_length ({spec.max_length})")


def lookup(model_id: str) -> ModelSpec | None:
    return catalog().get(model_id)


class UnknownFamily(ValueError):
    """The checkpoint's config does not tell which family would score it."""


def detect_spec(name: str, source: str, model_dir: Path) -> ModelSpec:
    """Describe an uncatalogued checkpoint from its `config.json` architectures.

    Only what the config makes unambiguous is detected: a `*ForSequenceClassification` head is a
    cross-encoder scored like sentence-transformers' CrossEncoder; a sentence-transformers
    checkpoint (`modules.json`) or a bare `*Model` encoder is a bi-encoder. Anything else (a
    causal LM that needs a prompt template, remote code) is refused with the reason, rather
    than guessed and scored wrongly.
    """
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise UnknownFamily(f"cannot tell the model family of {source!r}: it has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as error:
        reason = f"its config.json is not JSON ({error})"
        raise UnknownFamily(f"cannot tell the model family of {source!r}: {reason}") from None
    if not isinstance(config, dict):
        raise UnknownFamily(f"cannot tell the model family of {source!r}: its config.json is not an object")
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    hint = f"serve it under a catalog id that describes it (--model CATALOG_ID={source}; GET /v1/models lists them)"
    if config.get("auto_map") and not config.get("model_type"):
        raise UnknownFamily(
            f"cannot tell the model family of {source!r}: its config.json has no model_type and points to "
            f"custom code (auto_map), which rerankd never runs; {hint}"
        )
    for architecture in architectures:
        if architecture.endswith("ForSequenceClassification"):
            return ModelSpec(name=name, source=source, family="cross-encoder", architecture=architecture)
        if architecture == "HF_ColBERT":
            return ModelSpec(name=name, source=source, family="late-interaction", architecture=architecture)
        if architecture.endswith("ForCausalLM"):
            llm_ids = sorted(spec.name for spec in catalog().values() if spec.family == "causal-lm")
            raise UnknownFamily(
                f"{source!r} is a causal language model ({architecture}); an LLM reranker scores with its own "
                f"prompt template, so serve it under its catalog id as NAME=SOURCE, NAME one of: {', '.join(llm_ids)}"
            )
    if _sentence_transformers_model_type(model_dir) == "ColBERT":
        return ModelSpec(name=name, source=source, family="late-interaction", architecture=None)
    first = architectures[0] if architectures else None
    if (model_dir / "modules.json").exists() or (first is not None and first.endswith("Model")):
        return ModelSpec(name=name, source=source, family="bi-encoder", architecture=first)
    raise UnknownFamily(
        f"cannot tell the model family of {source!r} from its config.json (architectures={architectures}): "
        f"only *ForSequenceClassification cross-encoders and sentence-transformers / *Model embedding "
        f"models are detected; {hint}"
    )


def _sentence_transformers_model_type(model_dir: Path) -> str | None:
    """`model_type` of a sentence-transformers / PyLate checkpoint (PyLate ColBERTs say "ColBERT")."""
    path = model_dir / "config_sentence_transformers.json"
    try:
        value = json.loads(path.read_text()).get("model_type") if path.exists() else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
