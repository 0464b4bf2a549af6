"""`rerankd bench --quick`: every mode runs on real passages and the report is complete.

The quick run is bounded by work (a fixed number of requests per mode), so its cost is the
same on every machine; speed goals are read from the report by people (README, notes), never
asserted here: a unit test that times a shared CI machine would be flaky, not informative. What
is asserted is behaviour: every row, the agreement columns (rerankd's exact rows are the fp32
reference's scores), the matmul reference, the targets and the files, including bench.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from support.data import TREC_DL_2019

from rerankd.bench.agreement import Agreement, agreement, kendall_tau, top_overlap
from rerankd.bench.data import BenchQuery, load_queries
from rerankd.bench.flops import encoder_flops, native_dtypes
from rerankd.bench.measure import ModeResult
from rerankd.bench.peers import int8_onnx_config, plan_peers
from rerankd.bench.targets import compute_targets
from rerankd.core.cpu import build_info

EXACT_FLAGS = "flags : sse4_2 avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16\n"
AVX2_FLAGS = "flags : sse4_2 avx2 fma\n"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory, trec, minilm_cross_encoder_dir):
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "rerankd.cli", "bench", "--quick", "--out", str(out), "--data", str(TREC_DL_2019)]
    completed = subprocess.run(
        [*command, "--model", f"minilm={minilm_cross_encoder_dir}"],
        capture_output=True,
        text=True,
        timeout=1800,  # a safety net only: --quick is about 1,500 pairs however fast the machine is
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), out, completed.stdout, completed.stderr


def test_quick_bench_reports_every_mode(quick_report):
    report, _, stdout, _ = quick_report
    modes = {(r["mode"], r["name"], r["precision"], r["concurrency"]) for r in report["results"]}
    assert modes == {
        ("engine", "rerankd engine", "exact", 4),
        ("peer", "st-torch-fp32", None, 1),
        ("http", "rerankd http", "exact", 1),
        ("http", "rerankd http", "exact", 4),
    }
    for row in report["results"]:
        assert row["requests"] == max(2, row["concurrency"]) and row["pairs"] == 100 * row["requests"]
        assert row["pairs_per_s"] > 0 and row["tokens_per_s"] > row["pairs_per_s"]
        assert 0 < row["p50_s"] <= row["p95_s"] <= row["p99_s"]
        assert row["peak_memory_bytes"] > 50 * 2**20
        if row["mode"] != "peer":
            assert 0 <= row["padding_waste"] < 0.5
            assert row["numerics"]  # what the engine and the server said they compute in
    assert report["scale"]["big_items"] == 10 * report["scale"]["small_items"]
    assert report["scale"]["ratio"] > 1
    assert "target exact: http c=4 throughput / fastest exact peer" in stdout


def test_quick_bench_agreement_columns(quick_report):
    """Every row is compared with st-torch-fp32; rerankd's exact rows are its scores (ties stay ties)."""
    report, *_ = quick_report
    assert report["config"]["agreement_reference"] == "st-torch-fp32"
    for row in report["results"]:
        agreement = row["agreement"]
        assert agreement["queries"] == 2  # the queries the reference scored
        assert agreement["max_abs_delta"] <= 1e-5, row["name"]  # exact by definition: no rows of other precisions
        # τ-b counts a pair the two sides order differently by 1e-7 as discordant: allow a couple of such pairs.
        assert agreement["kendall_tau_mean"] == pytest.approx(1.0, abs=1e-3)
        assert agreement["kendall_tau_min"] == pytest.approx(1.0, abs=1e-3)
        assert agreement["top10_overlap"] >= 0.9
        assert agreement["exact"]


def test_quick_bench_matmul_reference_is_native(quick_report):
    report, *_ = quick_report
    machine = report["machine"]
    native = ["float32", "bfloat16"] if machine["cpu_summary"]["native_bf16"] else ["float32"]
    assert [rate["dtype"] for rate in machine["matmul_rates"]] == native  # emulated bf16 is never timed
    assert machine["matmul_reference"]["dtype"] in native
    assert machine["matmul_reference"]["flops_per_s"] == max(rate["flops_per_s"] for rate in machine["matmul_rates"])
    assert machine["cpu_description"] and machine["cpu_summary"]["features"]


def test_quick_bench_targets(quick_report):
    report, *_ = quick_report
    targets = {t["name"]: t for t in report["targets"]}
    assert set(targets) == {
        "exact: http c=4 throughput / fastest exact peer",
        "exact: http c=1 p50 latency / fastest exact peer",
        "exact: max |Δ score| vs fp32 reference",
        "exact: http c=4 throughput / engine c=4",
        "exact: model FLOP/s / fastest native matmul FLOP/s (float32)",  # exact is held to fp32's rate
        "exact: 100-item / 10-item request cost",
    }
    assert targets["exact: max |Δ score| vs fp32 reference"]["met"]
    assert "st-torch-fp32" in targets["exact: http c=4 throughput / fastest exact peer"]["detail"]


