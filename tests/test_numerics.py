"""CPU precision: fp32 by default; `--dtype bfloat16` keeps rankings faithful to fp32.

The bound (issue 4): on the benchmark data, Kendall tau >= 0.99 per query against fp32 and
|score change| <= 0.01. CI checks the first 12 TREC DL 2019 queries; `-m slow` checks all 43.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    Qwen3Config,
    Qwen3ForCausalLM,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from rerankd.api.service import Service
from rerankd.core.types import Item, ScoreRequest
from rerankd.models.precision import HalfLinear, half_feed_forward
from rerankd.models.runtime import resolve_placement
from rerankd.registry.registry import RegistrySettings

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def test_cpu_default_is_fp32_and_bfloat16_means_bf16_feed_forward():
    cpu = torch.device("cpu")
    assert resolve_placement("auto", cpu).dtype == torch.float32
    assert resolve_placement("auto", cpu).feed_forward_dtype is None
    mixed = resolve_placement("bfloat16", cpu)
    assert (mixed.dtype, mixed.feed_forward_dtype) == (torch.float32, torch.bfloat16)
    assert mixed.dtype_name == "float32+bfloat16-feed-forward"
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_placement("float8", cpu)


@pytest.mark.parametrize(
    ("model", "per_layer"),
    [
        (BertForSequenceClassification(BertConfig(vocab_size=100, **SMALL)), 2),
        (XLMRobertaForSequenceClassification(XLMRobertaConfig(vocab_size=100, **SMALL)), 2),
        (DebertaV2ForSequenceClassification(DebertaV2Config(vocab_size=100, **SMALL)), 2),
        (
            ModernBertForSequenceClassification(
                ModernBertConfig(vocab_size=100, global_attn_every_n_layers=1, pad_token_id=0, **SMALL)
            ),
            2,
        ),
        (Qwen3ForCausalLM(Qwen3Config(vocab_size=100, num_key_value_heads=1, head_dim=16, **SMALL)), 3),
    ],
    ids=["bert", "xlm-roberta", "deberta-v2", "modernbert", "qwen3"],
)
def test_feed_forward_layers_of_every_architecture_go_bf16_and_nothing_else(model, per_layer):
    model.eval()
    inputs = torch.tensor([[5, 6, 7, 8, 9, 3]])
    with torch.inference_mode():
        before = model(input_ids=inputs).logits.float()
    swapped = half_feed_forward(model, torch.bfloat16)
    assert swapped == per_layer * SMALL["num_hidden_layers"]
    for name, module in model.named_modules():
        if isinstance(module, HalfLinear):
            assert module.weight.dtype == torch.bfloat16
            assert "attn" not in name and "attention" not in name
        elif isinstance(module, torch.nn.Linear):
            assert module.weight.dtype == torch.float32, name
    with torch.inference_mode():
        after = model(input_ids=inputs).logits
    assert after.dtype == torch.float32
    assert torch.allclose(before, after, atol=0.05) and not torch.equal(before, after)


async def _scores(model_dir, dtype: str, queries) -> list[np.ndarray]:
    service = Service.create(RegistrySettings(dtype=dtype))
    service.registry.register("m", str(model_dir))
    engine = service.engine
    try:
        await service.registry.load("m")
        results = []
        for query in queries:
            result = await engine.score(
                ScoreRequest(model="m", query=Item(text=query.query), items=[Item(text=d) for d in query.documents])
            )
            scores = np.empty(len(result.entries))
            for entry in result.entries:
                scores[entry.index] = entry.score
            results.append(scores)
        return results
    finally:
        await service.close()


def _check_faithful(model_dir, queries) -> None:
    reference = asyncio.run(_scores(model_dir, "float32", queries))
    mixed = asyncio.run(_scores(model_dir, "bfloat16", queries))
    taus = [kendalltau(a, b).statistic for a, b in zip(reference, mixed, strict=True)]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(reference, mixed, strict=True))
    assert min(taus) >= 0.99, taus
    assert worst <= 0.01
    assert worst > 0  # the bf16 path really ran


def test_bfloat16_rankings_stay_faithful_on_benchmark_queries(minilm_cross_encoder_dir, trec):
    _check_faithful(minilm_cross_encoder_dir, trec[:12])


@pytest.mark.slow
def test_bfloat16_rankings_stay_faithful_on_all_benchmark_queries(minilm_cross_encoder_dir, trec):
    _check_faithful(minilm_cross_encoder_dir, trec)
