"""jina-reranker-v2 loaded natively: its remote-code checkpoint mapped onto XLM-RoBERTa.

`jinaai/jina-reranker-v2-base-multilingual` ships custom modeling code (`auto_map`, no
`model_type`), so `Auto*` classes would need `trust_remote_code`. Its network is a post-norm
BERT/XLM-R encoder written with flash-attention modules; the math is XLM-RoBERTa's:

* embeddings: word + absolute position (XLM-R position ids: padding index + 1 onwards, from
  the non-padding tokens) + token type, then LayerNorm (`emb_ln`);
* each layer: fused `mixer.Wqkv` (rows = query | key | value, heads contiguous), softmax
  attention scaled by 1/sqrt(head dim) over non-padding keys, `mixer.out_proj`, residual,
  `norm1`; `mlp.fc1`, GELU (exact erf for `gelu`, tanh for the `gelu_new`-like names),
  `mlp.fc2`, residual, `norm2`;
* head: `<s>` state -> `classifier.dense` -> tanh -> `classifier.out_proj` (one logit).

So we read config.json and the safetensors ourselves, split `Wqkv` and rename every tensor
onto `transformers`' `XLMRobertaForSequenceClassification` (loaded strictly: no tensor left
over, none missing). Score = sigmoid(logit), as the card's `compute_score` does.

Scoring follows the card's two entry points: plain requests are `compute_score`
(`tokenizer(query, doc, truncation=True, max_length=1024)`, i.e. longest_first); requests
that ask for chunking follow `rerank()`: the query cut to `max_query_length` tokens, each
document split into windows that fill the rest of the 1024 tokens, consecutive windows
overlapping by min(`overlap_tokens`, window // 4), the last window aligned to the document's
end, and a document's score the max over its windows.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

from rerankd.models.base import Prepared, max_over_units, sigmoid
from rerankd.models.catalog import ModelSpec
from rerankd.models.hf import IncompatibleCheckpoint, module_bytes, read_config
from rerankd.models.limits import max_sequence_length, position_limit
from rerankd.models.pairs import PairFamily
from rerankd.models.runtime import Placement
from rerankd.models.safetensors_files import load_tensors
from rerankd.models.tokenization import load_tokenizer, probe_single_template

# `rerank()`'s defaults in the published modeling code; the catalog may override them.
DEFAULT_MAX_QUERY_LENGTH = 512
DEFAULT_OVERLAP_TOKENS = 80

# Published tensor name -> XLMRobertaForSequenceClassification name ("{i}" = layer index).
# `mixer.Wqkv` is split three ways and handled apart.
_RENAMES: dict[str, str] = {
    "roberta.embeddings.word_embeddings.weight": "roberta.embeddings.word_embeddings.weight",
    "roberta.embeddings.position_embeddings.weight": "roberta.embeddings.position_embeddings.weight",
    "roberta.embeddings.token_type_embeddings.weight": "roberta.embeddings.token_type_embeddings.weight",
    "roberta.emb_ln.weight": "roberta.embeddings.LayerNorm.weight",
    "roberta.emb_ln.bias": "roberta.embeddings.LayerNorm.bias",
    "roberta.encoder.layers.{i}.mixer.out_proj.weight": "roberta.encoder.layer.{i}.attention.output.dense.weight",
    "roberta.encoder.layers.{i}.mixer.out_proj.bias": "roberta.encoder.layer.{i}.attention.output.dense.bias",
    "roberta.encoder.layers.{i}.norm1.weight": "roberta.encoder.layer.{i}.attention.output.LayerNorm.weight",
    "roberta.encoder.layers.{i}.norm1.bias": "roberta.encoder.layer.{i}.attention.output.LayerNorm.bias",
    "roberta.encoder.layers.{i}.mlp.fc1.weight": "roberta.encoder.layer.{i}.intermediate.dense.weight",
    "roberta.encoder.layers.{i}.mlp.fc1.bias": "roberta.encoder.layer.{i}.intermediate.dense.bias",
    "roberta.encoder.layers.{i}.mlp.fc2.weight": "roberta.encoder.layer.{i}.output.dense.weight",
    "roberta.encoder.layers.{i}.mlp.fc2.bias": "roberta.encoder.layer.{i}.output.dense.bias",
    "roberta.encoder.layers.{i}.norm2.weight": "roberta.encoder.layer.{i}.output.LayerNorm.weight",
    "roberta.encoder.layers.{i}.norm2.bias": "roberta.encoder.layer.{i}.output.LayerNorm.bias",
    "classifier.dense.weight": "classifier.dense.weight",
    "classifier.dense.bias": "classifier.dense.bias",
    "classifier.out_proj.weight": "classifier.out_proj.weight",
    "classifier.out_proj.bias": "classifier.out_proj.bias",
}
_WQKV = re.compile(r"^roberta\.encoder\.layers\.(\d+)\.mixer\.Wqkv\.(weight|bias)$")
_LAYER = re.compile(r"^roberta\.encoder\.layers\.(\d+)\.")

# The modeling code's activation choice: these names mean tanh-approximated GELU, others erf.
_TANH_GELU = {"gelu_new", "gelu_fast", "gelu_pytorch_tanh"}


def xlmr_config(config: dict) -> XLMRobertaConfig:
    """The `transformers` config with the same math as jina's flash-attention config."""
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise IncompatibleCheckpoint(f"position_embedding_type {config['position_embedding_type']!r} is not supported")
    if config.get("lora_adaptations") or config.get("load_trained_adapters"):
        raise IncompatibleCheckpoint("checkpoints with LoRA adaptations (jina-embeddings-v3 style) are not supported")
    act = config.get("hidden_act", "gelu")
    if act not in {"gelu", *_TANH_GELU}:
        raise IncompatibleCheckpoint(f"hidden_act {act!r} is not one the jina modeling code accepts")
    num_labels = int(config.get("num_labels") or len(config.get("id2label") or {}) or 1)
    if num_labels != 1:
        raise IncompatibleCheckpoint(f"a reranker has one relevance logit; this checkpoint has {num_labels} labels")
    return XLMRobertaConfig(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"],
        hidden_act="gelu_pytorch_tanh" if act in _TANH_GELU else "gelu",
        max_position_embeddings=config["max_position_embeddings"],
        type_vocab_size=config.get("type_vocab_size", 1),
        layer_norm_eps=config.get("layer_norm_eps", 1e-5),
        pad_token_id=config.get("pad_token_id", 1),
        bos_token_id=config.get("bos_token_id", 0),
        eos_token_id=config.get("eos_token_id", 2),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=1,
    )


