"""Trainer callbacks: a progress bar that shows the loss, and early stopping that keeps the best adapter.

Early stopping is written here rather than taken from transformers' `EarlyStoppingCallback`:
that one needs `load_best_model_at_end`, which saves whole-model checkpoints to disk at every
evaluation and reloads one at the end through sentence-transformers' loader, which does not
know a PEFT model wrapped inside its Transformer module (PEFT 0.21 is below what transformers
5's own adapter integration needs). Only the LoRA weights change, so the best ones are kept in
memory (a few hundred KB) and put back when training ends.
"""

from __future__ import annotations

import math

import torch
from transformers.trainer_callback import ProgressCallback, TrainerCallback


class LossProgress(ProgressCallback):
    """transformers' progress bar, with the running loss in it instead of a printed dict per log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        if "eval_loss" in logs:
            self.training_bar.write(f"epoch {state.epoch or 0:.2f}: held-out loss {logs['eval_loss']:.4f}")


class KeepBestAdapter(TrainerCallback):
    """Remember the trainable weights at the lowest held-out loss; stop after `patience` evaluations without
    improvement; put the best weights back at the end (the initial ones count: LoRA starts as the base model)."""

    def __init__(self, model: torch.nn.Module, patience: int) -> None:
        self.model = model
        self.patience = patience
        self.best_loss = math.inf
        self.best_step: int | None = None
        self.history: list[dict[str, float]] = []
        self._best: dict[str, torch.Tensor] | None = None
        self._stale = 0

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        self.history.append({"step": state.global_step, "epoch": float(state.epoch or 0), "eval_loss": float(loss)})
        if loss < self.best_loss:
            self.best_loss, self.best_step, self._stale = float(loss), state.global_step, 0
            self._best = {
                name: parameter.detach().clone()
                for name, parameter in self.model.named_parameters()
                if parameter.requires_grad
            }
        else:
            self._stale += 1
            if self._stale >= self.patience:
                control.should_training_stop = True

    def restore(self) -> None:
        if self._best is None:
            return
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if name in self._best:
                    parameter.copy_(self._best[name])
