"""The official `sie-sdk` client (Python >= 3.12, in its own venv) works against rerankd unchanged.

`.ci/run` builds that venv at `.venv-sie`; elsewhere point RERANKD_SIE_PYTHON at a Python
that has `sie-sdk` installed, or the test skips.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.reference import cross_encoder_scores

ROOT = Path(__file__).resolve().parents[1]

SIE_SCRIPT = r"""
import json, sys
from sie_sdk import SIEClient
request = json.load(sys.stdin)
client = SIEClient(request["url"])
result = client.score(
    request["model"], {"text": request["query"]},
    [{"id": str(i), "text": d} for i, d in enumerate(request["documents"])],
)
top = client.score(request["model"], {"text": request["query"]},
                   [{"text": d} for d in request["documents"]], options={"top_k": 3})
try:
    client.score("no-such-model", {"text": "q"}, [{"text": "d"}])
    error = None
except Exception as exc:
    error = type(exc).__name__ + ": " + str(exc)
json.dump({"scores": [dict(s) for s in result["scores"]], "model": result["model"],
           "usage": result.get("usage"), "top": [dict(s) for s in top["scores"]], "error": error}, sys.stdout)
"""


def sie_python() -> str:
    candidate = os.environ.get("RERANKD_SIE_PYTHON") or str(ROOT / ".venv-sie" / "bin" / "python")
    if not Path(candidate).exists():
        pytest.skip("no Python with sie-sdk (set RERANKD_SIE_PYTHON or run .ci/run)")
    probe = subprocess.run([candidate, "-c", "import sie_sdk"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{candidate} cannot import sie_sdk")
    return candidate


def test_sie_sdk_score_matches_cross_encoder(server, minilm_cross_encoder_dir, trec):
    python = sie_python()
    query = trec[0]
    payload = {"url": server.url, "model": "minilm", "query": query.query, "documents": query.documents}
    completed = subprocess.run(
        [python, "-c", SIE_SCRIPT], input=json.dumps(payload), capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    scores = answer["scores"]
    assert answer["model"] == "minilm"
    assert len(scores) == 100
    assert [s["rank"] for s in scores] == list(range(100))
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    got = np.empty(100)
    for entry in scores:
        got[int(entry["item_id"])] = entry["score"]
    reference = cross_encoder_scores(minilm_cross_encoder_dir, query.query, query.documents)
    print(f"\nsie-sdk vs CrossEncoder.predict: 100 TREC passages, max |Δ| {np.abs(got - reference).max():.1e}")
    assert np.abs(got - reference).max() <= 1e-3
    assert answer["usage"]["input_tokens"] > 0
    assert [s["item_id"] for s in answer["top"]] == [f"item-{int(s['item_id'])}" for s in scores[:3]]
    assert answer["error"] is not None and "no-such-model" in answer["error"]
