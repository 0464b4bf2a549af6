"""Long documents as overlapping token windows (score of a document = max over its windows).

Used when a request asks for it (`max_tokens_per_doc` / `max_chunks_per_doc`); otherwise a
document is cut to the model's limit and flagged. Every family plans its windows here, so
the two policies the references use differ only in two parameters of one loop:

* consecutive windows (cross-encoders, LLM rerankers, ColBERT): windows of `window` tokens
  stepping by `window - overlap`; the last one stops at the document's end and may be short;
* end-aligned (jina-reranker-v2's `rerank()`): the same steps, but the last window is moved
  back so that it is a full window ending at the document's end.

Consecutive windows overlap by min(`max_overlap`, window // 4) tokens in both policies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Tokens shared by consecutive windows, so a passage cut at a window edge is whole in one.
MAX_OVERLAP = 64


@dataclass(frozen=True)
class ChunkPlan:
    """Per document: the (start, end) token spans to score, and whether text was left out."""

    spans: list[list[tuple[int, int]]]
    truncated: np.ndarray

    @property
    def unit_item(self) -> np.ndarray:
        """The document each span (unit, in order) belongs to."""
        counts = np.fromiter((len(s) for s in self.spans), dtype=np.int64, count=len(self.spans))
        return np.repeat(np.arange(len(self.spans)), counts)


def overlap_for(window: int, max_overlap: int = MAX_OVERLAP) -> int:
    return min(max_overlap, window // 4)


def window_spans(
    length: int,
    window: int,
    max_chunks: int | None,
    *,
    max_overlap: int = MAX_OVERLAP,
    align_end: bool = False,
) -> tuple[list[tuple[int, int]], bool]:
    """Spans of `window` tokens stepping by `window - overlap`; (spans, text left out?).

    At most `max_chunks` spans (at least one); text after the last of them is left out.
    `align_end` makes the last span `(length - window, length)` instead of `(start, length)`.
    """
    if window < 1:
        raise ValueError("window must hold at least one token")
    if length <= window:
        return [(0, length)], False
    stride = window - overlap_for(window, max_overlap)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + window
        if end >= length:
            spans.append((length - window if align_end else start, length))
            return spans, False
        spans.append((start, end))
        if max_chunks is not None and len(spans) >= max_chunks:
            return spans, True
        start += stride


def tokens_to_plan(window: int, max_chunks: int | None, max_overlap: int = MAX_OVERLAP) -> int | None:
    """Document length past which the plan no longer changes (None: every token counts).

    With `max_chunks`, a longer document gets the same `max_chunks` full windows and is
    flagged as cut whatever its length, so only that many of its tokens need tokenizing.
    """
    if max_chunks is None:
        return None
    return (max_chunks - 1) * (window - overlap_for(window, max_overlap)) + window


def plan_chunks(
    doc_lengths: Sequence[int],
    window: int | Sequence[int],
    max_chunks: int | None,
    *,
    max_overlap: int = MAX_OVERLAP,
    align_end: bool = False,
) -> ChunkPlan:
    """Windows of every document of a request; `window` is one size for all, or one per document."""
    windows = [window] * len(doc_lengths) if isinstance(window, int) else list(window)
    if len(windows) != len(doc_lengths):
        raise ValueError(f"{len(windows)} window sizes for {len(doc_lengths)} documents")
    spans: list[list[tuple[int, int]]] = []
    truncated = np.zeros(len(doc_lengths), dtype=bool)
    for index, (length, size) in enumerate(zip(doc_lengths, windows, strict=True)):
        doc_spans, cut = window_spans(length, size, max_chunks, max_overlap=max_overlap, align_end=align_end)
        spans.append(doc_spans)
        truncated[index] = cut
    return ChunkPlan(spans, truncated)
