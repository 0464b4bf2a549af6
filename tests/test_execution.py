"""How encoder networks run on a CPU: capability detection, the first-token last layer, OpenVINO.

The exact default must give the reference scores whatever backend serves them; `--precision
fast` must choose among numerics this CPU runs natively, by measured agreement, and say so.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from rerankd.api.service import Service
from rerankd.core.cpu import build_info
from rerankd.core.types import Item, ScoreOptions, ScoreRequest
from rerankd.models import execution
from rerankd.registry.registry import RegistrySettings

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}

_COMMON = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma"
SAPPHIRE_RAPIDS = (
    f"{_COMMON} avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8"
)
ZEN4 = f"{_COMMON} avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
ZEN2 = f"{_COMMON} avx2"


def cpuinfo(flags: str, cores: int = 2, model: str = "Test CPU") -> str:
    blocks = [
        f"processor\t: {i}\nvendor_id\t: Vendor\nmodel name\t: {model}\nphysical id\t: 0\ncore id\t: {i}\n"
        f"flags\t\t: {flags}\n"
        for i in range(cores)
    ]
    return "\n".join(blocks)


@pytest.mark.parametrize(
    ("flags", "env", "native_bf16", "bf16_kernel", "int8_kernel", "isa"),
    [
        (SAPPHIRE_RAPIDS, {}, True, "amx", "amx_int8", "avx512"),
        (ZEN4, {}, True, "avx512_bf16", "avx512_vnni", "avx512"),
        (ZEN2, {}, False, None, "avx2", "avx2"),
        # the kernels' caps: what oneDNN / PyTorch may not use counts as absent
        (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False, None, "avx2", "avx2"),
        (ZEN4, {"ATEN_CPU_CAPABILITY": "avx2"}, False, None, "avx2", "avx2"),
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, False, None, "avx512_vnni", "avx512"),
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, True, "avx512_bf16", "avx512_vnni", "avx512"),
    ],
    ids=["amx", "avx512-bf16", "avx2", "onednn-cap", "aten-cap", "vnni-cap", "bf16-cap"],
)
def test_cpu_capabilities_follow_the_flags_and_the_kernels_caps(flags, env, native_bf16, bf16_kernel, int8_kernel, isa):
    info = build_info(cpuinfo(flags), env, {"L2": 2**21}, usable=2)
    assert (info.native_bf16, info.bf16_kernel, info.int8_kernel, info.vector_isa) == (
        native_bf16,
        bf16_kernel,
        int8_kernel,
        isa,
    )
    assert info.physical_cores == 2 and info.logical_cpus == 2
    assert info.hardware_features >= info.features
    assert (info.cap is not None) == bool(env)
    summary = info.summary()
    assert summary["native_bf16"] is native_bf16 and summary["caches_bytes"] == {"L2": 2**21}
    assert ("bf16 native" in info.describe()) is native_bf16


def _small(model_class, config_class, **extra):
    torch.manual_seed(0)
    config = config_class(vocab_size=120, **SMALL, **extra)
    model = model_class(config).eval()
    with torch.no_grad():  # a wider initializer than 0.02, or every text maps to the same logit
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    return model


@pytest.mark.parametrize(
    ("build", "applies"),
    [
        (lambda: _small(BertForSequenceClassification, BertConfig, num_labels=1), True),
        (lambda: _small(XLMRobertaForSequenceClassification, XLMRobertaConfig, num_labels=1), True),
        (lambda: _small(ElectraForSequenceClassification, ElectraConfig, embedding_size=32, num_labels=1), True),
        (lambda: _small(DebertaV2ForSequenceClassification, DebertaV2Config, num_labels=1), False),
    ],
    ids=["bert", "xlm-roberta", "electra", "deberta-v2"],
)
def test_first_token_last_layer_gives_the_full_networks_logits(build, applies):
    from rerankd.models.graphs import first_token_last_layer, reads_first_token

    model = build()
    torch.manual_seed(1)
    input_ids = torch.randint(5, 120, (4, 17))
    mask = torch.ones_like(input_ids)
    mask[1, 9:] = 0  # padded rows too
    mask[3, 3:] = 0
    with torch.inference_mode():
        full = model(input_ids=input_ids, attention_mask=mask).logits
    names = [name for name, _ in model.named_modules()]
    assert first_token_last_layer(model, reads_first_token_only=reads_first_token(model)) is applies
    with torch.inference_mode():
        cut = model(input_ids=input_ids, attention_mask=mask).logits
    assert [name for name, _ in model.named_modules()] == names  # LoRA finds its modules by these names
    assert torch.allclose(cut, full, atol=1e-5, rtol=0)
    assert full.std() > 0.05  # the logits differ between rows: the comparison means something


def _scores(model_dir: Path, settings: RegistrySettings, queries) -> tuple[list[np.ndarray], dict]:
    async def run():
        service = Service.create(settings)
        service.registry.register("m", str(model_dir))
        try:
            await service.registry.load("m")
            results = []
            for query in queries:
                request = ScoreRequest(
                    model="m",
                    query=Item(text=query.query),
                    items=[Item(text=d) for d in query.documents],
                    options=ScoreOptions(raw_scores=True),
                )
                result = await service.engine.score(request)
                scores = np.empty(len(result.entries))
                for entry in result.entries:
                    scores[entry.index] = entry.score
                results.append(scores)
            units = await service.engine.units(request)
            # the scheduler's batch budget beside what GET /v1/models reports
            plan = service.describe("m")["execution"]
            return results, {**plan, "scheduler_batch_tokens": units.limits.max_batch_tokens}
        finally:
            await service.close()

    return asyncio.run(run())


@pytest.mark.parametrize("model", ["cross-encoder", "bi-encoder"])
def test_exact_default_compiles_to_openvino_and_keeps_the_reference_scores(
    model, minilm_cross_encoder_dir, minilm_bi_encoder_dir, trec, tmp_path
):
    model_dir = minilm_cross_encoder_dir if model == "cross-encoder" else minilm_bi_encoder_dir
    queries = trec[:3]
    reference, on_torch = _scores(model_dir, RegistrySettings(backend="torch", cache_dir=tmp_path), queries)
    assert (on_torch["backend"], on_torch["numerics"]) == ("torch", "float32")
    compiled, on_default = _scores(model_dir, RegistrySettings(cache_dir=tmp_path), queries)
    assert on_default["precision"] == "exact"
    assert on_default["check"]["max_delta"] <= execution.EXACT_TOLERANCE
    if on_default["backend"] == "openvino":  # torch when OpenVINO was slower on this machine's check
        assert on_default["numerics"] == "fp32"
        assert on_default["compiled_bytes"] > 0
    # raw scores (logits, cosines) of 300 pairs of every length, padding included
    assert max(float(np.abs(a - b).max()) for a, b in zip(reference, compiled, strict=True)) <= 1e-5
    assert on_default["first_token_last_layer"] is (model == "cross-encoder")
    # a second load reads the compiled graph and the check's verdict from the cache
    again, cached = _scores(model_dir, RegistrySettings(cache_dir=tmp_path), queries[:1])
    assert cached["check"]["cached"] is True and cached["backend"] == on_default["backend"]
    assert np.allclose(again[0], compiled[0], atol=1e-6, rtol=0)


def test_openvino_backend_forced_serves_openvino(minilm_cross_encoder_dir, trec, tmp_path):
    scores, plan = _scores(minilm_cross_encoder_dir, RegistrySettings(backend="openvino", cache_dir=tmp_path), trec[:1])
    assert (plan["backend"], plan["numerics"]) == ("openvino", "fp32")
    reference, _ = _scores(minilm_cross_encoder_dir, RegistrySettings(backend="torch", cache_dir=tmp_path), trec[:1])
    assert float(np.abs(scores[0] - reference[0]).max()) <= 1e-5


def _calibration_file(path: Path, trec) -> Path:
    with path.open("w") as handle:
        for query in trec[-4:]:
            handle.write(json.dumps({"query": query.query, "documents": query.documents[:16]}) + "\n")
    return path


def test_fast_precision_calibrates_chooses_a_passing_numerics_and_caches_the_choice(
    minilm_cross_encoder_dir, trec, tmp_path
):
    calibration = _calibration_file(tmp_path / "calibration.jsonl", trec)
    settings = RegistrySettings(precision="fast", cache_dir=tmp_path / "cache", calibration_data=calibration)
    fast, plan = _scores(minilm_cross_encoder_dir, settings, trec[:2])
    report = plan["calibration"]
    assert report["cached"] is False and report["queries"] == 4 and report["pairs"] == 64
    trials = {trial["name"]: trial for trial in report["trials"]}
    native_bf16 = execution.detect().native_bf16
    assert "torch fp32" in trials and "openvino fp32" in trials
    assert any(name.startswith("openvino int8") for name in trials)
    assert any("bf16" in name for name in trials) is native_bf16  # bf16 only where it is native
    passing = [t for t in trials.values() if t["passed"]]
    fastest = max(t["pairs_per_second"] for t in passing)
    tied = [t for t in passing if t["pairs_per_second"] >= fastest * (1 - execution.SPEED_TIE)]
    chosen = max(tied, key=lambda t: (t["agreement"]["tau_mean"], t["pairs_per_second"]))  # a tie goes to fidelity
    assert any(name == "openvino bf16+fp32 tail" for name in trials) is native_bf16
    for trial in trials.values():
        agreement = trial["agreement"]
        floor = report["floor"]
        assert trial["passed"] is (
            agreement["max_delta"] <= 1e-5
            or (agreement["tau_mean"] >= floor["tau_mean"] and agreement["top10"] >= floor["top10"])
        ), trial
    assert plan["backend"] == ("torch" if chosen["name"].startswith("torch") else "openvino")
    # a reduced-precision OpenVINO network batches more (its kernels' sweet spot); everything else the CPU default
    reduced = plan["backend"] == "openvino" and not chosen["name"].endswith("fp32")
    budget = execution.REDUCED_PRECISION_BATCH_TOKENS if reduced else 1024
    assert plan["scheduler_batch_tokens"] == budget and plan.get("batch_tokens") == (budget if reduced else None)
    # the scores come from the chosen numerics: close to exact, not exact unless fp32 won
    exact, _ = _scores(minilm_cross_encoder_dir, RegistrySettings(cache_dir=tmp_path / "cache"), trec[:2])
    moved = max(float(np.abs(a - b).max()) for a, b in zip(exact, fast, strict=True))
    assert moved < 1.0
    assert (moved <= 1e-5) is (chosen["agreement"]["max_delta"] <= 1e-5)
    # the next load reuses the choice without calibrating again
    _, again = _scores(minilm_cross_encoder_dir, settings, trec[:1])
    assert again["calibration"]["cached"] is True and again["numerics"] == plan["numerics"]


def test_fast_floor_is_plain_openvino_bf16_where_amx_makes_bf16_the_fastest_reduced_precision():
    """With AMX the peers' fastest reduced mode is OpenVINO's bf16: int8 (tau ~0.95) must not pass."""
    from rerankd.models.calibration import Agreement

    trials = {
        "openvino bf16": execution.Trial("openvino bf16", 300.0, Agreement(0.985, 0.95, 0.97, 6e-3)),
        "openvino int8+bf16": execution.Trial("openvino int8+bf16", 330.0, Agreement(0.95, 0.9, 0.94, 4e-2)),
    }
    options = execution.ExecutionOptions(precision="fast")
    amx = execution.agreement_floor(build_info(cpuinfo(SAPPHIRE_RAPIDS), {}, {}, usable=2), trials, options)
    assert (amx.tau_mean, amx.top10, amx.source) == (0.985, 0.97, "openvino bf16 (AMX)")
    assert trials["openvino bf16"].agreement.at_least(amx.tau_mean, amx.top10)
    assert not trials["openvino int8+bf16"].agreement.at_least(amx.tau_mean, amx.top10)
    # without AMX (AVX-512-BF16 and VNNI only, or AMX capped away) int8 is the peers' fastest: the constant floor
    for cpu in (
        build_info(cpuinfo(ZEN4), {}, {}, usable=2),
        build_info(cpuinfo(SAPPHIRE_RAPIDS), {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {}, usable=2),
    ):
        floor = execution.agreement_floor(cpu, trials, options)
        assert (floor.tau_mean, floor.top10) == (execution.FAST_MIN_TAU, execution.FAST_MIN_TOP10)
    # a bf16 that agrees worse than the constant never lowers it
    worse = {"openvino bf16": execution.Trial("openvino bf16", 300.0, Agreement(0.85, 0.8, 0.8, 1e-2))}
    low = execution.agreement_floor(build_info(cpuinfo(SAPPHIRE_RAPIDS), {}, {}, usable=2), worse, options)
    assert (low.tau_mean, low.top10) == (execution.FAST_MIN_TAU, execution.FAST_MIN_TOP10)


def test_fast_precision_never_offers_bf16_where_it_is_emulated(minilm_cross_encoder_dir, monkeypatch, tmp_path):
    from rerankd.models.catalog import detect_spec
    from rerankd.models.cross_encoder import CrossEncoderFamily
    from rerankd.models.runtime import resolve_placement

    avx2_only = build_info(cpuinfo(ZEN4), {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {}, usable=2)
    monkeypatch.setattr(execution, "detect", lambda: avx2_only)
    spec = detect_spec("m", str(minilm_cross_encoder_dir), minilm_cross_encoder_dir)
    family = CrossEncoderFamily(spec, resolve_placement("auto", torch.device("cpu")), minilm_cross_encoder_dir)
    options = execution.ExecutionOptions(precision="fast", cache_dir=tmp_path)
    names = [c.name for c in execution.Compiler(family, minilm_cross_encoder_dir, options).fast_candidates()]
    assert names == ["torch fp32", "openvino fp32", "openvino int8+fp32", "openvino int8 feed-forward+fp32"]


def test_openvino_and_nncf_send_nothing(tmp_path):
    """Their telemetry cannot import, and converting plus quantizing opens no connection."""
    script = textwrap.dedent(
        """
        import socket, sys
        attempts = []
        real_connect = socket.socket.connect
        def connect(self, address):
            attempts.append(address)
            return real_connect(self, address)
        socket.socket.connect = connect
        socket.create_connection = lambda address, *a, **k: attempts.append(address)
        from rerankd.models import openvino_runtime
        import numpy as np, torch
        try:
            import openvino_telemetry
            print("telemetry importable"); sys.exit(1)
        except ImportError:
            pass
        import nncf.telemetry
        assert type(nncf.telemetry.telemetry).__name__ == "MagicMock", nncf.telemetry.telemetry
        net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        class Graph(torch.nn.Module):
            def __init__(self): super().__init__(); self.net = net
            def forward(self, input_ids): return self.net(input_ids.float())
        model = openvino_runtime.convert(Graph(), {"input_ids": torch.ones(2, 8, dtype=torch.int64)})
        batches = [{"input_ids": np.random.randint(0, 5, (2, 8)).astype(np.int64)} for _ in range(4)]
        openvino_runtime.quantize_int8(model, batches)
        print("attempts", attempts)
        sys.exit(0 if not attempts else 2)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "attempts []" in done.stdout


