"""`rerankd eval`: trec_eval's numbers on TREC DL 2019 and SciFact, in-process and through a server alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.data import SHARED_DATA
from support.eval_data import run_cli, write_jsonl, write_trec_folder
from support.reference import bi_encoder_scores

from rerankd.bench.server import free_port

TREC_DIR = SHARED_DATA / "trec-dl-2019"
SCIFACT_DIR = SHARED_DATA / "scifact"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# Three TREC DL 2019 queries for the short forms: reranking them costs a few seconds.
FEW_QUERIES = ("1037798", "104861", "1063750")


@pytest.fixture(scope="module")
def trec_dir() -> Path:
    if not TREC_DIR.exists():
        pytest.skip(f"{TREC_DIR} is absent (a fresh clone has no ../shared/data)")
    return TREC_DIR


@pytest.fixture(scope="module")
def few_queries(tmp_path_factory: pytest.TempPathFactory, trec_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("queries") / "few.txt"
    path.write_text("# three judged queries\n" + "\n".join(FEW_QUERIES) + "\n")
    return path


def read_run(path: Path) -> dict[str, list[str]]:
    ranked: dict[str, list[tuple[float, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        ranked.setdefault(qid, []).append((float(score), docid))
    # trec_eval's order: score descending, ties by document id descending
    return {qid: [d for _, d in sorted(hits, reverse=True)] for qid, hits in ranked.items()}


def test_bm25_first_stage_reproduces_trec_eval(capsys, tmp_path, trec_dir):
    out = tmp_path / "bm25.json"
    code, stdout, stderr = run_cli(
        capsys,
        *("eval", "--dataset", trec_dir, "--json", out, "--markdown", tmp_path / "bm25.md"),
        *("--plot", tmp_path / "bm25.png", "--write-runs", tmp_path / "runs"),
    )
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert list(report["systems"]) == ["bm25"]  # named after the folder's run.bm25.*.trec
    bm25 = report["systems"]["bm25"]
    assert round(bm25["ndcg_cut_10"], 4) == 0.5058  # trec_eval's published BM25 top-100 number
    assert len(report["queries"]) == 43
    assert set(bm25) == {"ndcg_cut_10", "recip_rank_10", "map", "recall_10", "recall_100"}
    # the first stage is evaluated as the run file ranks it (same documents, same order)
    assert read_run(tmp_path / "runs" / "bm25.trec") == read_run(trec_dir / "run.bm25.dl19.top100.trec")
    assert "| bm25 | 0.5058 |" in stdout
    assert "| bm25 | 0.5058 |" in (tmp_path / "bm25.md").read_text()
    assert (tmp_path / "bm25.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --run with the same first stage as a TREC run file: the same numbers
    code, _, stderr = run_cli(
        capsys, "eval", "--dataset", trec_dir, "--run", trec_dir / "run.bm25.dl19.top100.trec", "--json", out
    )
    assert code == 0, stderr
    assert json.loads(out.read_text())["systems"]["bm25"] == bm25
    # trec_eval -l 2 (TREC DL's binary relevance) changes the binary measures, not nDCG
    code, _, _ = run_cli(capsys, "eval", "--dataset", trec_dir, "--relevance-level", "2", "--json", out)
    strict = json.loads(out.read_text())["systems"]["bm25"]
    assert strict["ndcg_cut_10"] == bm25["ndcg_cut_10"]
    assert strict["map"] < bm25["map"]


def test_listed_order_and_score_ties_follow_trec_eval(capsys, tmp_path):
    """No scores: the listed order is the ranking. Equal scores: trec_eval's order (document id, descending)."""
    data = write_jsonl(
        tmp_path / "judged.jsonl",
        [
            {"id": "q1", "query": "cats", "documents": ["dogs bark", "cats purr"], "labels": [0, 1]},
            {
                "id": "q2",
                "query": "cats",
                "documents": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}],
                "labels": [0, 1],
                "scores": [3.0, 3.0],
            },
        ],
    )
    out = tmp_path / "out.json"
    code, _, stderr = run_cli(capsys, "eval", "--dataset", data, "--json", out, "--metrics", "ndcg_cut_10,RR@10")
    assert code == 0, stderr
    queries = json.loads(out.read_text())["queries"]
    assert queries["q1"]["systems"]["input"]["ndcg_cut_10"] == pytest.approx(1 / np.log2(3))
    assert queries["q1"]["systems"]["input"]["recip_rank_10"] == pytest.approx(0.5)
    assert queries["q2"]["systems"]["input"]["ndcg_cut_10"] == pytest.approx(1.0)  # "b" > "a" breaks the tie


