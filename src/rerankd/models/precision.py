"""CPU mixed precision: the feed-forward blocks in bf16, everything else in fp32.

Feed-forward layers hold two thirds of an encoder's multiply-adds and tolerate rounding well;
attention projections, layer norms and the residual stream stay fp32, which is what keeps
rankings within Kendall tau 0.99 of fp32 (see `runtime.resolve_placement`).
"""

from __future__ import annotations

import logging
import re

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Linear layers of feed-forward blocks, by qualified module name, across the families' networks:
# BERT / XLM-R / DeBERTa ("intermediate.dense", "output.dense" outside attention), ModernBERT
# ("mlp.Wi", "mlp.Wo"), Llama-style decoders ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj").
_FEED_FORWARD = re.compile(r"(^|\.)(intermediate\.dense|output\.dense|mlp\.[A-Za-z_]+)$")


class HalfLinear(torch.nn.Linear):
    """A Linear layer whose product runs in a half dtype; inputs and outputs stay fp32."""

    def __init__(self, linear: torch.nn.Linear, dtype: torch.dtype) -> None:
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        self.weight = torch.nn.Parameter(linear.weight.detach().to(dtype), requires_grad=False)
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach(), requires_grad=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = F.linear(inputs.to(self.weight.dtype), self.weight).to(inputs.dtype)
        return outputs if self.bias is None else outputs + self.bias


def is_feed_forward(name: str) -> bool:
    return bool(_FEED_FORWARD.search(name)) and "attention" not in name


def half_feed_forward(network: torch.nn.Module, dtype: torch.dtype) -> int:
    """Swap the network's feed-forward Linear layers for `HalfLinear`; returns how many."""
    return len(swap_feed_forward(network, dtype))


def swap_feed_forward(network: torch.nn.Module, dtype: torch.dtype) -> list[tuple[str, torch.nn.Linear]]:
    """`half_feed_forward`, returning the replaced layers by name so that `restore` can put them back."""
    targets = [
        (name, module)
        for name, module in network.named_modules()
        if type(module) is torch.nn.Linear and is_feed_forward(name)
    ]
    for name, module in targets:
        _set_submodule(network, name, HalfLinear(module, dtype))
    if not targets:
        log.warning("no feed-forward layers recognised in %s: it runs in fp32", type(network).__name__)
    return targets


def restore(network: torch.nn.Module, replaced: list[tuple[str, torch.nn.Linear]]) -> None:
    """Undo `swap_feed_forward` (a calibration that did not keep it)."""
    for name, module in replaced:
        _set_submodule(network, name, module)


def _set_submodule(network: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = network.get_submodule(parent_name) if parent_name else network
    setattr(parent, child, module)
