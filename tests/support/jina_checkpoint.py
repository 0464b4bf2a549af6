"""A small random checkpoint in jina-reranker-v2's published layout (remote-code flash XLM-R).

Same files and names as `jinaai/jina-reranker-v2-base-multilingual`: a config.json with an
`auto_map` to remote code and no `model_type`, bfloat16 safetensors named
`roberta.encoder.layers.N.mixer.Wqkv.weight` etc., the real XLM-R tokenizer. Only the sizes
are small (2 layers, hidden 32) and the weights random (fixed seed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from support.data import XLMR_TOKENIZER

# The published tokenizer_config.json (its tokenizer.json is the XLM-R one).
TOKENIZER_CONFIG = {
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": True,
    "cls_token": "<s>",
    "eos_token": "</s>",
    "mask_token": "<mask>",
    "model_max_length": 1024,
    "pad_token": "<pad>",
    "sep_token": "</s>",
    "tokenizer_class": "XLMRobertaTokenizer",
    "unk_token": "<unk>",
}


def jina_config(hidden: int, layers: int, heads: int, intermediate: int) -> dict:
    """config.json as published, with the sizes swapped for small ones."""
    return {
        "_name_or_path": "jinaai/jina-reranker-v2-base-multilingual",
        "architectures": ["XLMRobertaForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "auto_map": {
            "AutoConfig": "configuration_xlm_roberta.XLMRobertaFlashConfig",
            "AutoModel": "modeling_xlm_roberta.XLMRobertaModel",
            "AutoModelForSequenceClassification": "modeling_xlm_roberta.XLMRobertaForSequenceClassification",
        },
        "bos_token_id": 0,
        "classifier_dropout": None,
        "emb_pooler": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden,
        "num_labels": 1,
        "id2label": {"0": "LABEL_0"},
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "label2id": {"LABEL_0": 0},
        "layer_norm_eps": 1e-5,
        "max_position_embeddings": 1026,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "output_past": True,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.0",
        "type_vocab_size": 1,
        "use_cache": False,
        "use_flash_attn": True,
        "vocab_size": 250002,
    }


def jina_tensors(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random weights under the published tensor names (scaled so that scores spread out)."""
    generator = torch.Generator().manual_seed(seed)
    hidden, inner = config["hidden_size"], config["intermediate_size"]

    def normal(*shape: int, std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * std + mean

    tensors = {
        "roberta.embeddings.word_embeddings.weight": normal(config["vocab_size"], hidden, std=0.5),
        "roberta.embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], hidden, std=0.5),
        "roberta.embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], hidden, std=0.5),
        "roberta.emb_ln.weight": normal(hidden, std=0.1, mean=1.0),
        "roberta.emb_ln.bias": normal(hidden, std=0.1),
        "classifier.dense.weight": normal(hidden, hidden, std=0.3),
        "classifier.dense.bias": normal(hidden, std=0.1),
        "classifier.out_proj.weight": normal(1, hidden, std=1.0),
        "classifier.out_proj.bias": normal(1, std=0.1),
    }
    for i in range(config["num_hidden_layers"]):
        prefix = f"roberta.encoder.layers.{i}"
        tensors |= {
            f"{prefix}.mixer.Wqkv.weight": normal(3 * hidden, hidden, std=0.3),
            f"{prefix}.mixer.Wqkv.bias": normal(3 * hidden, std=0.1),
            f"{prefix}.mixer.out_proj.weight": normal(hidden, hidden, std=0.2),
            f"{prefix}.mixer.out_proj.bias": normal(hidden, std=0.1),
            f"{prefix}.norm1.weight": normal(hidden, std=0.1, mean=1.0),
            f"{prefix}.norm1.bias": normal(hidden, std=0.1),
            f"{prefix}.mlp.fc1.weight": normal(inner, hidden, std=0.2),
            f"{prefix}.mlp.fc1.bias": normal(inner, std=0.1),
            f"{prefix}.mlp.fc2.weight": normal(hidden, inner, std=0.2),
            f"{prefix}.mlp.fc2.bias": normal(hidden, std=0.1),
            f"{prefix}.norm2.weight": normal(hidden, std=0.1, mean=1.0),
            f"{prefix}.norm2.bias": normal(hidden, std=0.1),
        }
    return {name: tensor.to(torch.bfloat16).contiguous() for name, tensor in tensors.items()}


def build_jina_reranker_v2(
    target: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 2, intermediate: int = 64
) -> Path:
    """Write the checkpoint to `target` (needs the XLM-R tokenizer from ../shared/data)."""
    target.mkdir(parents=True, exist_ok=True)
    config = jina_config(hidden, layers, heads, intermediate)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    save_file(jina_tensors(config, seed), str(target / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(XLMR_TOKENIZER, target / "tokenizer.json")
    (target / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    return target
