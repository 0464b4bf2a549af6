"""A TREC folder laid out like `../shared/data/trec-dl-2019`.

* `retrieve_results_*.json`: `[{"query", "hits": [{"qid", "docid", "content", "rank"?, "score"?}]}]`,
  the first stage with its passages' texts (pyserini's layout);
* `qrels.*.txt`: `qid iter docid grade`;
* `topics.*.txt` (optional): `qid<TAB>query`;
* `run.NAME.*.trec` (optional): the same first stage as a run file; it only names it (`NAME`).
"""

from __future__ import annotations

import json
from pathlib import Path

from rerankd.evaluation.dataset import EvalDataset, Run, read_qrels, read_text, run_name, with_run
from rerankd.evaluation.errors import BadInput


def is_trec(path: Path) -> bool:
    return path.is_dir() and any(path.glob("retrieve_results_*.json"))


def _one(path: Path, pattern: str, what: str, *, required: bool = True) -> Path | None:
    found = sorted(path.glob(pattern))
    if not found:
        if required:
            raise BadInput(f"{path} has no {pattern} ({what})")
        return None
    if len(found) > 1:
        raise BadInput(f"{path} has several {pattern} ({', '.join(p.name for p in found)}): keep one {what}")
    return found[0]


def _hits(path: Path) -> tuple[dict[str, str], Run, dict[str, str]]:
    """(query texts, first stage, passage texts) from a `retrieve_results_*.json`."""
    try:
        rows = json.loads(read_text(path))
    except ValueError as error:
        raise BadInput(f"{path} is not JSON ({error})") from None
    if not isinstance(rows, list):
        raise BadInput(f"{path}: expected a list of {{query, hits}} objects")
    queries: dict[str, str] = {}
    run: Run = {}
    texts: dict[str, str] = {}
    for index, row in enumerate(rows):
        where = f"{path}: entry {index}"
        if not isinstance(row, dict) or not isinstance(row.get("query"), str) or not isinstance(row.get("hits"), list):
            raise BadInput(f"{where}: expected {{'query': text, 'hits': [...]}}")
        hits = row["hits"]
        if not hits:
            continue  # a query without candidates: its qid is unknown (it is in the hits)
        ranked: list[tuple[str, float]] = []
        qids = set()
        for position, hit in enumerate(hits):
            if not isinstance(hit, dict) or not all(key in hit for key in ("qid", "docid", "content")):
                raise BadInput(f"{where}, hit {position}: expected 'qid', 'docid' and 'content'")
            qids.add(str(hit["qid"]))
            docid = str(hit["docid"])
            texts[docid] = str(hit["content"])
            # The run's own score when it has one; else its rank, so that its order is kept exactly.
            score = hit.get("score")
            rank = hit.get("rank", position + 1)
            try:
                ranked.append((docid, float(score) if score is not None else -float(rank)))
            except (TypeError, ValueError):
                raise BadInput(f"{where}, hit {position}: score {score!r} / rank {rank!r} is not a number") from None
        if len(qids) != 1:
            raise BadInput(f"{where}: its hits name several query ids ({', '.join(sorted(qids))})")
        qid = qids.pop()
        if qid in run:
            raise BadInput(f"{where}: query id {qid} appears twice")
        queries[qid] = row["query"]
        run[qid] = ranked
    if not run:
        raise BadInput(f"the first stage in {path} is empty: it ranks no document")
    return queries, run, texts


def _topics(path: Path) -> dict[str, str]:
    topics: dict[str, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep:
            raise BadInput(f"{path}:{number}: expected 'qid<TAB>query'")
        topics[qid.strip()] = text.strip()
    return topics


def load(path: Path, *, run: Path | None = None, split: str | None = None) -> EvalDataset:
    if split is not None:
        raise BadInput("--split applies to BEIR folders; a TREC folder holds one set of qrels")
    results = _one(path, "retrieve_results_*.json", "first-stage results with passage texts")
    qrels_path = _one(path, "qrels.*.txt", "relevance judgments")
    topics_path = _one(path, "topics.*.txt", "query texts", required=False)
    queries, hits, texts = _hits(results)
    if topics_path is not None:
        queries = {**_topics(topics_path), **queries}
    named = _one(path, "run.*.trec", "run file", required=False)
    dataset = EvalDataset(
        source=path,
        first_stage=run_name(named, set()) if named is not None else "first-stage",
        queries=queries,
        qrels=read_qrels(qrels_path),
        texts=texts,
        run=hits,
    )
    return with_run(dataset, run)