def test_scifact_bm25_first_stage_with_bm25s(capsys, tmp_path):
    if not SCIFACT_DIR.exists():
        pytest.skip(f"{SCIFACT_DIR} is absent")
    out = tmp_path / "scifact.json"
    code, _, stderr = run_cli(capsys, "eval", "--dataset", SCIFACT_DIR, "--json", out, "--write-runs", tmp_path)
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert len(report["queries"]) == 300
    # bm25s (Lucene BM25, Snowball stemming, English stop words) over title + abstract: bm25s reports 0.686
    assert report["systems"]["bm25"]["ndcg_cut_10"] == pytest.approx(0.6863, abs=5e-4)
    depths = {len(hits) for hits in read_run(tmp_path / "bm25.trec").values()}
    assert max(depths) == 100


def test_in_process_and_server_give_identical_numbers(capsys, tmp_path, trec_dir, few_queries, server):
    """The CI form: three queries' BM25 top 30 reranked by all-MiniLM-L6-v2 in-process and through a server."""
    common = ("eval", "--dataset", trec_dir, "--queries-file", few_queries, "--depth", 30, "--model", MINILM)
    common += ("--no-progress",)
    code, _, stderr = run_cli(capsys, *common, "--json", tmp_path / "local.json")
    assert code == 0, stderr
    code, _, stderr = run_cli(capsys, *common, "--url", server.url, "--json", tmp_path / "server.json")
    assert code == 0, stderr
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "server.json").read_text())
    assert sorted(local["queries"]) == sorted(FEW_QUERIES)
    assert local["queries"] == remote["queries"]
    assert local["systems"] == remote["systems"]
    assert local["settings"]["scored_by"] == "in-process"
    assert remote["settings"]["scored_by"] == server.url
    # against sentence-transformers' own scores of the same passages, measured by ir-measures directly
    import ir_measures

    from rerankd.evaluation.dataset import read_qrels

    rows = {
        str(row["hits"][0]["qid"]): row for row in json.loads((trec_dir / "retrieve_results_dl19.json").read_text())
    }
    qrels = read_qrels(trec_dir / "qrels.dl19-passage.txt")
    for qid in FEW_QUERIES:
        hits = rows[qid]["hits"][:30]
        scores = bi_encoder_scores(Path(_minilm_dir()), rows[qid]["query"], [hit["content"] for hit in hits])
        run = {qid: {str(hit["docid"]): float(score) for hit, score in zip(hits, scores, strict=True)}}
        expected = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], {qid: qrels[qid]}, run)[ir_measures.nDCG @ 10]
        assert local["queries"][qid]["systems"][MINILM]["ndcg_cut_10"] == pytest.approx(expected, abs=1e-3)
    comparison = next(c for c in local["significance"]["comparisons"] if c["metric"] == "ndcg_cut_10")
    assert (comparison["a"], comparison["b"]) == ("bm25", MINILM)
    assert 0 <= comparison["p_ttest"] <= 1 and 0 <= comparison["p_randomization"] <= 1


def _minilm_dir() -> str:
    from rerankd.bench.checkpoints import require_minilm_dir

    return str(require_minilm_dir())


@pytest.mark.slow
def test_trec_dl_2019_rerank_in_process_and_through_a_server(capsys, tmp_path, trec_dir, start_server):
    """Acceptance: BM25 top-100 0.5058 and its all-MiniLM-L6-v2 rerank 0.6424 (± 0.001), both ways."""
    served = start_server()  # rerankd serve with its default model
    common = ("eval", "--dataset", trec_dir, "--model", MINILM, "--no-progress")
    assert run_cli(capsys, *common, "--json", tmp_path / "local.json")[0] == 0
    assert run_cli(capsys, *common, "--url", served.url, "--json", tmp_path / "server.json")[0] == 0
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "server.json").read_text())
    for report in (local, remote):
        assert round(report["systems"]["bm25"]["ndcg_cut_10"], 4) == 0.5058
        assert report["systems"][MINILM]["ndcg_cut_10"] == pytest.approx(0.6424, abs=0.001)
    assert local["queries"] == remote["queries"]


