"""The model an adapter is trained for, found the way `rerankd serve --model` finds it.

Only the cross-encoder and bi-encoder families are trained: their networks are the ones
sentence-transformers' trainers know (`AutoModelForSequenceClassification`, a bare `AutoModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rerankd.evaluation.errors import BadInput

FAMILIES = ("cross-encoder", "bi-encoder")


@dataclass(frozen=True)
class BaseModel:
    source: str  # as given: a catalog id, a directory, a model package
    directory: Path
    family: str


def resolve_base(source: str) -> BaseModel:
    from rerankd.models.catalog import detect_spec
    from rerankd.registry.entries import make_spec
    from rerankd.registry.sources import resolve_source

    try:
        directory = resolve_source(source, allow_download=False)
        spec = make_spec(source, source) or detect_spec(source, source, directory)
    except Exception as error:  # SourceNotFound, UnknownFamily, a path outside the roots...
        raise BadInput(f"--model {source}: {error}") from None
    if spec.family not in FAMILIES:
        raise BadInput(f"--model {source} is a {spec.family}; finetune trains {' and '.join(FAMILIES)} models")
    return BaseModel(source=source, directory=directory, family=spec.family)
