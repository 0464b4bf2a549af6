"""Sequence-classification cross-encoders (BERT, XLM-RoBERTa, ModernBERT, DeBERTa...).

Score = activation(logit) of the pair `[CLS] query [SEP] document [SEP]` (special tokens from
the tokenizer's own post-processor), cut to the model's limit the way its authors' reference
code cuts it (the catalog's `truncation`):

* `longest_first` (default): sentence-transformers' `CrossEncoder.predict`, i.e. Hugging Face's
  `tokenizer(query, document, truncation=True)` at min(limit, tokenizer limit, positions);
* `only_second`: FlagEmbedding's `FlagReranker.compute_score`: the query alone is cut to
  `query_max_length` tokens (3/4 of the limit unless the catalog says otherwise), then only
  the document is cut so that the pair fits.

The activation follows the checkpoint's config as CrossEncoder reads it (sigmoid for one label
unless the config names another); `raw_scores` returns the logit (FlagReranker's default
output, before `normalize=True`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from rerankd.models.base import Prepared, max_over_units, sigmoid
from rerankd.models.catalog import TRUNCATIONS, ModelSpec
from rerankd.models.graphs import LogitsGraph, first_token_last_layer, reads_first_token
from rerankd.models.hf import load_network, module_bytes, read_config, uses_token_types
from rerankd.models.limits import max_sequence_length, position_limit
from rerankd.models.pairs import PairFamily
from rerankd.models.runtime import Placement
from rerankd.models.tokenization import load_tokenizer, query_capped_lengths

# sentence-transformers stores activations as dotted torch paths; these are the ones we know.
_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "identity", "Tanh": "tanh"}


def activation_from_config(config: dict, num_labels: int) -> str:
    """The activation sentence-transformers' CrossEncoder would apply to this checkpoint."""
    path = (config.get("sentence_transformers") or {}).get("activation_fn") or config.get(
        "sbert_ce_default_activation_function"
    )
    if isinstance(path, str) and path.startswith("torch."):
        name = path.rsplit(".", 1)[-1]
        if name in _ACTIVATIONS:
            return _ACTIVATIONS[name]
    return "sigmoid" if num_labels == 1 else "softmax"


def apply_activation(logits: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return sigmoid(logits)
    if activation == "tanh":
        return np.tanh(logits)
    return np.asarray(logits, dtype=np.float64)


def resolve_query_cap(spec: ModelSpec, max_length: int, num_special: int) -> int | None:
    """Tokens the query may keep under `only_second` truncation (None: `longest_first`)."""
    if spec.truncation not in TRUNCATIONS:
        raise ValueError(f"unknown truncation {spec.truncation!r}; expected one of {TRUNCATIONS}")
    if spec.truncation != "only_second":
        return None
    cap = spec.query_max_length or max_length * 3 // 4  # FlagReranker's default
    if not 0 < cap < max_length - num_special:
        raise ValueError(
            f"query_max_length {cap} leaves no room for the document in {max_length} tokens "
            f"({num_special} of them special)"
        )
    return cap


class CrossEncoderFamily(PairFamily):
    kind = "cross-encoder"

    def __init__(self, spec: ModelSpec, placement: Placement, model_dir: Path) -> None:
        loaded = load_tokenizer(model_dir)
        super().__init__(spec, placement, loaded)
        config = read_config(model_dir)
        # What CrossEncoder truncates to: min(catalog, tokenizer, position embeddings).
        self._max_length = max_sequence_length(spec.max_length, loaded.model_max_length, position_limit(config))
        self.query_cap = resolve_query_cap(spec, self._max_length, self.template.num_special)
        self.network = load_network(AutoModelForSequenceClassification, model_dir, placement)
        self.num_labels = int(self.network.config.num_labels)
        if self.num_labels not in (1, 2):
            raise ValueError(
                f"{spec.source} has {self.num_labels} labels; a reranker needs 1 (relevance) "
                f"or 2 (not relevant, relevant)"
            )
        if spec.activation != "config":
            self.activation = spec.activation
        else:
            self.activation = activation_from_config(config, self.num_labels)
        self.segment_ids = uses_token_types(self.network, config)
        self.first_token_only = first_token_last_layer(
            self.network, reads_first_token_only=reads_first_token(self.network)
        )
        self.graph = LogitsGraph(self.network)

    @property
    def max_length(self) -> int:
        return self._max_length

    def pair_lengths(self, query_len: int, doc_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kept (query, document) lengths under the model's truncation rule."""
        if self.query_cap is None:
            return super().pair_lengths(query_len, doc_lengths)
        budget = self.max_length - self.template.num_special
        return query_capped_lengths(query_len, doc_lengths, budget, self.query_cap)

    def window_query_length(self) -> int:
        """What the truncation rule lets the query keep next to a long document.

        `query_max_length` under `only_second`, half the budget under `longest_first`.
        """
        return self.query_cap or max(1, (self.max_length - self.template.num_special) // 2)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.run_graph(inputs).cpu()

    def scores(self, prepared: Prepared, outputs: np.ndarray, raw: bool) -> np.ndarray:
        if self.num_labels == 1:
            logits = outputs[:, 0].astype(np.float64)
        else:  # (not relevant, relevant): the relevance logit margin, softmax of it when activated
            logits = outputs[:, 1].astype(np.float64) - outputs[:, 0].astype(np.float64)
        logits = max_over_units(logits, prepared.unit_item, prepared.n_items)
        if raw:
            return logits
        if self.num_labels == 2 and self.activation == "softmax":
            return sigmoid(logits)  # softmax over two labels = sigmoid of their margin
        return apply_activation(logits, self.activation)

    def parameters_bytes(self) -> int:
        return module_bytes(self.network)
