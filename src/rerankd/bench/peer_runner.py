"""One sentence-transformers engine, timed on the bench's requests: the peers `rerankd bench` compares with.

A standalone script, run by path (`PYTHON peer_runner.py < job.json > result.json`), never
imported: the ONNX and OpenVINO peers need optimum, which needs transformers < 5, so they run in
their own virtual environment (`benchmarks/make_peers_venv.sh`), where rerankd is not installed.
It therefore imports nothing of rerankd's. One engine per process, so that each one's peak
memory is its own and a crash in one loses only that row.

Every engine runs with the defaults its documentation gives users; exports and quantizations
are made once into a cached copy of the model directory and are not timed. Lines starting
with `@@` on stderr are progress for the parent; stdout carries one JSON result.
"""

from __future__ import annotations

import os
import sys

# Run by path, the script's folder (rerankd/bench: data.py, server.py, ...) would shadow real modules.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
# openvino-telemetry (and NNCF through it) sends usage data home; it must never load.
sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("DO_NOT_TRACK", "1")):
    os.environ[_name] = _value

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# What a cached copy of the checkpoint needs (subfolders such as onnx/ are added by exports).
_COPY_SUFFIXES = (".json", ".txt", ".safetensors", ".model", ".bin")
# sentence-transformers' calibration length for static quantization (export_static_quantized_openvino_model).
_CALIBRATION_LENGTH = 384


def progress(text: str) -> None:
    print(f"@@ {text}", file=sys.stderr, flush=True)


