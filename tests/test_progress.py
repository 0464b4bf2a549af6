"""What a person sees while rerankd works for a long time: model loads, downloads, bench modes."""

from __future__ import annotations

import io
import re

import pytest
import torch

from rerankd.bench.progress import Progress
from rerankd.models.hf import load_network
from rerankd.models.runtime import Placement


def test_a_long_bench_mode_reports_requests_done_and_time_left() -> None:
    stream = io.StringIO()
    tick = Progress(stream).ticker("HTTP (exact) c=8", 3, every=0)  # every=0: a line after each request
    for _ in range(3):
        tick()
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert [line.split(", about")[0] for line in lines] == [
        "  HTTP (exact) c=8: 1/3 requests",
        "  HTTP (exact) c=8: 2/3 requests",
    ]
    assert all(re.search(r", about \d+s left$", line) for line in lines)  # none after the last: the stage's own line


def test_loading_a_model_leaves_download_progress_bars_on(tmp_path, monkeypatch) -> None:
    """transformers' disable_progress_bar() also silenced huggingface_hub: every download after the first
    load (a --lazy model, a PUT, an on-demand catalog id) ran for minutes without a bar.

    A load of a directory without weights is enough: the bars are set before any weight is read."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers import AutoModel

    if are_progress_bars_disabled():
        monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
        enable_progress_bars()
        if are_progress_bars_disabled():
            pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS is set for this process")
    (tmp_path / "config.json").write_text('{"model_type": "bert", "num_hidden_layers": 1}')
    with pytest.raises(OSError, match=r"model\.safetensors|pytorch_model\.bin|weights"):
        load_network(AutoModel, tmp_path, Placement(torch.device("cpu"), torch.float32))
    assert not are_progress_bars_disabled()


def test_serve_says_which_model_loads_when_it_starts_and_how_long_it_took(quickstart_server) -> None:
    log = quickstart_server.log
    model = "sentence-transformers/all-MiniLM-L6-v2"
    started = log.index(f"loading model {model} from {model} ...")
    finished = re.search(rf"model {re.escape(model)} loaded from .* in \d+\.\ds", log)
    assert finished is not None and started < finished.start()
