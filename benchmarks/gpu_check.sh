#!/usr/bin/env bash
# GPU check for rerankd, for a GPU machine with PyTorch but no package index (see README
# "Benchmarks"). Prepare on a machine with the index and ../shared/data:
#   benchmarks/prepare_gpu_assets.sh        # wheels + tokenizers + TREC DL 2019 into .gpu-assets/
# then on the GPU machine, from the repository root (about 5 minutes):
#   OUT=/some/folder benchmarks/gpu_check.sh
# Dry run on a CPU machine (checks the wiring, not the GPU):
#   MODELS=minilm BENCH_ARGS=--quick benchmarks/gpu_check.sh
# It benches a MiniLM-L6-sized and a bge-reranker-v2-m3-sized (XLM-R large, 568M) random
# cross-encoder: engine, HTTP server at concurrency 1-8 and the sentence-transformers baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-results/gpu}
ASSETS=.gpu-assets
MODELS=${MODELS:-minilm,xlmr-large}
BENCH_ARGS=${BENCH_ARGS:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ls "$ASSETS"/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/rerankd-site \
    --find-links "$ASSETS/wheels" starlette uvicorn msgspec swagger-ui-py prometheus-client scipy
  export PYTHONPATH=/tmp/rerankd-site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
python3 -c "import torch, rerankd, starlette, uvicorn, msgspec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt" || true

CKPT=/tmp/rerankd-checkpoints
python3 benchmarks/make_checkpoints.py --assets "$ASSETS" --out "$CKPT" --which "$MODELS" | tee "$OUT/checkpoints.txt"
export RERANKD_BENCH_DATA=$ASSETS/retrieve_results_dl19.json

# MiniLM-sized: every query (43 requests of 100 passages) per mode.
if [[ ,$MODELS, == *,minilm,* ]]; then
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
  timeout 200 python3 -m rerankd.cli bench --model "minilm=$CKPT/minilm" --concurrency 1,2,4,8 \
    --precisions exact --peers st-torch-fp32 $BENCH_ARGS \
    --out "$OUT/minilm" 2>&1 | tee "$OUT/minilm.txt"
fi
# XLM-R large (bge-reranker-v2-m3-sized) in fp16: 43 requests per mode.
if [[ ,$MODELS, == *,xlmr-large,* ]]; then
  # shellcheck disable=SC2086
  timeout 240 python3 -m rerankd.cli bench --model "BAAI/bge-reranker-v2-m3=$CKPT/xlmr-large" --concurrency 1,2,4,8 \
    --precisions exact --peers st-torch-fp32 $BENCH_ARGS --out "$OUT/xlmr-large" 2>&1 | tee "$OUT/xlmr-large.txt"
fi
echo "results in $OUT"
