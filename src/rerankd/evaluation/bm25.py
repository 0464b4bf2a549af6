"""The first stage of a BEIR folder given no run: BM25 over the corpus, with bm25s.

bm25s (Lucene's BM25, k1 = 1.5, b = 0.75) on its numpy path: no jax, no numba needed. Texts are
lower-cased, English stop words dropped (bm25s' own list) and stemmed with PyStemmer's Snowball
English stemmer, which ships inside the package (nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import replace

from rerankd.evaluation.dataset import EvalDataset, Run


def bm25_run(texts: dict[str, str], queries: dict[str, str], depth: int) -> Run:
    """Each query's `depth` best documents of `texts` by BM25, best first."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    doc_ids = list(texts)
    corpus_tokens = bm25s.tokenize(
        [texts[docid] for docid in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    retriever = bm25s.BM25(backend="numpy")
    retriever.index(corpus_tokens, show_progress=False)
    qids = list(queries)
    query_tokens = bm25s.tokenize([queries[qid] for qid in qids], stopwords="en", stemmer=stemmer, show_progress=False)
    found, scores = retriever.retrieve(
        query_tokens, k=min(depth, len(doc_ids)), show_progress=False, backend_selection="numpy", n_threads=1
    )
    run: Run = {}
    for row, qid in enumerate(qids):
        run[qid] = [(doc_ids[int(index)], float(score)) for index, score in zip(found[row], scores[row], strict=True)]
        # A query none of whose words is in the corpus scores 0 everywhere: it has no candidates.
        run[qid] = [hit for hit in run[qid] if hit[1] > 0]
    return run


def with_bm25(dataset: EvalDataset, depth: int) -> EvalDataset:
    """`dataset` with BM25 as its first stage, for the queries it evaluates."""
    queries = {qid: dataset.queries[qid] for qid in dataset.judged()}
    return replace(dataset, run=bm25_run(dict(dataset.texts), queries, depth), first_stage="bm25")
