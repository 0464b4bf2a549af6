"""Train a LoRA adapter with sentence-transformers' trainers and save it in PEFT's format.

* cross-encoder: `CrossEncoder` + `CrossEncoderTrainer` with `LambdaLoss` (listwise, NDCG-Loss2++
  weighting: it reads graded judgments and optimises the top of the ranking, where nDCG@10 looks),
  one list per query: its relevant documents (with their grades) and its hard negatives;
* bi-encoder: `SentenceTransformer` + `SentenceTransformerTrainer` with
  `MultipleNegativesRankingLoss` on (query, relevant, hard negatives...) rows, other queries' documents
  in the batch as more negatives (the no-duplicates batch sampler keeps a text out of its own
  query's negatives).

The LoRA (PEFT's `get_peft_model`) wraps the family's network inside sentence-transformers'
Transformer module: `AutoModelForSequenceClassification` (the classification head is trained in
full, PEFT's `modules_to_save`) or the bare `AutoModel`. Saved with PEFT's `save_pretrained`, its
keys (`base_model.model.` + the network's module paths) are what rerankd's hooks
(`models/lora.py`) attach to, and what PEFT's `PeftModel.from_pretrained` loads.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rerankd.finetune.base import BaseModel
from rerankd.finetune.examples import TrainingQuery


@dataclass(frozen=True)
class TrainOptions:
    seed: int = 0
    epochs: float = 3.0
    learning_rate: float = 2e-4
    rank: int = 8
    alpha: float | None = None  # default 2 * rank
    dropout: float = 0.1
    batch_size: int = 16
    negatives: int = 3
    max_steps: int | None = None
    max_length: int | None = None
    patience: int = 2
    device: str = "auto"
    targets: str = "all-linear"


@dataclass
class TrainResult:
    steps: int
    seconds: float
    train_rows: int
    heldout_rows: int
    trainable_parameters: int
    best_step: int | None
    best_loss: float | None
    evaluations: list[dict[str, float]] = field(default_factory=list)


def _model(base: BaseModel, options: TrainOptions):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.cross_encoder import CrossEncoder

    device = None if options.device == "auto" else options.device
    if base.family == "cross-encoder":
        return CrossEncoder(str(base.directory), device=device, local_files_only=True, max_length=options.max_length)
    model = SentenceTransformer(str(base.directory), device=device, local_files_only=True)
    if options.max_length:
        model.max_seq_length = options.max_length
    return model


def _add_lora(model, base: BaseModel, options: TrainOptions):
    """Wrap the network in a PEFT LoRA; returns the PeftModel (what is saved)."""
    from peft import LoraConfig, TaskType, get_peft_model

    cross = base.family == "cross-encoder"
    targets = options.targets if options.targets == "all-linear" else [t for t in options.targets.split(",") if t]
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if cross else TaskType.FEATURE_EXTRACTION,
        r=options.rank,
        lora_alpha=options.alpha or 2 * options.rank,
        lora_dropout=options.dropout,
        target_modules=targets,
        # A bi-encoder pools the token states itself: BERT's pooler never runs, so no LoRA there.
        exclude_modules=None if cross else ["pooler.dense"],
    )
    transformer = model[0]
    transformer.model = get_peft_model(transformer.model, config)
    return transformer.model


def _on_accelerator(options: TrainOptions) -> bool:
    import torch

    return options.device != "cpu" and torch.cuda.is_available()


def _rows(family: str, queries: list[TrainingQuery], negatives: int) -> list[dict]:
    if family == "cross-encoder":
        return [
            {
                "query": q.query,
                "docs": [text for text, _ in q.positives] + q.negatives,
                "labels": [float(grade) for _, grade in q.positives] + [0.0] * len(q.negatives),
            }
            for q in queries
        ]
    # Every row needs the same number of negatives: a query with fewer repeats its own.
    return [
        {"anchor": q.query, "positive": text}
        | {f"negative_{i + 1}": q.negatives[i % len(q.negatives)] for i in range(negatives)}
        for q in queries
        for text, _ in q.positives
    ]


def _trainer(model, base: BaseModel, options: TrainOptions, workdir: str, train, heldout, callbacks):
    common = {
        "output_dir": workdir,
        "num_train_epochs": options.epochs,
        "max_steps": options.max_steps or -1,
        "per_device_train_batch_size": options.batch_size,
        "per_device_eval_batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "warmup_steps": 0.1,
        "seed": options.seed,
        "data_seed": options.seed,
        "eval_strategy": "epoch" if heldout is not None else "no",
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "use_cpu": options.device == "cpu",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": _on_accelerator(options),
    }
    if base.family == "cross-encoder":
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
        from sentence_transformers.cross_encoder.losses import LambdaLoss

        return CrossEncoderTrainer(
            model=model,
            args=CrossEncoderTrainingArguments(**common),
            train_dataset=train,
            eval_dataset=heldout,
            loss=LambdaLoss(model, mini_batch_size=32),
            callbacks=callbacks,
        )
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    return SentenceTransformerTrainer(
        model=model,
        args=SentenceTransformerTrainingArguments(**common, batch_sampler=BatchSamplers.NO_DUPLICATES),
        train_dataset=train,
        eval_dataset=heldout,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=callbacks,
    )


def train_adapter(
    base: BaseModel,
    train: list[TrainingQuery],
    heldout: list[TrainingQuery],
    options: TrainOptions,
    out: Path,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train on `train`, stop early on `heldout`'s loss, write the best adapter to `out`."""
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback, set_seed

    from rerankd.finetune.callbacks import KeepBestAdapter, LossProgress

    set_seed(options.seed)  # LoRA's A matrices are drawn at random when the adapter is added
    model = _model(base, options)
    network = _add_lora(model, base, options)
    train_rows = _rows(base.family, train, options.negatives)
    heldout_rows = _rows(base.family, heldout, options.negatives) if heldout else []
    keep_best = KeepBestAdapter(network, options.patience)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rerankd-finetune-") as workdir:
        trainer = _trainer(
            model,
            base,
            options,
            workdir,
            Dataset.from_list(train_rows),
            Dataset.from_list(heldout_rows) if heldout_rows else None,
            [keep_best],
        )
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        if progress:
            trainer.add_callback(LossProgress)
        if heldout_rows:
            trainer.evaluate()  # the untrained adapter (the base model itself) is a candidate too
        trainer.train()
        keep_best.restore()
        steps = trainer.state.global_step
    out.mkdir(parents=True, exist_ok=True)
    network.save_pretrained(str(out))
    return TrainResult(
        steps=steps,
        seconds=time.monotonic() - began,
        train_rows=len(train_rows),
        heldout_rows=len(heldout_rows),
        trainable_parameters=sum(p.numel() for p in network.parameters() if p.requires_grad),
        best_step=keep_best.best_step,
        best_loss=keep_best.best_loss if keep_best.best_step is not None else None,
        evaluations=keep_best.history,
    )
