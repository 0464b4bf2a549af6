"""Model families: how text becomes a score. Nothing here knows about HTTP."""

from __future__ import annotations

from pathlib import Path

import torch

from rerankd.models.base import Family, Prepared
from rerankd.models.catalog import ModelSpec
from rerankd.models.execution import ExecutionOptions, configure_execution
from rerankd.models.runtime import Placement


def build_family(
    spec: ModelSpec, placement: Placement, model_dir: Path, execution: ExecutionOptions | None = None
) -> Family:
    """Load the network and tokenizer of `spec` from `model_dir` into its family class.

    Then decide how it runs (`models/execution.py`): torch or a compiled backend, exact or `fast`.
    """
    family = _construct(spec, placement, model_dir)
    if placement.feed_forward_dtype is not None and isinstance(family.network, torch.nn.Module):
        from rerankd.models.precision import half_feed_forward

        half_feed_forward(family.network, placement.feed_forward_dtype)
    try:
        configure_execution(family, model_dir, execution or ExecutionOptions())
    except BaseException:
        family.close()
        raise
    return family


def _construct(spec: ModelSpec, placement: Placement, model_dir: Path) -> Family:
    if spec.family == "cross-encoder":
        from rerankd.models.cross_encoder import CrossEncoderFamily

        return CrossEncoderFamily(spec, placement, model_dir)
    if spec.family == "bi-encoder":
        from rerankd.models.bi_encoder import BiEncoderFamily

        return BiEncoderFamily(spec, placement, model_dir)
    if spec.family == "jina-reranker":
        from rerankd.models.jina import JinaRerankerFamily

        return JinaRerankerFamily(spec, placement, model_dir)
    if spec.family == "late-interaction":
        from rerankd.models.late_interaction import LateInteractionFamily

        return LateInteractionFamily(spec, placement, model_dir)
    if spec.family == "causal-lm":
        from rerankd.models.causal_lm import CausalLMFamily

        return CausalLMFamily(spec, placement, model_dir)
    raise ValueError(f"unknown model family {spec.family!r}")


__all__ = ["ExecutionOptions", "Family", "ModelSpec", "Prepared", "build_family"]