def test_quick_bench_writes_markdown_png_and_progress(quick_report):
    report, out, _, stderr = quick_report
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "bench.md").read_text()
    assert report["machine"]["cpu_description"] in text and f"torch {report['machine']['torch']}" in text
    assert "| engine | precision | numerics | clients |" in text and "| τ mean | τ min | top-10 overlap |" in text
    assert text.count("| rerankd http | exact |") == 2 and "| st-torch-fp32 |" in text
    assert "| target | value | bound | verdict | compared with |" in text
    assert "| exact: max |Δ score| vs fp32 reference |" not in text  # pipes in cells are escaped
    assert "max \\|Δ score\\| vs fp32 reference" in text
    stages = ("matmul float32", "engine (exact) c=4", "scale check (exact)", "peer st-torch-fp32", "HTTP (exact) c=4")
    lines = [line for line in stderr.splitlines() if line.startswith("[bench ")]  # stamped with seconds elapsed
    for stage in stages:  # one line when each stage starts, one when it ends
        mine = [line for line in lines if f"] {stage}" in line]
        assert any(line.endswith(" ...") for line in mine) and any(" done in " in line for line in mine), stage


def test_jsonl_data_and_flop_accounting(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"query": "q1", "documents": ["a", "b", "c"]}\n\n{"query": "q2", "documents": ["d"]}\n')
    assert load_queries(path, documents_per_query=2) == [BenchQuery("q1", ["a", "b"]), BenchQuery("q2", ["d"])]
    config = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}
    # 6 layers x (2 x (4 x 384^2 + 2 x 384 x 1536) + 4 x 100 x 384) FLOPs per token, 100 tokens
    assert encoder_flops(config, tokens=100, sequences=1) == pytest.approx(6 * (2 * (589824 + 1179648) + 153600) * 100)


def test_agreement_measures_rankings():
    reference = {0: [0.9, 0.8, 0.7, 0.6], 1: [0.1, 0.2, 0.3, 0.4]}
    same = agreement(reference, {0: [0.9, 0.8, 0.7, 0.6], 1: [0.1, 0.2, 0.3, 0.4 + 1e-7]}, "ref")
    assert (same.tau_mean, same.tau_min, same.top10_overlap, same.exact) == (1.0, 1.0, 1.0, True)
    swapped = agreement(reference, {0: [0.8, 0.9, 0.7, 0.6], 1: [0.4, 0.3, 0.2, 0.1], 2: [1.0]}, "ref")
    assert swapped.queries == 2  # only the queries both scored
    assert swapped.tau_min == pytest.approx(-1.0) and swapped.tau_mean == pytest.approx((4 / 6 - 1) / 2)
    assert swapped.max_abs_delta == pytest.approx(0.3) and not swapped.exact
    assert kendall_tau([0.5, 0.5], [0.1, 0.2]) == 1.0  # nothing to order
    assert top_overlap(list(range(20)), list(range(20))[::-1], k=10) == 0.0  # top and bottom halves
    assert top_overlap(list(range(20)), [*range(15), 0, 0, 0, 0, 0], k=10) == 0.5
    assert top_overlap(list(range(20)), list(range(20)), k=10) == 1.0
    with pytest.raises(ValueError):
        agreement({0: [1.0, 2.0]}, {0: [1.0]}, "ref")


def _row(mode: str, name: str, precision: str | None, concurrency: int, pairs_per_s: float, delta: float, tau=1.0):
    row = ModeResult(mode, name, precision, concurrency, 1, 100, 1000, 100 / pairs_per_s, [100 / pairs_per_s])
    row.agreement = Agreement("st-torch-fp32", 1, tau, tau, tau, delta)
    return row


