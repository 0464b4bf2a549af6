"""Random-weight cross-encoder checkpoints at real sizes, for benchmarks on machines with no hub.

    python benchmarks/make_checkpoints.py --assets DIR --out DIR [--which minilm,xlmr-large]

`minilm`: BertForSequenceClassification shaped like cross-encoder/ms-marco-MiniLM-L-6-v2
(6 layers, hidden 384; 22.7M parameters) with the BERT tokenizer from `--assets/bert`.
`xlmr-large`: XLMRobertaForSequenceClassification shaped like BAAI/bge-reranker-v2-m3
(24 layers, hidden 1024; 568M parameters) with the XLM-R tokenizer from `--assets/xlm-roberta`.
Speed depends on shapes, not on weight values, so these stand in for the real models.
The layouts come from `rerankd.bench.checkpoints` (gpu_check.sh puts `src/` on PYTHONPATH).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import BertForSequenceClassification, XLMRobertaForSequenceClassification

from rerankd.bench.checkpoints import bert_cross_encoder_config, save_checkpoint, xlmr_cross_encoder_config


def minilm(assets: Path, out: Path) -> Path:
    model = BertForSequenceClassification(bert_cross_encoder_config())
    return _save(model, assets / "bert", out / "minilm")


def xlmr_large(assets: Path, out: Path) -> Path:
    model = XLMRobertaForSequenceClassification(xlmr_cross_encoder_config())
    return _save(model, assets / "xlm-roberta", out / "xlmr-large")


def _save(model: torch.nn.Module, tokenizer_dir: Path, target: Path) -> Path:
    """The assets' tokenizer folder holds only tokenizer files: all of them go beside the weights."""
    save_checkpoint(model, target, tokenizer_dir, sorted(path.name for path in tokenizer_dir.iterdir()))
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
