"""OpenVINO and NNCF, imported the only way rerankd allows: with their telemetry unable to load.

Both send usage data to Google Analytics through the `openvino-telemetry` package, which they
depend on: OpenVINO on every `convert_model`, NNCF on every `quantize`. Before either is
imported, `openvino_telemetry` is made unimportable in this process (`sys.modules[...] =
None`), so both fall back to their own no-op stubs whether or not the package is installed,
and NNCF's `NNCF_CI` switch is set as well. `.ci/run` also uninstalls the package.

Everything OpenVINO-specific lives here: converting a torch module, saving and reading IR
(never fp16-compressed: `save_model` compresses weights to fp16 by default, which alone moves
scores by ~3e-3), compiling with an explicit inference precision (OpenVINO's own default is
bf16 on CPUs that have it, which is not exact), and post-training int8 quantization.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def block_telemetry() -> None:
    """Make `openvino_telemetry` unimportable here (unless something already imported it)."""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    os.environ.setdefault("NNCF_CI", "1")


block_telemetry()


def available() -> bool:
    """Whether OpenVINO imports here (it is a dependency, but a platform may lack wheels)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import openvino as ov

    return ov.get_version()


def convert(module: torch.nn.Module, example: dict[str, torch.Tensor]) -> Any:
    """An `ov.Model` of `module`, traced on `example`, with every input (batch, length) dynamic."""
    import openvino as ov

    inputs = [(name, [-1] * tensor.dim(), ov.Type.i64) for name, tensor in example.items()]
    with torch.inference_mode():
        return ov.convert_model(module, example_input=example, input=inputs)


def save(model: Any, path: Path) -> Path:
    """IR files at `path` (.xml + .bin), weights kept in full precision; written then renamed."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.stem}-{os.getpid()}.xml")
    ov.save_model(model, str(staging), compress_to_fp16=False)
    staging.with_suffix(".bin").replace(path.with_suffix(".bin"))
    staging.replace(path)
    return path


def read(path: Path) -> Any:
    import openvino as ov

    return ov.Core().read_model(str(path))


# Inference precisions, by rerankd's name for them.
PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def compile_model(model: Any, precision: str, threads: int) -> Any:
    """Compile for the CPU: one stream on `threads` threads (the latency hint), the given precision, unpinned.

    Non-quantized operations run in `precision`; int8 ones stay int8 either way. Threads are not
    pinned to cores: OpenVINO pins each process as if it had the machine to itself, so processes
    that share one (Ray replicas on a node, several servers) land on the same cores. Two
    1-thread processes on 2 cores ran at half speed pinned and side by side unpinned; one
    2-thread process measured the same either way (benchmarks/ray_scale_out.py, README).
    """
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": max(1, threads),
        "ENABLE_CPU_PINNING": False,
    }
    return ov.Core().compile_model(model, "CPU", config)


def quantize_int8(model: Any, batches: Sequence[dict[str, np.ndarray]], ignored: Iterable[str] = ()) -> Any:
    """Static int8 (NNCF post-training quantization) calibrated on `batches`.

    `model_type=TRANSFORMER` keeps the numerically delicate parts (softmax inputs, layer norms)
    out of int8; `ignored` names further operations to leave in full precision.
    """
    import nncf

    dataset = nncf.Dataset(list(batches))
    scope = nncf.IgnoredScope(names=list(ignored), validate=False) if ignored else None
    return nncf.quantize(
        model,
        dataset,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(batches),
        ignored_scope=scope,
    )


def matmul_names(model: Any) -> list[str]:
    """Friendly names of the model's MatMul operations (for ignored scopes)."""
    return [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul"]


# int8 networks, and bf16 ones with an fp32 tail, get batches padded to a width that is a multiple
# of this. oneDNN builds a kernel per shape (AMX tiles are 16 rows): fewer distinct widths, each
# tile-aligned. MiniLM-L6 on 2 Sapphire Rapids cores, TREC batches never seen before: int8
# feed-forward 175 -> 343 pairs/s. Plain bf16 is not padded: aligned widths ran it 1.2x faster but
# moved its ranking further from fp32 (Kendall tau 0.9884 -> 0.9875 on TREC DL 2019), below what
# OpenVINO's own bf16 keeps; with an fp32 tail they do not (0.9938 -> 0.9939). fp32 gained nothing.
PADDED_WIDTH_MULTIPLE = 16


class CompiledNetwork:
    """A compiled OpenVINO model called like the torch graph it came from: named tensors in, one tensor out.

    Used from one thread at a time (the compute thread; calibration before the model serves).
    With `width_multiple` > 1 the batch is right-padded (mask 0) to a multiple of it first: the
    graph returns one row per unit, and masked positions change no unit's row.
    The output is copied: OpenVINO reuses its output buffer on the next call.
    """

    def __init__(self, compiled: Any, input_names: Sequence[str], width_multiple: int = 1) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._inputs = tuple(input_names)
        self.width_multiple = width_multiple  # set again to re-batch the same compiled network

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: inputs[name].numpy() for name in self._inputs}
        extra = -feed[self._inputs[0]].shape[1] % self.width_multiple
        if extra:
            feed = {name: np.pad(array, ((0, 0), (0, extra))) for name, array in feed.items()}
        output = self._run(feed)
        return torch.from_numpy(np.array(output, dtype=np.float32, copy=True))

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._request.infer(feed)[0]


