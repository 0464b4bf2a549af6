"""A BEIR folder: `corpus.jsonl` (`_id`, `title`, `text`), `queries[.SPLIT].jsonl` (`_id`, `text`) and
`qrels/SPLIT.tsv` (`query-id corpus-id score`, a header line). Its first stage is `--run FILE`, or
BM25 over the corpus (`bm25.py`) once the queries to evaluate are chosen.
"""

from __future__ import annotations

from pathlib import Path

from rerankd.evaluation.dataset import EvalDataset, read_jsonl, read_qrels, with_run
from rerankd.evaluation.errors import BadInput


def is_beir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").exists()


def _qrels_file(path: Path, split: str | None) -> Path:
    folder = path / "qrels"
    found = sorted(folder.glob("*.tsv")) if folder.is_dir() else []
    if not found:
        raise BadInput(f"{path} has no qrels/*.tsv (relevance judgments)")
    if split is not None:
        chosen = folder / f"{split}.tsv"
        if not chosen.exists():
            raise BadInput(f"{path} has no qrels/{split}.tsv (it has {', '.join(p.stem for p in found)})")
        return chosen
    if len(found) == 1:
        return found[0]
    if (folder / "test.tsv").exists():
        return folder / "test.tsv"
    raise BadInput(f"{path} has several qrels ({', '.join(p.stem for p in found)}): choose one with --split")


def _queries_file(path: Path, split: str) -> Path:
    for name in (f"queries.{split}.jsonl", "queries.jsonl"):
        if (path / name).exists():
            return path / name
    raise BadInput(f"{path} has neither queries.{split}.jsonl nor queries.jsonl")


def _records(path: Path, fields: tuple[str, ...]) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for number, row in read_jsonl(path):
        if "_id" not in row or not isinstance(row.get("text", ""), str):
            raise BadInput(f"{path}:{number}: expected {{'_id', {', '.join(repr(f) for f in fields)}}}")
        records[str(row["_id"])] = row
    if not records:
        raise BadInput(f"{path} is empty")
    return records


def load(path: Path, *, run: Path | None = None, split: str | None = None) -> EvalDataset:
    qrels_path = _qrels_file(path, split)
    queries = _records(_queries_file(path, qrels_path.stem), ("text",))
    corpus = _records(path / "corpus.jsonl", ("title", "text"))
    # Title and abstract together, as BEIR's rerankers read them.
    texts = {docid: f"{row.get('title') or ''} {row.get('text') or ''}".strip() for docid, row in corpus.items()}
    qrels = read_qrels(qrels_path)
    strangers = sorted({docid for judged in qrels.values() for docid in judged if docid not in texts})
    notes = []
    if strangers and len(strangers) == len({d for judged in qrels.values() for d in judged}):
        raise BadInput(
            f"mismatched ids: no document judged in {qrels_path} is in {path / 'corpus.jsonl'} "
            f"(e.g. {', '.join(strangers[:3])})"
        )
    if strangers:
        notes.append(f"{len(strangers)} judged documents are not in the corpus (e.g. {', '.join(strangers[:3])})")
    dataset = EvalDataset(
        source=path,
        first_stage="bm25",
        queries={qid: str(row.get("text", "")) for qid, row in queries.items()},
        qrels=qrels,
        texts=texts,
        notes=notes,
    )
    return with_run(dataset, run)