# ------------------------------------------------------------------------------------------ bad inputs
def _bad_inputs(tmp: Path) -> dict[str, tuple[list[object], str]]:
    """name -> (arguments after `eval`, a piece of the one line expected)."""
    good = write_trec_folder(tmp / "good")
    not_utf8 = write_trec_folder(tmp / "not-utf8")
    (not_utf8 / "qrels.toy.txt").write_bytes(b"1 0 d2 \xff\xfe\n")
    bad_run = tmp / "bad.run"
    bad_run.write_text("1 Q0 d1 1\n")
    empty_run = tmp / "empty.run"
    empty_run.write_text("")
    ids = tmp / "ids.txt"
    ids.write_text("1\n42\n")
    return {
        "missing folder": (["--dataset", tmp / "nowhere"], "does not exist"),
        "folder of another kind": (["--dataset", tmp], "is neither a JSONL file, a BEIR folder"),
        "qrels naming unknown queries": (
            ["--dataset", write_trec_folder(tmp / "strangers", qrels=["1 0 d2 1", "77 0 d9 1"])],
            "the qrels name 1 queries that",
        ),
        "empty first stage": (
            ["--dataset", write_trec_folder(tmp / "empty", hits={"1": [], "2": []})],
            "is empty: it ranks no document",
        ),
        "empty run file": (["--dataset", good, "--run", empty_run], "is empty"),
        "mismatched document ids": (
            ["--dataset", write_trec_folder(tmp / "other-ids", qrels=["1 0 x1 1", "2 0 x2 1"])],
            "mismatched ids: none of the 6 documents",
        ),
        "mismatched query ids in a run": (["--dataset", good, "--run", _run(tmp, "9")], "mismatched ids"),
        "unreadable qrels": (["--dataset", not_utf8], "not UTF-8"),
        "malformed run": (["--dataset", good, "--run", bad_run], "expected 'qid Q0 docid rank score tag'"),
        "labels and documents differ": (
            ["--dataset", write_jsonl(tmp / "short.jsonl", [{"query": "q", "documents": ["a", "b"], "labels": [1]}])],
            "2 documents but 1 labels",
        ),
        "not JSON": (["--dataset", _text(tmp / "broken.jsonl", '{"query": "q", \n')], "broken.jsonl:1: not JSON"),
        "unknown query ids": (["--dataset", good, "--queries-file", ids], "names 1 queries"),
        "unknown metric": (["--dataset", good, "--metrics", "ndcg@ten"], "unknown metric 'ndcg@ten'"),
        "bad --model": (["--dataset", good, "--model", tmp / "no-such-model"], "does not exist"),
        "unreachable --url": (
            ["--dataset", good, "--model", "m", "--url", f"http://127.0.0.1:{free_port()}"],
            "cannot reach the server",
        ),
        "two systems, one name": (["--dataset", good, "--model", "first-stage=x"], "two systems are named"),
    }


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _run(tmp: Path, qid: str) -> Path:
    path = tmp / f"run-{qid}.trec"
    path.write_text(f"{qid} Q0 d1 1 3.0 x\n{qid} Q0 d2 2 2.0 x\n")
    return path


def test_bad_inputs_give_one_clear_line(capsys, tmp_path):
    for name, (args, expected) in _bad_inputs(tmp_path).items():
        code, stdout, stderr = run_cli(capsys, "eval", *args, "--no-progress")
        lines = stderr.strip().splitlines()
        assert code == 2, (name, stderr)
        assert len(lines) == 1, (name, stderr)
        assert lines[0].startswith("rerankd eval: "), (name, lines)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in stderr + stdout


def test_the_installed_command_exits_2_with_one_line(tmp_path):
    """A real process: nothing else reaches stderr (the engine's log record of the failed load included)."""
    folder = write_trec_folder(tmp_path / "toy")
    found = subprocess.run(
        [sys.executable, "-m", "rerankd.cli", "eval", "--dataset", str(folder), "--model", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 2
    assert found.stderr.splitlines() == [
        f"rerankd eval: --model {tmp_path / 'nope'}: model '{tmp_path / 'nope'}' failed to load: SourceNotFound: "
        f"model directory '{tmp_path / 'nope'}' does not exist"
    ]


def test_url_naming_a_model_the_server_lacks(capsys, tmp_path, server):
    folder = write_trec_folder(tmp_path / "toy")
    code, _, stderr = run_cli(capsys, "eval", "--dataset", folder, "--model", "nope", "--url", server.url)
    assert code == 2
    assert f"{server.url} has no model 'nope' (it serves " in stderr
    code, _, stderr = run_cli(capsys, "eval", "--dataset", folder, "--model", f"{MINILM}:nope", "--url", server.url)
    assert code == 2
    assert "has no adapter 'nope'" in stderr
