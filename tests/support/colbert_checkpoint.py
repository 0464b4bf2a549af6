"""Small random ColBERT checkpoints in the published layouts (real BERT uncased tokenizer).

Stanford layout (`colbert-ir/colbertv2.0`, `answerdotai/answerai-colbert-small-v1`): config.json
with `architectures: ["HF_ColBERT"]`, one safetensors file holding the encoder under `bert.`
and the projection as `linear.weight` (no bias), and `artifact.metadata` with colbert-ai's
settings. PyLate layout (also shipped by answerai-colbert-small-v1): `modules.json` naming a
Transformer folder and a `Dense` folder (`linear.weight`), settings in
`config_sentence_transformers.json`. The tokenizer is bert-base-uncased's vocabulary (the one
colbertv2.0 uses), copied from the offline all-MiniLM-L6-v2 package.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from safetensors.torch import save_file

from rerankd.bench.checkpoints import copy_tokenizer_files, require_minilm_dir


def _random_bert(hidden: int, layers: int, heads: int, seed: int):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
    )
    with torch.device("meta"):  # only the names and shapes; the values are drawn below
        shapes = {name: tensor.shape for name, tensor in BertModel(config).state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=generator)
        if "LayerNorm.weight" in name:
            state[name] = 1.0 + 0.1 * noise
        elif name.endswith("bias"):
            state[name] = 0.1 * noise
        elif "embeddings" in name:
            state[name] = 0.5 * noise
        else:
            state[name] = 0.2 * noise
    return config, state, 0.3 * torch.randn(hidden, hidden, generator=generator)


def build_colbert(
    target: Path,
    *,
    layouts: tuple[str, ...] = ("stanford",),
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    dim: int = 16,
    query_maxlen: int = 32,
    doc_maxlen: int = 180,
) -> Path:
    """Write a ColBERT checkpoint in the given layouts (same weights in each) to `target`."""
    config, state, square = _random_bert(hidden, layers, heads, seed)
    linear = square[:dim].contiguous()  # (dim, hidden), like nn.Linear(hidden, dim, bias=False)
    target.mkdir(parents=True, exist_ok=True)
    if "stanford" in layouts:
        hf_config = {**config.to_dict(), "architectures": ["HF_ColBERT"]}
        (target / "config.json").write_text(json.dumps(hf_config, indent=2))
        tensors = {f"bert.{name}": tensor for name, tensor in state.items()} | {"linear.weight": linear}
        save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
        metadata = {
            "query_token_id": "[unused0]",
            "doc_token_id": "[unused1]",
            "query_token": "[Q]",
            "doc_token": "[D]",
            "similarity": "cosine",
            "query_maxlen": query_maxlen,
            "attend_to_mask_tokens": False,
            "interaction": "colbert",
            "dim": dim,
            "doc_maxlen": doc_maxlen,
            "mask_punctuation": True,
            "checkpoint": "bert-base-uncased",
            "nbits": 2,
            "kmeans_niters": 20,
        }
        (target / "artifact.metadata").write_text(json.dumps(metadata, indent=4))
        copy_tokenizer_files(require_minilm_dir(), target)
    if "pylate" in layouts:
        transformer = target / "0_Transformer"
        transformer.mkdir(exist_ok=True)
        (transformer / "config.json").write_text(json.dumps({**config.to_dict(), "architectures": ["BertModel"]}))
        save_file(state, str(transformer / "model.safetensors"), metadata={"format": "pt"})
        (transformer / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": doc_maxlen - 1}))
        copy_tokenizer_files(require_minilm_dir(), transformer)
        dense = target / "1_Dense"
        dense.mkdir(exist_ok=True)
        dense_config = {
            "in_features": hidden,
            "out_features": dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        }
        (dense / "config.json").write_text(json.dumps(dense_config))
        save_file({"linear.weight": linear}, str(dense / "model.safetensors"), metadata={"format": "pt"})
        modules = [
            {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ]
        (target / "modules.json").write_text(json.dumps(modules, indent=2))
        pylate = {
            "model_type": "ColBERT",
            "query_prefix": "[unused0]",
            "document_prefix": "[unused1]",
            "query_length": query_maxlen,
            "document_length": doc_maxlen,
            "attend_to_expansion_tokens": False,
            "skiplist_words": list(string.punctuation),
            "do_query_expansion": True,
            "similarity_fn_name": "MaxSim",
        }
        (target / "config_sentence_transformers.json").write_text(json.dumps(pylate, indent=2))
    return target