def test_openvino_compiles_unpinned_so_processes_sharing_a_machine_spread_over_its_cores() -> None:
    """Pinned, two 1-thread processes (Ray replicas on one node) were put on the same core: half speed."""
    import openvino as ov

    from rerankd.models import openvino_runtime

    parameter = ov.opset13.parameter([-1, 4], ov.Type.f32)
    model = ov.Model([ov.opset13.relu(parameter)], [parameter])
    compiled = openvino_runtime.compile_model(model, "fp32", threads=1)
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_int8_network_pads_widths_to_a_multiple_and_keeps_every_units_row(minilm_cross_encoder_dir):
    """int8 networks get widths rounded up to 16 (fewer kernel shapes, tile-aligned): masked positions change no row."""
    from rerankd.models import build_family, openvino_runtime
    from rerankd.models.catalog import detect_spec
    from rerankd.models.runtime import resolve_placement

    spec = detect_spec("m", str(minilm_cross_encoder_dir), minilm_cross_encoder_dir)
    placement = resolve_placement("auto", torch.device("cpu"))
    family = build_family(spec, placement, minilm_cross_encoder_dir, execution.ExecutionOptions(backend="torch"))
    rows = [list(range(1000, 1000 + n)) for n in (37, 20, 5)]  # widest 37: padded to 48
    batch = family.collate(rows, [[0] * len(row) for row in rows])
    model = openvino_runtime.convert(family.graph, batch)
    compiled = openvino_runtime.compile_model(model, "fp32", threads=torch.get_num_threads())
    plain = openvino_runtime.CompiledNetwork(compiled, list(batch), width_multiple=1)(batch)
    padded = openvino_runtime.CompiledNetwork(compiled, list(batch), width_multiple=16)(batch)
    assert padded.shape == plain.shape == (3, 1)
    assert float((padded - plain).abs().max()) <= 1e-5
    assert float((plain[0] - plain[1]).abs().max()) > 1e-3  # different rows: a wrong mask would show


