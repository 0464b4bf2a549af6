"""What an evaluation reads, whatever the file layout: queries, judgments, a first stage, texts.

Every reader (`trec`, `beir`, `jsonl`) returns an `EvalDataset` built with the helpers here,
and `check_judgments` / `check_run` hold it to one standard, so a bad input gets the same
clear line whatever its format (`loading.prepare` runs the whole sequence).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from rerankd.evaluation.errors import BadInput

Qrels = dict[str, dict[str, int]]  # query id -> document id -> grade
Run = dict[str, list[tuple[str, float]]]  # query id -> candidates, best first: (document id, score)


@dataclass
class EvalDataset:
    """Queries with judgments, a first-stage ranking per query, and the texts to rerank.

    `run` is None until a first stage exists (a BEIR folder without `--run`: BM25 computes it
    from `corpus`, see `bm25.py`). Scores in `run` are the first stage's own: metrics are
    computed from them exactly as trec_eval would from a run file (ties broken by document id).
    """

    source: Path
    first_stage: str  # the first stage's name in reports: "bm25", a run's name, "input"
    queries: dict[str, str]  # query id -> text, every query the dataset names
    qrels: Qrels
    texts: Mapping[str, str]  # document id -> text
    run: Run | None = None
    notes: list[str] = field(default_factory=list)  # said once on stderr and kept in the JSON

    def judged(self) -> list[str]:
        """Query ids with judgments, in the dataset's order: the queries every metric averages over."""
        return [qid for qid in self.queries if qid in self.qrels]

    def select(self, qids: list[str]) -> EvalDataset:
        """Only `qids` (all judged; `read_query_ids` checks that) are evaluated."""
        keep = set(qids)
        run = None if self.run is None else {q: hits for q, hits in self.run.items() if q in keep}
        return replace(
            self,
            queries={q: t for q, t in self.queries.items() if q in keep},
            qrels={q: j for q, j in self.qrels.items() if q in keep},
            run=run,
            notes=list(self.notes),
        )

    def truncated(self, depth: int | None) -> EvalDataset:
        """Each query's first `depth` candidates (None: all)."""
        if depth is None or self.run is None:
            return self
        return replace(self, run={q: hits[:depth] for q, hits in self.run.items()}, notes=list(self.notes))


def read_text(path: Path) -> str:
    """A file's text, or `BadInput` naming it and why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"{path} is a directory, not a file") from None
    except UnicodeDecodeError as error:
        raise BadInput(f"cannot read {path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is a `BadInput`."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise BadInput(f"{path}:{number}: not JSON ({error})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def read_qrels(path: Path) -> Qrels:
    """TREC qrels (`qid iter docid grade`) or BEIR's TSV (`query-id corpus-id score`, a header line)."""
    qrels: Qrels = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if number == 1 and fields[:2] == ["query-id", "corpus-id"]:
            continue
        if len(fields) == 4:
            qid, _, docid, grade = fields
        elif len(fields) == 3:
            qid, docid, grade = fields
        else:
            raise BadInput(f"{path}:{number}: expected 'qid iter docid grade' (TREC) or 'qid docid grade' (BEIR)")
        try:
            qrels.setdefault(qid, {})[docid] = int(float(grade))
        except ValueError:
            raise BadInput(f"{path}:{number}: relevance grade {grade!r} is not a number") from None
    if not qrels:
        raise BadInput(f"{path} holds no judgments")
    return qrels


def read_run(path: Path) -> tuple[str, Run]:
    """A TREC run file (`qid Q0 docid rank score tag`): its tag and its candidates, best first."""
    run: Run = {}
    tags: set[str] = set()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise BadInput(f"{path}:{number}: expected 'qid Q0 docid rank score tag' (a TREC run)")
        qid, _, docid, _, score, tag = fields
        try:
            run.setdefault(qid, []).append((docid, float(score)))
        except ValueError:
            raise BadInput(f"{path}:{number}: score {score!r} is not a number") from None
        tags.add(tag)
    if not run:
        raise BadInput(f"the run {path} is empty: it ranks no document")
    return run_name(path, tags), run


def run_name(path: Path, tags: set[str]) -> str:
    """`run.NAME.*` names the run (Anserini's and pyserini's files); else its one tag; else the file's stem."""
    parts = path.name.split(".")
    if len(parts) > 2 and parts[0] == "run":
        return parts[1]
    if len(tags) == 1 and next(iter(tags)) not in ("rank", "Anserini", "pyserini", "run"):
        return next(iter(tags))
    return path.stem


