#!/usr/bin/env bash
# Build .venv-peers: the engines `rerankd bench` compares with (sentence-transformers with its torch,
# ONNX Runtime and OpenVINO backends, int8 included), in a venv of their own.
#
# They cannot share rerankd's venv: optimum-onnx and optimum-intel need transformers < 5 (and
# optimum-intel 2.2 torchvision, which does not install beside this torch), rerankd needs >= 5.
# rerankd finds this venv as .venv-peers/bin/python (or --peers-python / $RERANKD_PEERS_PYTHON).
#
#   benchmarks/make_peers_venv.sh            # in the project root; PYTHON=python3.11 to choose
#   VENV=/elsewhere benchmarks/make_peers_venv.sh
#
# openvino-telemetry (which OpenVINO and NNCF pull in) sends usage data home: it is uninstalled
# here, and the bench's peer runner also blocks its import and runs with telemetry switched off.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-peers}
TORCH=${TORCH:-torch==2.13.0}  # the CPU build rerankd is tested with; never let pip pick another

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "$TORCH" >"$constraints"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "$TORCH"
"$VENV/bin/pip" install -q "sentence-transformers[onnx,openvino]" datasets "huggingface-hub<1.0" -c "$constraints"
"$VENV/bin/pip" uninstall -q -y openvino-telemetry

# The result: what each peer needs imports, telemetry does not.
"$VENV/bin/python" - <<'PY'
import importlib.util
import sys

assert importlib.util.find_spec("openvino_telemetry") is None, "openvino-telemetry is still installed"
sys.modules["openvino_telemetry"] = None
import onnxruntime, openvino, optimum.intel, optimum.onnxruntime, sentence_transformers, torch, transformers  # noqa

print(
    f"peers venv ready: sentence-transformers {sentence_transformers.__version__}, "
    f"transformers {transformers.__version__}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
    f"openvino {openvino.__version__}"
)
PY