def test_fast_tie_goes_to_the_candidate_that_ranks_closer_to_fp32():
    from rerankd.models.calibration import Agreement

    def trial(name: str, speed: float, tau: float) -> execution.Trial:
        return execution.Trial(name, speed, Agreement(tau, tau - 0.01, tau, 1e-2), passed=True)

    plain, tail = trial("openvino bf16", 500.0, 0.988), trial("openvino bf16+fp32 tail", 490.0, 0.994)
    assert execution._winner([plain, tail]) is tail  # 2 % slower: a tie, fidelity decides
    slow_tail = trial("openvino bf16+fp32 tail", 400.0, 0.994)
    assert execution._winner([plain, slow_tail]) is plain  # 20 % slower: speed decides


def test_bf16_body_and_fp32_tail_split_computes_the_same_network(minilm_cross_encoder_dir, minilm_bi_encoder_dir):
    """Cut after the last layer's attention and both halves compiled in fp32: the unsplit network's logits."""
    from rerankd.models import build_family, openvino_runtime
    from rerankd.models.catalog import detect_spec
    from rerankd.models.runtime import resolve_placement

    def compiler_for(directory: Path) -> execution.Compiler:
        spec = detect_spec("m", str(directory), directory)
        family = build_family(
            spec, resolve_placement("auto", torch.device("cpu")), directory, execution.ExecutionOptions(backend="torch")
        )
        return execution.Compiler(family, directory, execution.ExecutionOptions(precision="fast", cache_dir=tmp_cache))

    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        tmp_cache = Path(cache)
        compiler = compiler_for(minilm_cross_encoder_dir)
        model = compiler.fp32_model()
        body, tail = openvino_runtime.split_at_last_attention(model)
        threads = torch.get_num_threads()
        names = compiler.input_names()
        whole = openvino_runtime.CompiledNetwork(openvino_runtime.compile_model(model, "fp32", threads), names)
        chained = openvino_runtime.ChainedNetwork(
            openvino_runtime.compile_model(body, "fp32", threads),
            openvino_runtime.compile_model(tail, "fp32", threads),
            names,
            width_multiple=16,
        )
        batch = compiler.calibration_set(check=True).batches[0][1]
        expected, got = whole(batch), chained(batch)
        assert got.shape == expected.shape and expected.shape[0] > 1
        assert float((got - expected).abs().max()) <= 1e-5
        assert float(expected.std()) > 1e-3  # distinct logits: a cut in the wrong place would show
        # mean pooling reads every position of the last layer: no cheap tail, no split offered
        assert openvino_runtime.split_at_last_attention(compiler_for(minilm_bi_encoder_dir).fp32_model()) is None
