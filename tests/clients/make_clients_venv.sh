#!/usr/bin/env bash
# Build .venv-clients: the client libraries RAG teams point at rerankd (Cohere's SDK, LangChain, LlamaIndex,
# Haystack, the SIE integrations), which tests/test_client_libraries.py runs against a live `rerankd serve`.
#
# They cannot share rerankd's venv: they pull langchain-core, pydantic, openai, posthog and numpy 2 pins
# rerankd does not need, and sie-sdk needs Python >= 3.12. The versions are pinned in requirements.txt.
# Two newer/older majors that cannot install beside those pins are overlays: `pip install --no-deps
# --target` folders the test puts first on PYTHONPATH for the snippets that use them:
#   overlays/cohere-7    the newest Cohere SDK (what `pip install cohere` gives; langchain-cohere pins < 6)
#   overlays/haystack-2  Haystack 2.x, whose core still holds HuggingFaceTEIRanker (3.x moved it out)
# Their own requirements are all met by the venv (checked below with `pip check`-like metadata reads).
#
#   tests/clients/make_clients_venv.sh          # in the project root; PYTHON=python3.13 to choose
#   VENV=/elsewhere tests/clients/make_clients_venv.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ -z "${PYTHON:-}" ]]; then
  if PYENV_VERSION=3.12.1 python3.12 --version >/dev/null 2>&1; then
    PYTHON="env PYENV_VERSION=3.12.1 python3.12"
  else
    PYTHON=python3.12
  fi
fi
VENV=${VENV:-.venv-clients}
HERE=tests/clients

$PYTHON -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
rm -rf "$VENV/overlays"
"$VENV/bin/pip" install -q --no-deps --target "$VENV/overlays/cohere-7" "cohere==7.3.1"
"$VENV/bin/pip" install -q --no-deps --target "$VENV/overlays/haystack-2" "haystack-ai==2.31.0" "haystack-experimental==0.19.0.post1"

# The result: every library imports, each overlay shadows its package, and an overlay's requirements
# (read from its own metadata) are satisfied by what the venv holds.
"$VENV/bin/python" - "$VENV/overlays" <<'PY'
import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

overlays = Path(sys.argv[1])
for folder, distribution in (("cohere-7", "cohere"), ("haystack-2", "haystack-ai")):
    here = [str(overlays / folder)]
    (info,) = [d for d in metadata.distributions(path=here) if d.name == distribution]
    for requirement in info.requires or []:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        if "extra ==" not in requirement and not list(metadata.distributions(name=name, path=here)):
            metadata.version(name)  # PackageNotFoundError: neither the overlay nor the venv holds it
    probe = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    version = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": str(overlays / folder)}, capture_output=True, text=True
    ).stdout.strip()
    assert version == info.version, (folder, version, info.version)

import cohere, haystack, langchain_classic, langchain_cohere, llama_index.core, sie_sdk  # noqa: E401,F401
import haystack_integrations.components.rankers.huggingface_api  # noqa: F401
import llama_index.postprocessor.cohere_rerank, llama_index.postprocessor.tei_rerank  # noqa: E401,F401
import sie_haystack, sie_langchain, sie_llamaindex  # noqa: E401,F401

print(
    f"clients venv ready: cohere {cohere.__version__} (+7 overlay), langchain-cohere {metadata.version('langchain-cohere')}, "
    f"llama-index-core {metadata.version('llama-index-core')}, haystack-ai {metadata.version('haystack-ai')} "
    f"(+2 overlay), sie-sdk {metadata.version('sie-sdk')}"
)
PY
# .ci/run rebuilds the venv when the pins change.
cp "$HERE/requirements.txt" "$VENV/requirements.txt"
