"""The bench's peer engines that need the peers' venv (`benchmarks/make_peers_venv.sh`, built by `.ci/run`).

One short check bounded by work: the two int8 peers (ONNX dynamic, OpenVINO static with the
local calibration set), 2 requests of 20 passages each, exported into a fresh cache. It checks
that their scores come back for every passage, that they rank like the fp32 reference without
being exact, that the exports are kept, and that openvino-telemetry cannot be imported there.
Skipped where the peers' venv is absent (a fresh clone that never ran `.ci/run`).
"""

from __future__ import annotations

import io
import subprocess

import pytest

from rerankd.bench.agreement import agreement
from rerankd.bench.config import BenchConfig
from rerankd.bench.data import BenchQuery
from rerankd.bench.peers import cache_root, find_peers_python, int8_onnx_config, peer_modes
from rerankd.bench.progress import Progress
from rerankd.core.cpu import detect

PEERS = ["st-onnx-int8", "st-openvino-int8"]


@pytest.fixture(scope="module")
def peers_python():
    python = find_peers_python()
    if python is None:
        pytest.skip("no .venv-peers (benchmarks/make_peers_venv.sh builds it)")
    return python


def test_int8_peers_score_every_passage_and_keep_their_exports(peers_python, tmp_path, trec, minilm_cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    queries = [BenchQuery(q.query, q.documents[:20]) for q in trec[:2]]
    config = BenchConfig(
        model_name="minilm",
        model_source=str(minilm_cross_encoder_dir),
        queries=queries,
        requests=2,
        concurrencies=[1],
        engine_concurrencies=[1],
        device="cpu",
        cache_dir=tmp_path,
        peers=PEERS,
        peers_python=peers_python,
        warmup=1,
        warmup_documents=5,
    )
    log = io.StringIO()
    rows, skipped = peer_modes(config, minilm_cross_encoder_dir, {}, {}, detect(), Progress(log))
    assert skipped == {}
    assert [row.name for row in rows] == PEERS
    reference_model = CrossEncoder(str(minilm_cross_encoder_dir), device="cpu")
    reference = {
        i: [float(s) for s in reference_model.predict([(q.query, d) for d in q.documents])]
        for i, q in enumerate(queries)
    }
    for row in rows:
        assert row.requests == 2 and row.pairs == 40 and len(row.latencies_s) == 2
        assert sorted(row.scores) == [0, 1] and all(len(scores) == 20 for scores in row.scores.values())
        agreed = agreement(reference, row.scores, "st-torch-fp32")
        assert agreed.tau_mean > 0.5 and agreed.top10_overlap >= 0.5, (row.name, agreed)
        assert 0 < agreed.max_abs_delta < 0.5, (row.name, agreed)  # int8: close, not exact
        assert row.peak_memory_bytes > 50 * 2**20
    assert rows[0].numerics["numerics"] == f"int8 dynamic ({int8_onnx_config(detect())})"
    (copy,) = cache_root(config).iterdir()
    assert (copy / rows[0].numerics["file_name"]).stat().st_size > 0
    assert (copy / "openvino" / "openvino_model_qint8_quantized.bin").stat().st_size > 0
    notes = log.getvalue()
    assert "exporting to ONNX" in notes and "quantizing OpenVINO to int8 (static, 40 calibration passages)" in notes
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('openvino_telemetry') is not None)"
    assert subprocess.run([str(peers_python), "-c", probe]).returncode == 0, "openvino-telemetry is installed"
