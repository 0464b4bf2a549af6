"""`rerankd bench --quick`: every mode runs on real passages and the report is complete.

Speed goals are read from the report by people (README, notes), never asserted here: a unit
test that times a shared CI machine would be flaky, not informative.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.data import TREC_DL_2019

from rerankd.bench.data import BenchQuery, load_queries
from rerankd.bench.flops import encoder_flops


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory, trec, minilm_cross_encoder_dir):
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "rerankd.cli", "bench", "--quick", "--out", str(out), "--data", str(TREC_DL_2019)]
    completed = subprocess.run(
        [*command, "--model", f"minilm={minilm_cross_encoder_dir}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), out, completed.stdout


def test_quick_bench_reports_every_mode(quick_report):
    report, _, stdout = quick_report
    modes = {(r["mode"], r["concurrency"]) for r in report["results"]}
    assert modes == {("engine", 1), ("engine", 8), ("baseline", 1), ("http", 1), ("http", 8)}
    for row in report["results"]:
        assert row["pairs"] == 100 * row["requests"]
        assert row["pairs_per_s"] > 0 and row["tokens_per_s"] > row["pairs_per_s"]
        assert 0 < row["p50_s"] <= row["p95_s"] <= row["p99_s"]
        assert row["peak_memory_bytes"] > 50 * 2**20
        if row["mode"] != "baseline":
            assert 0 <= row["padding_waste"] < 0.5
    assert report["machine"]["matmul_flops_bf16"] > 0 and report["machine"]["matmul_flops_fp32"] > 0
    assert report["scale"]["big_items"] == 10 * report["scale"]["small_items"]
    assert report["scale"]["ratio"] > 1
    names = {t["name"] for t in report["targets"]}
    assert len(names) == 5
    assert "target http c=8 throughput / baseline" in stdout


def test_quick_bench_writes_a_png_plot(quick_report):
    _, out, _ = quick_report
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_jsonl_data_and_flop_accounting(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"query": "q1", "documents": ["a", "b", "c"]}\n\n{"query": "q2", "documents": ["d"]}\n')
    assert load_queries(path, documents_per_query=2) == [BenchQuery("q1", ["a", "b"]), BenchQuery("q2", ["d"])]
    config = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}
    # 6 layers x (2 x (4 x 384^2 + 2 x 384 x 1536) + 4 x 100 x 384) FLOPs per token, 100 tokens
    assert encoder_flops(config, tokens=100, sequences=1) == pytest.approx(6 * (2 * (589824 + 1179648) + 153600) * 100)
