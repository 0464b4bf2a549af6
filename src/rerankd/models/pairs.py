"""(query, document) pairs as a cross-encoder reads them: whole, or one unit per window.

Cross-encoders and jina-reranker-v2 differ only in how much of each text they keep and where
they cut windows; turning those decisions into token sequences and a `Prepared` is shared here
(`PairFamily.prepare`), and each family states its decisions through a few hooks.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from rerankd.core.types import ScoreOptions
from rerankd.models.base import Family, Prepared
from rerankd.models.catalog import ModelSpec
from rerankd.models.chunking import MAX_OVERLAP, ChunkPlan, plan_chunks, tokens_to_plan
from rerankd.models.runtime import Placement
from rerankd.models.tokenization import (
    LoadedTokenizer,
    PairTemplate,
    encode_texts,
    longest_first_lengths,
    probe_pair_template,
)


def assemble_pairs(
    template: PairTemplate,
    query_ids: list[int],
    documents: list[list[int]],
    doc_lengths: np.ndarray,
    kept_query: np.ndarray,
    kept_docs: np.ndarray,
    *,
    segment_ids: bool,
) -> Prepared:
    """One pair per document: the first `kept_query[i]` query tokens next to `kept_docs[i]` of document i."""
    ids: list[list[int]] = []
    type_ids: list[list[int]] = []
    for document, q_len, d_len in zip(documents, kept_query.tolist(), kept_docs.tolist(), strict=True):
        pair_ids, pair_types = template.assemble(query_ids[:q_len], document[:d_len])
        ids.append(pair_ids)
        type_ids.append(pair_types)
    return Prepared(
        ids=ids,
        token_tags=type_ids if segment_ids else None,
        lengths=kept_query + kept_docs + template.num_special,
        n_items=len(documents),
        truncated=(kept_docs < doc_lengths) | (kept_query < len(query_ids)),
        content_tokens=int(kept_query.sum() + kept_docs.sum()),
    )


def assemble_windows(
    template: PairTemplate,
    query_ids: list[int],
    query: list[int],
    documents: list[list[int]],
    plan: ChunkPlan,
    *,
    segment_ids: bool,
) -> Prepared:
    """One pair per window of `plan`, each with the (possibly shortened) `query` of `query_ids`."""
    ids: list[list[int]] = []
    type_ids: list[list[int]] = []
    for document, spans in zip(documents, plan.spans, strict=True):
        for start, end in spans:
            pair_ids, pair_types = template.assemble(query, document[start:end])
            ids.append(pair_ids)
            type_ids.append(pair_types)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    return Prepared(
        ids=ids,
        token_tags=type_ids if segment_ids else None,
        lengths=lengths,
        n_items=len(documents),
        truncated=plan.truncated | (len(query) < len(query_ids)),
        content_tokens=int(lengths.sum()) - len(ids) * template.num_special,
        unit_item=plan.unit_item,
    )


class PairFamily(Family):
    """A family that scores `template(query, document)` pairs with one output row per pair.

    Plain requests keep what `pair_lengths` allows of each pair; chunked requests pair
    `window_query_length` query tokens with each window of each document, windows planned
    with `window_overlap` and `align_last_window` (see `chunking.py`).
    """

    # Windows' policy: consecutive windows (the last may be short) unless a family's reference
    # aligns the last one to the document's end.
    align_last_window: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, placement: Placement, loaded: LoadedTokenizer) -> None:
        super().__init__(spec, placement)
        self.tokenizer = loaded.tokenizer
        self.pad_id = loaded.pad_id
        self.template = probe_pair_template(self.tokenizer)
        # Send the template's token-type ids to the network (BERT-style segments)?
        self.segment_ids = False
        # Most tokens consecutive windows share (jina's catalog entry sets rerank()'s overlap_tokens).
        self.window_overlap = MAX_OVERLAP

    def pair_lengths(self, query_len: int, doc_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kept (query, document) lengths of each whole pair; default `longest_first`."""
        return longest_first_lengths(query_len, doc_lengths, self.max_length - self.template.num_special)

    @abstractmethod
    def window_query_length(self) -> int:
        """Query tokens kept next to every window of a chunked request."""

    def prepare(self, query: str, texts: list[str], instruction: str | None, options: ScoreOptions) -> Prepared:
        self.check_instruction(instruction)
        budget = self.max_length - self.template.num_special
        if options.max_tokens_per_doc is not None or options.max_chunks_per_doc is not None:
            # Only the query's first `window_query_length` tokens and each document's planned windows count.
            query_ids = encode_texts(self.tokenizer, [query], self.window_query_length())[0]
            window = self._window(len(query_ids), options)
            needed = tokens_to_plan(window, options.max_chunks_per_doc, self.window_overlap)
            documents = encode_texts(self.tokenizer, texts, needed)
            prepared = self._prepare_windows(query_ids, documents, options)
        else:
            query_ids = encode_texts(self.tokenizer, [query])[0]
            # Past `budget + query` tokens a document's length changes nothing `pair_lengths` decides.
            documents = encode_texts(self.tokenizer, texts, budget + len(query_ids))
            doc_lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
            kept_query, kept_docs = self.pair_lengths(len(query_ids), doc_lengths)
            prepared = assemble_pairs(
                self.template, query_ids, documents, doc_lengths, kept_query, kept_docs, segment_ids=self.segment_ids
            )
        self.check_truncation(options, prepared.truncated)
        return prepared

    def _window(self, query_len: int, options: ScoreOptions) -> int:
        """Tokens of document in each window, next to the shortened query."""
        window = self.max_length - self.template.num_special - min(query_len, self.window_query_length())
        if options.max_tokens_per_doc is not None:
            window = min(window, options.max_tokens_per_doc)
        return window

    def _prepare_windows(self, query_ids: list[int], documents: list[list[int]], options: ScoreOptions) -> Prepared:
        """The shortened query next to each window of each document; windows fill the rest."""
        query = query_ids[: self.window_query_length()]
        window = self._window(len(query_ids), options)
        plan = plan_chunks(
            [len(d) for d in documents],
            window,
            options.max_chunks_per_doc,
            max_overlap=self.window_overlap,
            align_end=self.align_last_window,
        )
        return assemble_windows(self.template, query_ids, query, documents, plan, segment_ids=self.segment_ids)
