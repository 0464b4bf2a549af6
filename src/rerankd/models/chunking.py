"""Long documents as overlapping token windows (score of a document = max over its windows).

Used when a request asks for it (`max_tokens_per_doc` / `max_chunks_per_doc`); otherwise a
document is truncated to the model's limit and flagged.
"""

from __future__ import annotations

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
        counts = np.fromiter((len(s) for s in self.spans), dtype=np.int64, count=len(self.spans))
        return np.repeat(np.arange(len(self.spans)), counts)


def overlap_for(window: int) -> int:
    return min(MAX_OVERLAP, window // 4)


def window_spans(length: int, window: int, max_chunks: int | None) -> tuple[list[tuple[int, int]], bool]:
    """Spans of `window` tokens stepping by `window - overlap`; (spans, text left out?)."""
    if window < 1:
        raise ValueError("window must hold at least one token")
    if length <= window:
        return [(0, length)], False
    stride = window - overlap_for(window)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + window, length)
        spans.append((start, end))
        if end >= length or (max_chunks is not None and len(spans) >= max_chunks):
            return spans, end < length
        start += stride


def plan_chunks(doc_lengths: list[int], window: int, max_chunks: int | None) -> ChunkPlan:
    spans: list[list[tuple[int, int]]] = []
    truncated = np.zeros(len(doc_lengths), dtype=bool)
    for index, length in enumerate(doc_lengths):
        doc_spans, cut = window_spans(length, window, max_chunks)
        spans.append(doc_spans)
        truncated[index] = cut
    return ChunkPlan(spans, truncated)
