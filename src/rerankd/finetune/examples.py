"""Training queries: each with its relevant documents and hard negatives from the first stage.

Hard negatives are the first stage's highest-ranked candidates that are not judged relevant
(grade below `relevance_level`, or unjudged): documents the first stage confuses with relevant
ones, which is what a reranker must learn to push down. Relevant documents are the judged ones
whose text the dataset has (a TREC folder only has the texts of the run's candidates).
"""

from __future__ import annotations

from dataclasses import dataclass

from rerankd.evaluation.dataset import EvalDataset
from rerankd.evaluation.errors import BadInput


@dataclass(frozen=True)
class TrainingQuery:
    qid: str
    query: str
    positives: list[tuple[str, int]]  # (text, grade), best grade first
    negatives: list[str]  # hard negatives, first-stage order


def training_queries(
    dataset: EvalDataset, qids: list[str], *, positives: int, negatives: int, relevance_level: int = 1
) -> list[TrainingQuery]:
    """The queries of `qids` that have a relevant text and a hard negative (others cannot teach a ranking)."""
    assert dataset.run is not None
    found = []
    for qid in qids:
        judged = dataset.qrels.get(qid, {})
        ranks = {docid: rank for rank, (docid, _) in enumerate(dataset.run.get(qid, []))}
        relevant = sorted(
            (docid for docid, grade in judged.items() if grade >= relevance_level and docid in dataset.texts),
            key=lambda docid: (-judged[docid], ranks.get(docid, len(ranks)), docid),
        )[:positives]
        hard = [
            dataset.texts[docid]
            for docid, _ in dataset.run.get(qid, [])
            if judged.get(docid, 0) < relevance_level and docid in dataset.texts
        ][:negatives]
        if relevant and hard:
            found.append(
                TrainingQuery(qid, dataset.queries[qid], [(dataset.texts[d], judged[d]) for d in relevant], hard)
            )
    return found


def require(queries: list[TrainingQuery], what: str, asked: int) -> list[TrainingQuery]:
    if not queries:
        raise BadInput(
            f"none of the {asked} {what} queries has both a relevant document with a text and a hard negative "
            f"in the first stage: nothing to train on"
        )
    return queries