def read_query_ids(path: Path, dataset: EvalDataset) -> list[str]:
    """The query ids listed in `path` (one per line, `#` comments), all of them judged queries of `dataset`."""
    qids: list[str] = []
    for line in read_text(path).splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            qids.append(text.split()[0])
    if not qids:
        raise BadInput(f"--queries-file {path} lists no query id")
    unknown = [qid for qid in qids if qid not in dataset.queries]
    if unknown:
        raise BadInput(
            f"--queries-file {path} names {len(unknown)} queries {dataset.source} does not have "
            f"(e.g. {', '.join(unknown[:3])})"
        )
    unjudged = [qid for qid in qids if qid not in dataset.qrels]
    if unjudged:
        raise BadInput(
            f"--queries-file {path} names {len(unjudged)} queries without judgments (e.g. {', '.join(unjudged[:3])})"
        )
    return list(dict.fromkeys(qids))


def _examples(ids: list[str]) -> str:
    return ", ".join(repr(i) for i in ids[:3])


def check_judgments(dataset: EvalDataset) -> EvalDataset:
    """The qrels judge queries the dataset has, and some at least."""
    unknown = [qid for qid in dataset.qrels if qid not in dataset.queries]
    if unknown:
        raise BadInput(
            f"the qrels name {len(unknown)} queries that {dataset.source} does not have (e.g. {_examples(unknown)}): "
            f"are they the judgments of another collection?"
        )
    if not dataset.judged():
        raise BadInput(f"no query of {dataset.source} has judgments")
    return dataset


def check_run(dataset: EvalDataset) -> EvalDataset:
    """Refuse a first stage that cannot be evaluated faithfully; note (not refuse) what trec_eval tolerates."""
    run = dataset.run
    if run is None or not any(run.values()):
        raise BadInput(f"the first stage ({dataset.first_stage}) of {dataset.source} is empty: it ranks no document")
    for qid, hits in run.items():
        docids = [docid for docid, _ in hits]
        if len(set(docids)) != len(docids):
            twice = next(docid for docid in docids if docids.count(docid) > 1)
            raise BadInput(f"the first stage ({dataset.first_stage}) ranks document {twice!r} twice for query {qid}")
        # trec_eval's order: score descending, ties by document id descending; reranking takes the top of it.
        hits.sort(key=lambda hit: (hit[1], hit[0]), reverse=True)
    strangers = [qid for qid in run if qid not in dataset.queries]
    if strangers:
        dataset.notes.append(
            f"the first stage ranks {len(strangers)} queries {dataset.source} does not have; ignored "
            f"(e.g. {_examples(strangers)})"
        )
    judged = dataset.judged()
    if not any(run.get(qid) for qid in judged):
        raise BadInput(
            f"mismatched ids: no judged query (e.g. {_examples(judged)}) has first-stage candidates "
            f"(the run's queries are e.g. {_examples(list(run))})"
        )
    ranked = {docid for qid in judged for docid, _ in run.get(qid, ())}
    assessed = {docid for qid in judged for docid in dataset.qrels[qid]}
    if not ranked & assessed:
        raise BadInput(
            f"mismatched ids: none of the {len(ranked)} documents the first stage ranks is judged in the qrels "
            f"(run ids e.g. {_examples(sorted(ranked))}, qrels ids e.g. {_examples(sorted(assessed))})"
        )
    textless = sorted(docid for docid in ranked if docid not in dataset.texts)
    if textless:
        raise BadInput(
            f"the first stage ranks {len(textless)} documents without a text in {dataset.source} "
            f"(e.g. {_examples(textless)}): a reranker needs their text"
        )
    missing = [qid for qid in judged if not run.get(qid)]
    if missing:
        dataset.notes.append(
            f"{len(missing)} judged queries have no first-stage candidates and score 0 for every system, "
            f"as with trec_eval -c (e.g. {_examples(missing)})"
        )
    return dataset


def with_run(dataset: EvalDataset, run_path: Path | None) -> EvalDataset:
    """`--run FILE` replaces the dataset's own first stage."""
    if run_path is None:
        return dataset
    name, run = read_run(run_path)
    return replace(dataset, run=run, first_stage=name)
