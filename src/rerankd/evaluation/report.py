"""The JSON report (`--json OUT`) and the systems' rankings as TREC run files (`--write-runs DIR`).

{"systems": {"bm25": {"ndcg_cut_10": 0.5058, ...}, "<model>": {...}},
 "queries": {"<qid>": {"query": "...", "systems": {"bm25": {"ndcg_cut_10": ...}, ...}}},
 "significance": {"tests": "...", "comparisons": [{"a", "b", "metric", "delta", "p_ttest",
                  "p_randomization", ...}]},
 "settings": {...}, "notes": [...]}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rerankd.evaluation.errors import BadInput
from rerankd.evaluation.runner import EvalReport
from rerankd.evaluation.significance import RESAMPLES, TESTS


def as_json(report: EvalReport) -> dict:
    return {
        "systems": report.systems,
        "queries": {
            qid: {
                "query": report.query_texts[qid],
                "systems": {name: values[qid] for name, values in report.per_query.items()},
            }
            for qid in report.qids
        },
        "significance": {
            "tests": TESTS,
            "resamples": RESAMPLES,
            "comparisons": [comparison.as_dict() for comparison in report.comparisons],
        },
        "settings": {"dataset": report.dataset, "first_stage": report.first_stage, "metrics": report.metrics}
        | report.settings,
        "notes": report.notes,
    }


def _writable(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot create {path.parent}: {error.strerror or error}") from None
    return path


def write_json(report: EvalReport, path: Path) -> Path:
    try:
        _writable(path).write_text(json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n")
    except OSError as error:
        raise BadInput(f"cannot write {path}: {error.strerror or error}") from None
    return path


def write_runs(report: EvalReport, folder: Path) -> list[Path]:
    """One TREC run file per system (`qid Q0 docid rank score tag`): trec_eval can check every number."""
    written = []
    for name, run in report.runs.items():
        safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "system"
        path = _writable(folder / f"{safe}.trec")
        lines = [
            f"{qid} Q0 {docid} {rank} {score:.9g} {safe}"
            for qid in report.qids
            for rank, (docid, score) in enumerate(run.get(qid, []), start=1)
        ]
        try:
            path.write_text("\n".join(lines) + "\n")
        except OSError as error:
            raise BadInput(f"cannot write {path}: {error.strerror or error}") from None
        written.append(path)
    return written