def map_state_dict(tensors: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Rename jina's tensors to XLM-R's and split each fused `Wqkv` into query, key, value."""
    templates = {name.replace("{i}", str(i)): target.replace("{i}", str(i)) for i in range(num_layers)
                 for name, target in _RENAMES.items()}  # fmt: skip
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, tensor in tensors.items():
        layer = _LAYER.match(name)
        if layer and int(layer.group(1)) >= num_layers:
            unknown.append(name)
            continue
        fused = _WQKV.match(name)
        if fused:
            index, kind = fused.groups()
            query, key, value = tensor.chunk(3, dim=0)
            prefix = f"roberta.encoder.layer.{index}.attention.self"
            mapped[f"{prefix}.query.{kind}"] = query
            mapped[f"{prefix}.key.{kind}"] = key
            mapped[f"{prefix}.value.{kind}"] = value
        elif name in templates:
            mapped[templates[name]] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise IncompatibleCheckpoint(f"tensors this layout does not have: {sorted(unknown)[:5]}")
    return mapped


def _no_init_weights():
    """Skip random initialisation (seconds for 278M parameters) of weights we load anyway."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


def load_jina_network(model_dir: Path, placement: Placement) -> tuple[torch.nn.Module, dict]:
    """XLMRobertaForSequenceClassification holding the checkpoint's weights (strictly mapped)."""
    config = read_config(model_dir)
    if not config:
        raise IncompatibleCheckpoint(f"{model_dir} has no config.json")
    hf_config = xlmr_config(config)
    hf_config._attn_implementation = "sdpa"
    state = map_state_dict(load_tensors(model_dir), hf_config.num_hidden_layers)
    with _no_init_weights():  # every parameter is overwritten below (strictly checked)
        network = XLMRobertaForSequenceClassification(hf_config)
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise IncompatibleCheckpoint(
            f"checkpoint does not fill the network: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    network.eval()
    network.requires_grad_(False)
    return network.to(device=placement.device, dtype=placement.dtype), config


class JinaRerankerFamily(PairFamily):
    """Plain requests: `compute_score` (longest_first pairs); chunked ones: `rerank()`'s windows."""

    kind = "jina-reranker"
    align_last_window = True  # rerank(): the last window is a full one ending at the document's end

    def __init__(self, spec: ModelSpec, placement: Placement, model_dir: Path) -> None:
        loaded = load_tokenizer(model_dir)
        super().__init__(spec, placement, loaded)
        self.network, config = load_jina_network(model_dir, placement)
        # XLM-R position ids start after the padding index: pad_token_id + 1 positions hold no text.
        positions = position_limit(config, reserved=int(config.get("pad_token_id", 1)) + 1)
        self._max_length = max_sequence_length(spec.max_length, loaded.model_max_length, positions)
        # `rerank()` encodes the query alone (`<s> query </s>`) capped at max_query_length tokens.
        max_query_length = int(spec.settings.get("max_query_length", DEFAULT_MAX_QUERY_LENGTH))
        self.query_budget = max(1, max_query_length - probe_single_template(self.tokenizer).num_special)
        self.window_overlap = int(spec.settings.get("overlap_tokens", DEFAULT_OVERLAP_TOKENS))

    @property
    def max_length(self) -> int:
        return self._max_length

    def window_query_length(self) -> int:
        return self.query_budget

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {key: value for key, value in inputs.items() if key != "token_type_ids"}
        return self.network(**inputs).logits.float().cpu()

    def scores(self, prepared: Prepared, outputs: np.ndarray, raw: bool) -> np.ndarray:
        logits = max_over_units(outputs[:, 0].astype(np.float64), prepared.unit_item, prepared.n_items)
        return logits if raw else sigmoid(logits)

    def parameters_bytes(self) -> int:
        return module_bytes(self.network)
