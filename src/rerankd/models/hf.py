"""Loading Hugging Face `transformers` networks the same way for every family."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from rerankd.models.runtime import Placement


class IncompatibleCheckpoint(ValueError):
    """The checkpoint is not in a layout (or variant) its family can load and reproduce exactly."""


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_network(
    auto_class: Any, model_dir: Path, placement: Placement, *, optional_weights: tuple[str, ...] | None = None
) -> torch.nn.Module:
    """Load weights in the chosen dtype with SDPA attention (eager where SDPA is unsupported).

    Never runs remote code: families that need custom code implement it here instead. With
    `optional_weights` (name prefixes), any other weight the checkpoint lacks is an
    `IncompatibleCheckpoint` instead of a silently random-initialised tensor.
    """
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    downloads_show_progress = not are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar: one per load, noise in a server log
    if downloads_show_progress:
        enable_progress_bars()  # transformers also turned off huggingface_hub's: later downloads keep theirs
    kwargs: dict[str, Any] = {"dtype": placement.dtype, "trust_remote_code": False}
    if optional_weights is not None:
        kwargs["output_loading_info"] = True
    try:
        loaded = auto_class.from_pretrained(str(model_dir), attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as error:
        if "sdpa" not in str(error).lower() and "attention" not in str(error).lower():
            raise
        loaded = auto_class.from_pretrained(str(model_dir), attn_implementation="eager", **kwargs)
    if optional_weights is None:
        model = loaded
    else:
        model, info = loaded
        missing = [key for key in info.get("missing_keys", []) if not key.startswith(optional_weights)]
        if missing:
            raise IncompatibleCheckpoint(f"weights missing from {model_dir}: {sorted(missing)[:5]}")
    model.eval()
    model.requires_grad_(False)
    return model.to(placement.device)


def accepts_argument(model: torch.nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def uses_token_types(model: torch.nn.Module, config: dict[str, Any]) -> bool:
    """Whether to send token-type ids: only to networks that take them and learned more than one."""
    return accepts_argument(model, "token_type_ids") and int(config.get("type_vocab_size", 1) or 1) > 1


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes held by parameters and buffers (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total
