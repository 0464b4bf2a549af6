"""The Family interface: how a request's texts become token sequences, and outputs become scores.

The engine only knows this interface. A family splits its work in three parts that run in
three different places:

* `prepare` (tokenizer thread pool): texts -> `Prepared` token sequences ("units");
* `collate` + `forward` (the device's compute thread): a batch of units -> one output row each;
* `scores` (after all of a request's units ran): output rows -> one score per item.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from rerankd.core.errors import InputTooLong, InstructionNotSupported
from rerankd.core.types import ScoreOptions

if TYPE_CHECKING:
    from rerankd.models.catalog import ModelSpec
    from rerankd.models.runtime import Placement


def right_pad(rows: list[list[int]], fill: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of different lengths as one right-padded int64 matrix, and its mask of real tokens.

    Copies the tokens in one pass of C code (no per-row Python work on the compute thread).
    """
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    mask = np.arange(int(lengths.max()))[None, :] < lengths[:, None]
    matrix = np.full(mask.shape, fill, dtype=np.int64)
    matrix[mask] = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return matrix, mask


@dataclass
class Prepared:
    """A request as the network will read it.

    `ids[u]` is unit `u`'s token ids. Units are what batches are made of: a (query, document)
    pair for a cross-encoder, one text for a bi-encoder, one window of a chunked document.
    `token_tags[u]`, when a family needs it, is one integer per token that only the family's own
    `collate` reads: segment ids for BERT-style encoders, attend/keep flags for ColBERT.
    """

    ids: list[list[int]]
    token_tags: list[list[int]] | None
    lengths: np.ndarray
    n_items: int
    truncated: np.ndarray
    content_tokens: int
    # Item scored by each unit when documents are chunked (max over a document's windows);
    # None when unit i scores item i.
    unit_item: np.ndarray | None = None
    # Leading units that encode the query (bi-encoders and late interaction), not an item,
    # and how many of `content_tokens` are the query's in them.
    n_query_units: int = 0
    query_content_tokens: int = 0
    # Tokens each unit costs the network when that is less than its length (a prompt prefix
    # that a batch computes once); the scheduler budgets and sorts by it. None: `lengths`.
    cost_lengths: np.ndarray | None = None
    # Units of requests with different keys never share a batch (e.g. a shared prompt prefix
    # whose KV cache a batch reuses); None mixes freely with other None-keyed requests.
    batch_key: object = None

    @property
    def n_units(self) -> int:
        return len(self.ids)

    @property
    def input_tokens(self) -> int:
        return int(self.lengths.sum())


class Family(ABC):
    """One way of turning (query, texts) into relevance scores with a loaded network."""

    kind: ClassVar[str]
    accepts_instruction: ClassVar[bool] = False
    # LoRA adapters (models/lora.py) hook the network's linear layers and switch per batch. A
    # family that keeps weight-derived state across batches (e.g. a prefix KV cache keyed by
    # tokens only) must set False, or key that state by the active adapter: an adapter batch
    # would read the base's state, and the base would read the adapter's.
    supports_adapters: ClassVar[bool] = True

    def __init__(self, spec: ModelSpec, placement: Placement) -> None:
        self.spec = spec
        self.placement = placement
        self.pad_id = 0
        self.network: torch.nn.Module | None = None
        # Encoder families: the network as one function of named token tensors (models/graphs.py),
        # which a backend may compile (`compiled`); None: the family runs its network its own way.
        self.graph: torch.nn.Module | None = None
        self.compiled: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
        # How the network runs (backend, numerics, calibration): what GET /v1/models reports.
        self.execution: dict[str, Any] = {}
        # Padded tokens per batch the chosen numerics runs best at; None: the device's default.
        # `--max-batch-tokens` overrides it (engine/scheduler.py).
        self.batch_tokens: int | None = None
        self._eager = False

    @property
    @abstractmethod
    def max_length(self) -> int:
        """Longest token sequence the network reads (template included)."""

    @abstractmethod
    def prepare(self, query: str, texts: list[str], instruction: str | None, options: ScoreOptions) -> Prepared:
        """Tokenize; runs in the tokenizer pool, never on the event loop or compute thread."""

    @abstractmethod
    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """One output row per unit, float32 on CPU; runs on the compute thread.

        A tensor of shape (units, ...) when every unit's output has the same shape; a list of
        tensors (one per unit) when they differ, e.g. per-token embeddings for late interaction.
        """

    @abstractmethod
    def scores(self, prepared: Prepared, outputs: np.ndarray | list[np.ndarray], raw: bool) -> np.ndarray:
        """One float score per item from the outputs of all of a request's units (in unit order)."""

    @abstractmethod
    def parameters_bytes(self) -> int:
        """Memory held by the weights, for the registry's budget."""

    def check_instruction(self, instruction: str | None) -> None:
        """Reject an instruction the family would otherwise ignore silently."""
        if instruction is not None and not self.accepts_instruction:
            raise InstructionNotSupported(
                f"model '{self.spec.name}' ({self.kind}) does not take an instruction",
                param="instruction",
            )

    def check_truncation(self, options: ScoreOptions, truncated: np.ndarray) -> None:
        """With `truncate: false`, an over-long item is the client's error, not silently cut."""
        if not options.truncate and truncated.any():
            index = int(np.flatnonzero(truncated)[0])
            raise InputTooLong(
                f"item {index} does not fit the model's {self.max_length}-token limit and truncation is off",
                extra={"index": index, "max_tokens": self.max_length},
            )

    def collate(self, ids: list[list[int]], token_tags: list[list[int]] | None) -> dict[str, torch.Tensor]:
        """Right-pad a batch of units into tensors on the model's device."""
        input_ids, mask = right_pad(ids, self.pad_id)
        device = self.placement.device
        batch = {
            "input_ids": torch.from_numpy(input_ids).to(device),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)).to(device),
        }
        if token_tags is not None:
            types, _ = right_pad(token_tags, 0)
            batch["token_type_ids"] = torch.from_numpy(types).to(device)
        return batch

    def run_graph(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The graph's output for a batch: compiled when a backend compiled it, else eager torch."""
        if self.compiled is not None and not self._eager:
            return self.compiled(inputs)
        assert self.graph is not None
        return self.graph(**inputs)

    @contextmanager
    def eager(self) -> Iterator[None]:
        """Run the torch network itself meanwhile (LoRA adapters hook torch modules, not compiled ones).

        Only the compute thread runs a family's forward passes, one at a time, so the switch
        can never leak into another batch.
        """
        self._eager = True
        try:
            yield
        finally:
            self._eager = False

    def close(self) -> None:
        """Drop references to weights so their memory can be reclaimed."""
        self.network = None
        self.graph = None
        self.compiled = None


def max_over_units(unit_scores: np.ndarray, unit_item: np.ndarray | None, n_items: int) -> np.ndarray:
    """Score of each item = max over the units (windows) that belong to it."""
    if unit_item is None:
        return unit_scores
    best = np.full(n_items, -np.inf, dtype=np.float64)
    np.maximum.at(best, unit_item, unit_scores)
    return best


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    positive = values >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-values[positive]))
    exp = np.exp(values[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out