# The last encoder layer's attention output (after its LayerNorm), where `split_at_last_attention` cuts.
_LAST_ATTENTION = re.compile(r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm/")


def split_at_last_attention(model: Any) -> tuple[Any, Any] | None:
    """The graph cut after the last layer's attention: (body, tail), or None where that cannot be done cheaply.

    The body reads the inputs and returns the last layer's attention output; the tail reads that
    (input `hidden`) and runs the rest: that layer's feed-forward block and the head. Offered only
    where the first-token last layer made that output one row per unit (`[batch, 1, hidden]`), so
    the tail is a few small products whatever the precision it runs in. BERT-style module names
    (`encoder.layer.N.attention.output.LayerNorm`: BERT, RoBERTa, XLM-R, ELECTRA) locate the cut.
    """
    cut = _last_attention_output(model)
    if cut is None:
        return None
    shape = cut.get_partial_shape()
    if shape.rank.get_length() != 3 or shape[1].get_max_length() != 1:  # [batch, ..1, hidden]: one row per unit
        return None
    import openvino as ov

    body_source, tail_source = model.clone(), model.clone()  # each half rewires its own copy
    body = ov.Model([_last_attention_output(body_source)], body_source.get_parameters(), "body")
    tail_cut = _last_attention_output(tail_source)
    assert tail_cut is not None
    hidden = ov.opset13.parameter(tail_cut.get_partial_shape(), ov.Type.f32, name="hidden")
    hidden.output(0).get_tensor().set_names({"hidden"})
    for target in list(tail_cut.get_target_inputs()):
        target.replace_source_output(hidden.output(0))
    tail = ov.Model(tail_source.outputs, [hidden], "tail")
    return body, tail


def _last_attention_output(model: Any) -> Any | None:
    """The output of the last layer's attention LayerNorm: its last operation feeding anything outside it."""
    found = []
    for op in model.get_ordered_ops():
        if match := _LAST_ATTENTION.search(op.get_friendly_name()):
            found.append((int(match.group(1)), op))
    if not found:
        return None
    last = max(layer for layer, _ in found)
    prefix = f"encoder.layer.{last}.attention.output.LayerNorm/"
    for _, op in reversed([(layer, op) for layer, op in found if layer == last]):
        consumers = [target.get_node().get_friendly_name() for target in op.output(0).get_target_inputs()]
        if consumers and any(prefix not in name for name in consumers):
            return op.output(0)
    return None


class ChainedNetwork(CompiledNetwork):
    """A body and a tail compiled apart (e.g. bf16 and fp32) called as one network."""

    def __init__(self, body: Any, tail: Any, input_names: Sequence[str], width_multiple: int = 1) -> None:
        super().__init__(body, input_names, width_multiple)
        self._tail = tail.create_infer_request()

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        hidden = self._request.infer(feed)[0]
        return self._tail.infer({"hidden": hidden})[0]
