"""Loading Hugging Face `transformers` networks the same way for every family."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from rerankd.models.runtime import Placement


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_network(auto_class: Any, model_dir: Path, placement: Placement) -> torch.nn.Module:
    """Load weights in the chosen dtype with SDPA attention (eager where SDPA is unsupported).

    Never runs remote code: families that need custom code implement it here instead.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"dtype": placement.dtype, "trust_remote_code": False}
    try:
        model = auto_class.from_pretrained(str(model_dir), attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as error:
        if "sdpa" not in str(error).lower() and "attention" not in str(error).lower():
            raise
        model = auto_class.from_pretrained(str(model_dir), attn_implementation="eager", **kwargs)
    model.eval()
    model.requires_grad_(False)
    return model.to(placement.device)


def accepts_argument(model: torch.nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


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
