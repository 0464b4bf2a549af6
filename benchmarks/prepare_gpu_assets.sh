#!/usr/bin/env bash
# Gather what benchmarks/gpu_check.sh needs on a GPU machine with no package index:
# wheels of rerankd's server dependencies absent from a PyTorch image, the BERT and XLM-R
# tokenizers, and the TREC DL 2019 passages. Run from the repository root, with the venv active.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=.gpu-assets
SHARED=${SHARED_DATA:-../shared/data}
mkdir -p "$ASSETS/wheels" "$ASSETS/bert" "$ASSETS/xlm-roberta"
grep -qx '/.gpu-assets/' .git/info/exclude 2>/dev/null || echo '/.gpu-assets/' >> .git/info/exclude
# msgspec is compiled: one wheel per Python the GPU image may have (pip picks the one that fits).
for version in 3.11 3.12 3.13; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$ASSETS/wheels" starlette uvicorn msgspec swagger-ui-py prometheus-client scipy
done
python3 - "$ASSETS/bert" <<'PY'
import sys
from pathlib import Path
from rerankd.bench.checkpoints import copy_tokenizer_files, require_minilm_dir
copy_tokenizer_files(require_minilm_dir(), Path(sys.argv[1]))
PY
cp "$SHARED/tokenizers/xlm-roberta/tokenizer.json" "$ASSETS/xlm-roberta/"
cp "$SHARED/trec-dl-2019/retrieve_results_dl19.json" "$ASSETS/"
du -sh "$ASSETS"
