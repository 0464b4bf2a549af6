"""(query, document) pairs as a cross-encoder reads them: whole, or one unit per window.

Cross-encoders and jina-reranker-v2 differ only in how much of each text they keep and where
they cut windows; turning those decisions into token sequences and a `Prepared` is shared here.
"""

from __future__ import annotations

import numpy as np

from rerankd.models.base import Prepared
from rerankd.models.chunking import ChunkPlan
from rerankd.models.tokenization import PairTemplate


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
