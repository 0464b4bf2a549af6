"""Random-weight cross-encoder checkpoints at real sizes, for benchmarks on machines with no hub.

    python benchmarks/make_checkpoints.py --assets DIR --out DIR [--which minilm,xlmr-large]

`minilm`: BertForSequenceClassification shaped like cross-encoder/ms-marco-MiniLM-L-6-v2
(6 layers, hidden 384; 22.7M parameters) with the BERT tokenizer from `--assets/bert`.
`xlmr-large`: XLMRobertaForSequenceClassification shaped like BAAI/bge-reranker-v2-m3
(24 layers, hidden 1024; 568M parameters) with the XLM-R tokenizer from `--assets/xlm-roberta`.
Speed depends on shapes, not on weight values, so these stand in for the real models.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)


def minilm(assets: Path, out: Path) -> Path:
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    return _save(BertForSequenceClassification(config), assets / "bert", out / "minilm")


def xlmr_large(assets: Path, out: Path) -> Path:
    config = XLMRobertaConfig(
        vocab_size=250002,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=8194,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
    )
    return _save(XLMRobertaForSequenceClassification(config), assets / "xlm-roberta", out / "xlmr-large")


def _save(model: torch.nn.Module, tokenizer_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    for path in tokenizer_dir.iterdir():
        shutil.copy(path, target / path.name)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{target}: {parameters / 1e6:.1f}M parameters")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, required=True, help="folder with bert/ and xlm-roberta/ tokenizers")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--which", default="minilm,xlmr-large")
    args = parser.parse_args()
    torch.manual_seed(0)
    builders = {"minilm": minilm, "xlmr-large": xlmr_large}
    for name in args.which.split(","):
        builders[name](args.assets, args.out)


if __name__ == "__main__":
    main()