def test_targets_compare_exact_with_exact_peers_and_fast_with_any():
    rows = [
        _row("peer", "st-torch-fp32", None, 1, 40, 0.0),
        _row("peer", "st-onnx-fp32", None, 1, 50, 8e-7),
        _row("peer", "st-openvino-int8", None, 1, 120, 0.05, tau=0.9),
        _row("http", "rerankd http", "exact", 1, 60, 9e-7),
        _row("http", "rerankd http", "exact", 8, 80, 9e-7),
        _row("engine", "rerankd engine", "exact", 8, 80, 9e-7),
        _row("http", "rerankd http", "fast", 8, 200, 0.02, tau=0.95),
    ]
    rates = [{"dtype": "float32", "flops_per_s": 1e11}, {"dtype": "bfloat16", "flops_per_s": 4e11}]
    machine = {"matmul_rates": rates, "matmul_reference": rates[1]}
    targets = {t.name: t for t in compute_targets(rows, {}, machine)}
    # exact runs fp32 only, so it is held to fp32's matmul rate; fast to the fastest native dtype's
    assert "exact: model FLOP/s / fastest native matmul FLOP/s (float32)" in targets
    assert "fast: model FLOP/s / fastest native matmul FLOP/s (bfloat16)" in targets
    exact = targets["exact: http c=8 throughput / fastest exact peer"]
    assert exact.value == pytest.approx(80 / 50) and exact.met and exact.detail.startswith("st-onnx-fp32")
    latency = targets["exact: http c=1 p50 latency / fastest exact peer"]
    assert latency.value == pytest.approx((100 / 60) / (100 / 50)) and latency.bound == pytest.approx(1 / 1.5)
    assert not latency.met
    fast = targets["fast: http c=8 throughput / fastest peer"]
    assert fast.value == pytest.approx(200 / 120) and fast.detail.startswith("st-openvino-int8")
    tau = targets["fast: Kendall tau mean vs fp32 / fastest peer's"]
    assert (tau.value, tau.bound, tau.met) == (0.95, 0.9, True)
    assert targets["exact: http c=8 throughput / engine c=8"].value == pytest.approx(1.0)
    assert targets["exact: max |Δ score| vs fp32 reference"].met
    assert "fast: http c=1 p50 latency / fastest exact peer" not in targets


def test_peer_plan_follows_the_cpu_and_the_peers_venv(tmp_path):
    avx2 = build_info(AVX2_FLAGS, {}, {}, 2)
    wide = build_info(EXACT_FLAGS, {}, {}, 2)
    capped = build_info(EXACT_FLAGS, {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}, 2)
    assert [int8_onnx_config(cpu) for cpu in (avx2, wide, capped)] == ["avx2", "avx512_vnni", "avx512_vnni"]
    assert native_dtypes(torch.device("cpu"), capped) == [torch.float32]
    assert native_dtypes(torch.device("cpu"), wide) == [torch.float32, torch.bfloat16]
    plan = plan_peers(["st-torch-fp32", "st-onnx-int8", "st-torch-bf16"], avx2, None)
    assert [peer for peer, _ in plan.runs] == ["st-torch-fp32"] and plan.runs[0][1] == sys.executable
    assert "no peers environment" in plan.skipped["st-onnx-int8"]
    assert "native bf16" in plan.skipped["st-torch-bf16"]
    python = tmp_path / "python"
    plan = plan_peers(["st-onnx-int8", "st-torch-bf16"], wide, python)
    assert plan.runs == [("st-onnx-int8", str(python)), ("st-torch-bf16", sys.executable)]


@pytest.mark.slow
def test_quick_bench_with_every_peer_and_both_precisions(tmp_path, trec, minilm_cross_encoder_dir):
    """The long form: every peer this machine can run beside both precisions (needs .venv-peers)."""
    from rerankd.bench.peers import PEERS, find_peers_python

    if find_peers_python() is None:
        pytest.skip("no .venv-peers (benchmarks/make_peers_venv.sh builds it)")
    command = [sys.executable, "-m", "rerankd.cli", "bench", "--quick", "--out", str(tmp_path)]
    command += ["--data", str(TREC_DL_2019), "--model", f"minilm={minilm_cross_encoder_dir}"]
    completed = subprocess.run(
        [*command, "--peers", "all", "--precisions", "exact,fast"], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    rows = {(r["name"], r["precision"], r["concurrency"]): r for r in report["results"]}
    expected = [p for p in PEERS if p != "st-torch-bf16" or report["machine"]["cpu_summary"]["native_bf16"]]
    assert [r["name"] for r in report["results"] if r["mode"] == "peer"] == expected
    assert rows[("st-onnx-fp32", None, 1)]["agreement"]["exact"]
    assert not rows[("st-onnx-int8", None, 1)]["agreement"]["exact"]
    for precision in ("exact", "fast"):
        assert {
            ("rerankd engine", precision, 4),
            ("rerankd http", precision, 1),
            ("rerankd http", precision, 4),
        } <= set(rows)
    names = {t["name"] for t in report["targets"]}
    assert {"fast: http c=4 throughput / fastest peer", "fast: Kendall tau mean vs fp32 / fastest peer's"} <= names
    assert "fast: 100-item / 10-item request cost" in names
