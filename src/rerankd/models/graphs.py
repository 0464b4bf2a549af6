"""Encoder networks as one function of named token tensors: what torch runs and what backends compile.

A family's forward pass is `graph(input_ids=..., attention_mask=..., [token_type_ids=...])`
returning one float32 row per unit (logits for a cross-encoder, the pooled embedding for a
bi-encoder). The same module runs eagerly in torch and is traced once into OpenVINO, so both
backends compute the same thing.

**Only the first token of the last layer.** A sequence-classification head (BERT's pooler,
RoBERTa's / XLM-R's / ELECTRA's classification head) and CLS pooling read the last layer's
output at position 0 alone. In that layer the other positions are still needed as keys and
values, but their queries, attention outputs and feed-forward blocks are not: computing them
for token 0 only cuts the last layer to about a sixth of its multiply-adds (14 % of a
6-layer MiniLM, 3.5 % of a 24-layer XLM-R large). Same operations on the same rows, so the
scores are the full network's (within 2e-6 on logits in fp32). The layer keeps its module
names (its class is swapped, not wrapped), so LoRA adapters and their hooks find it as before.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

# Heads that read only position 0 of the last layer's output.
FIRST_TOKEN_HEADS = frozenset(
    {
        "BertForSequenceClassification",
        "RobertaForSequenceClassification",
        "XLMRobertaForSequenceClassification",
        "ElectraForSequenceClassification",
    }
)


def _attention_function(self_attention: nn.Module):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    return ALL_ATTENTION_FUNCTIONS.get_interface(self_attention.config._attn_implementation, eager_attention_forward)


def _first_token_forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *_, **__):
    """A BERT-style layer's forward for position 0 only: (batch, 1, hidden)."""
    attention = self.attention.self
    batch, length, _ = hidden_states.shape
    size = attention.attention_head_size
    first = hidden_states[:, :1]
    query = attention.query(first).view(batch, 1, -1, size).transpose(1, 2)
    key = attention.key(hidden_states).view(batch, length, -1, size).transpose(1, 2)
    value = attention.value(hidden_states).view(batch, length, -1, size).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, :1]  # the mask's query rows: keep the first
    context, _ = _attention_function(attention)(
        attention, query, key, value, attention_mask, dropout=0.0, scaling=attention.scaling
    )
    attended = self.attention.output(context.reshape(batch, 1, -1), first)
    return self.output(self.intermediate(attended), attended)


@functools.cache
def _first_token_class(layer_class: type) -> type:
    return type(f"FirstTokenOnly{layer_class.__name__}", (layer_class,), {"forward": _first_token_forward})


def _is_bert_style(layer: nn.Module) -> bool:
    attention = getattr(layer, "attention", None)
    self_attention = getattr(attention, "self", None)
    return (
        all(hasattr(self_attention, name) for name in ("query", "key", "value", "scaling", "attention_head_size"))
        and hasattr(attention, "output")
        and hasattr(layer, "intermediate")
        and hasattr(layer, "output")
        and not getattr(layer, "is_decoder", False)
        and not getattr(layer, "add_cross_attention", False)
        and not getattr(layer, "chunk_size_feed_forward", 0)
    )


def encoder_layers(network: nn.Module) -> Any:
    encoder = getattr(getattr(network, "base_model", network), "encoder", None)
    return getattr(encoder, "layer", None)


def first_token_last_layer(network: nn.Module, *, reads_first_token_only: bool) -> bool:
    """Compute the last layer for position 0 only, where that changes nothing; True if applied."""
    if not reads_first_token_only:
        return False
    layers = encoder_layers(network)
    if not layers or not _is_bert_style(layers[-1]):
        return False
    last = layers[-1]
    if not type(last).__name__.startswith("FirstTokenOnly"):
        last.__class__ = _first_token_class(type(last))
    return True


def reads_first_token(network: nn.Module) -> bool:
    """Whether a sequence-classification network's head reads position 0 alone."""
    return type(network).__name__ in FIRST_TOKEN_HEADS


class LogitsGraph(nn.Module):
    """A sequence-classification network: token tensors in, float32 logits out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.network(input_ids=input_ids, attention_mask=attention_mask, **extra).logits.float()


class PooledGraph(nn.Module):
    """A bare encoder with its sentence-transformers pooling: token tensors in, float32 embeddings out."""

    def __init__(self, network: nn.Module, pooling: str) -> None:
        super().__init__()
        self.network = network
        self.pooling = pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.network(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state.float()
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
