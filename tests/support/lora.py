"""LoRA adapters built with PEFT itself, and their merged reference models.

PEFT initialises every `lora_B` to zero, so a fresh adapter changes nothing and a test
comparing adapter scores to the base could not fail; these adapters get seeded random B
matrices (and, optionally, a perturbed copy of the classification head that PEFT saves in
full for sequence classification). The reference is PEFT's own `merge_and_unload()` model,
scored by sentence-transformers: nothing of rerankd is involved.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rerankd.bench.checkpoints import save_checkpoint


def _peft_model(base_dir: Path, *, seed: int, rank: int, targets: tuple[str, ...], **options):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(str(base_dir))
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=2 * rank, target_modules=list(targets), **options
    )
    model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


def build_lora_adapter(
    base_dir: Path,
    target: Path,
    *,
    seed: int,
    rank: int = 4,
    targets: tuple[str, ...] = ("query", "value"),
    perturb_head: bool = False,
    **options,
) -> tuple[Path, Path]:
    """(adapter directory, merged reference model directory) for a seeded LoRA on `base_dir`."""
    model = _peft_model(base_dir, seed=seed, rank=rank, targets=targets, **options)
    if perturb_head:
        generator = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "modules_to_save" in name:
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    adapter_dir = target / "adapter"
    model.save_pretrained(str(adapter_dir))
    # the merged reference is loaded by sentence-transformers: it needs the base's tokenizer files
    merged_dir = save_checkpoint(model.merge_and_unload(), target / "merged", base_dir)
    return adapter_dir, merged_dir