def checkpoint_hash(model_dir: Path) -> str:
    """Content hash of the checkpoint's config and weights: exports are cached per checkpoint."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and (path.suffix in (".safetensors", ".bin") or path.name == "config.json"):
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def cached_copy(model_dir: Path, cache_root: Path) -> Path:
    """`cache_root/<checkpoint hash>/`: the checkpoint's files, where exports are written beside them."""
    target = cache_root / checkpoint_hash(model_dir)
    if not (target / "config.json").exists():
        staging = cache_root / f".copy-{os.getpid()}"
        staging.mkdir(parents=True, exist_ok=True)
        for path in model_dir.iterdir():
            if path.is_file() and path.suffix in _COPY_SUFFIXES:
                shutil.copy(path, staging / path.name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def _install(produced: Path, final: Path) -> None:
    """Move an export's file into the cached copy in one step (another run may be exporting too)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(produced, final)


def int8_onnx_config(flags: set[str]) -> str:
    """The dynamic-quantization config sentence-transformers' efficiency guide tells users to pick."""
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def ensure_onnx(copy: Path) -> None:
    """`onnx/model.onnx`: what `CrossEncoder(dir, backend="onnx")` exports on first load, kept."""
    if (copy / "onnx" / "model.onnx").exists():
        return
    from sentence_transformers import CrossEncoder

    progress("exporting to ONNX")
    staging = copy.parent / f".onnx-{os.getpid()}"
    CrossEncoder(str(copy), backend="onnx").save_pretrained(str(staging))
    _install(staging / "onnx" / "model.onnx", copy / "onnx" / "model.onnx")
    shutil.rmtree(staging, ignore_errors=True)


def ensure_onnx_int8(copy: Path, config: str) -> str:
    """sentence-transformers' `export_dynamic_quantized_onnx_model(model, config, dir)`; returns the file name."""
    file_name = f"onnx/model_qint8_{config}.onnx"
    if (copy / file_name).exists():
        return file_name
    from sentence_transformers import CrossEncoder, export_dynamic_quantized_onnx_model

    ensure_onnx(copy)
    progress(f"quantizing ONNX to int8 ({config}, dynamic)")
    staging = copy.parent / f".onnx-int8-{os.getpid()}"  # the export writes staging/onnx/<file>
    model = CrossEncoder(str(copy), backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"})
    export_dynamic_quantized_onnx_model(model, config, str(staging))
    _install(staging / file_name, copy / file_name)
    shutil.rmtree(staging, ignore_errors=True)
    return file_name


def ensure_openvino(copy: Path) -> None:
    """`openvino/openvino_model.xml/.bin`: what `CrossEncoder(dir, backend="openvino")` exports, kept."""
    if (copy / "openvino" / "openvino_model.xml").exists():
        return
    from sentence_transformers import CrossEncoder

    progress("exporting to OpenVINO")
    staging = copy.parent / f".openvino-{os.getpid()}"
    CrossEncoder(str(copy), backend="openvino").save_pretrained(str(staging))
    _install(staging / "openvino" / "openvino_model.bin", copy / "openvino" / "openvino_model.bin")
    _install(staging / "openvino" / "openvino_model.xml", copy / "openvino" / "openvino_model.xml")
    shutil.rmtree(staging, ignore_errors=True)


def ensure_openvino_int8(copy: Path, calibration: list[str]) -> str:
    """`export_static_quantized_openvino_model`, step for step, on a local calibration set.

    sentence-transformers calibrates on 300 sentences of glue/sst2 from the hub (unreachable
    offline); this uses the same count, tokenization and defaults on the bench's own passages
    instead, so the int8 model differs from the hub-calibrated one only by those texts.
    """
    file_name = "openvino/openvino_model_qint8_quantized.xml"
    stamp = copy / "openvino" / "qint8_quantized.calibration"
    key = hashlib.sha256("\n".join(calibration).encode()).hexdigest()[:16]
    if (copy / file_name).exists() and stamp.exists() and stamp.read_text() == key:
        return file_name
    import datasets
    from optimum.intel import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import CrossEncoder

    ensure_openvino(copy)
    progress(f"quantizing OpenVINO to int8 (static, {len(calibration)} calibration passages)")
    model = CrossEncoder(str(copy), backend="openvino", model_kwargs={"file_name": "openvino/openvino_model.xml"})
    quantizer = OVQuantizer.from_pretrained(model.transformers_model)
    tokens = model.tokenizer(calibration, padding="max_length", max_length=_CALIBRATION_LENGTH, truncation=True)
    dataset = datasets.Dataset.from_dict(dict(tokens))
    staging = copy.parent / f".openvino-int8-{os.getpid()}"
    ov_config = OVConfig(quantization_config=OVQuantizationConfig())
    quantizer.quantize(dataset, save_directory=str(staging), ov_config=ov_config)
    _install(staging / "openvino" / "openvino_model.bin", (copy / file_name).with_suffix(".bin"))
    _install(staging / "openvino" / "openvino_model.xml", copy / file_name)
    stamp.write_text(key)
    shutil.rmtree(staging, ignore_errors=True)
    return file_name


def prepare(engine: str, job: dict) -> tuple[str, dict, dict]:
    """(directory, CrossEncoder keyword arguments, details for the report) of `engine`, exported if needed."""
    model_dir = Path(job["model_dir"])
    if engine == "st-torch-fp32":
        return str(model_dir), {"device": job.get("device", "cpu")}, {"numerics": "fp32"}
    if engine == "st-torch-bf16":
        import torch

        return str(model_dir), {"model_kwargs": {"torch_dtype": torch.bfloat16}}, {"numerics": "bf16 weights"}
    copy = cached_copy(model_dir, Path(job["cache_dir"]))
    if engine == "st-onnx-fp32":
        ensure_onnx(copy)
        return str(copy), {"backend": "onnx"}, {"numerics": "fp32 (ONNX Runtime)"}
    if engine == "st-onnx-int8":
        config = job.get("int8_config") or int8_onnx_config(cpu_flags())
        file_name = ensure_onnx_int8(copy, config)
        kwargs = {"backend": "onnx", "model_kwargs": {"file_name": file_name}}
        return str(copy), kwargs, {"numerics": f"int8 dynamic ({config})", "file_name": file_name}
    if engine == "st-openvino":
        ensure_openvino(copy)
        return str(copy), {"backend": "openvino"}, {"numerics": "OpenVINO default"}
    if engine == "st-openvino-int8":
        file_name = ensure_openvino_int8(copy, job["calibration_texts"])
        kwargs = {"backend": "openvino", "model_kwargs": {"file_name": file_name}}
        details = {"numerics": "int8 static (OpenVINO/NNCF defaults, local calibration)", "file_name": file_name}
        return str(copy), kwargs, details
    raise SystemExit(f"unknown engine {engine!r}")


def reset_peak_memory() -> None:
    """Linux: restart the peak-RSS count (`VmHWM`), so exports and loading are not in the row's memory."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return None


def openvino_precision(model: Any) -> str | None:
    """The inference precision OpenVINO compiled for (bf16 by default on CPUs with native bf16)."""
    compiled = getattr(model.transformers_model, "request", None)  # optimum-intel keeps the CompiledModel here
    if compiled is not None and hasattr(compiled, "get_compiled_model"):
        compiled = compiled.get_compiled_model()
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # optimum-intel's internals differ between releases
        return None
    return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)


def run(job: dict) -> dict:
    engine = job["engine"]
    began = time.perf_counter()
    directory, kwargs, details = prepare(engine, job)
    prepare_s = time.perf_counter() - began
    import gc

    import sentence_transformers
    from sentence_transformers import CrossEncoder

    gc.collect()
    began = time.perf_counter()
    model = CrossEncoder(directory, **kwargs)
    load_s = time.perf_counter() - began
    if engine.startswith("st-openvino"):
        details["inference_precision"] = openvino_precision(model)
    requests = [(query, documents) for query, documents in job["requests"]]
    progress(f"loaded in {load_s:.1f}s; warming up")
    for query, documents in job.get("warmup_requests", requests[:1]):
        model.predict([(query, doc) for doc in documents], show_progress_bar=False)
    gc.collect()
    reset_peak_memory()  # as for rerankd's rows: the peak while serving (weights included), not the export's
    latencies: list[float] = []
    scores: list[list[float]] = []
    start = noted = time.perf_counter()
    for query, documents in requests:
        t = time.perf_counter()
        output = model.predict([(query, doc) for doc in documents], show_progress_bar=False)  # numpy: synced
        latencies.append(time.perf_counter() - t)
        scores.append([float(s) for s in output])
        if time.perf_counter() - noted >= 10 and len(scores) < len(requests):  # a line at least every ~10 s
            noted = time.perf_counter()
            left = (len(requests) - len(scores)) * (noted - start) / len(scores)
            progress(f"{len(scores)}/{len(requests)} requests, about {left:.0f}s left")
    wall = time.perf_counter() - start
    device_peak = None
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        device_peak = sys.modules["torch"].cuda.max_memory_allocated()
    import transformers

    return {
        "engine": engine,
        "latencies_s": latencies,
        "wall_s": wall,
        "scores": scores,
        "prepare_s": prepare_s,
        "load_s": load_s,
        "peak_memory_bytes": peak_memory(),
        "peak_device_memory_bytes": device_peak,
        "details": details,
        "versions": {
            "python": sys.version.split()[0],
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
        },
    }


def main() -> int:
    job = json.load(sys.stdin)
    # Libraries print progress bars to stdout (NNCF); only the result may go there.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    result = run(job)
    sys.stdout.flush()
    with os.fdopen(result_fd, "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
