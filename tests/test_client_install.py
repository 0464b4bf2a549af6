"""`pip install rerankd` is the SDK alone: no torch, transformers or numpy; `rerankd[server]` is the engine.

The real check builds rerankd's wheel, installs it with pip into a fresh venv (its declared
requirements come from the package index, as a user's would), and from there talks to a live
server and runs the commands that need the engine.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rerankd.extras import SERVER_INSTALL, missing_server_packages

ROOT = Path(__file__).resolve().parents[1]
SDK_REQUIREMENTS = {"httpx", "msgpack"}
ENGINE = {"torch", "transformers", "numpy", "tokenizers", "openvino"}


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def test_the_base_requirements_are_the_sdks_and_every_other_extra_brings_the_server() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {requirement_name(r) for r in project["dependencies"]} == SDK_REQUIREMENTS
    extras = project["optional-dependencies"]
    assert {requirement_name(r) for r in extras["server"]} >= ENGINE
    for name in ("demo", "test", "bench", "lora"):
        assert "rerankd[server]" in extras[name], name


def test_this_venv_has_the_server_extra() -> None:
    """The dev install is `.[server,...]`: nothing missing, so the commands are not refused here."""
    unconditional = [r for r in importlib.metadata.requires("rerankd") or [] if "extra ==" not in r]
    assert {requirement_name(r) for r in unconditional} == SDK_REQUIREMENTS  # the metadata pip reads
    assert missing_server_packages() == []


SDK_CHECK = r"""
import importlib.util, json, sys
from rerankd import AsyncClient, Client, Item, APIError
with Client(sys.argv[1]) as client:
    result = client.score("sentence-transformers/all-MiniLM-L6-v2", Item(text="what do pandas eat"),
                          [Item(id="a", text="Python is a language."), Item(id="b", text="Pandas eat bamboo.")])
    try:
        client.score("no-such-model", Item(text="q"), [Item(text="d")])
        error = None
    except APIError as exc:
        error = exc.code
print(json.dumps({"best": result.scores[0].item_id, "error": error, "modules": sorted(
    name for name in ("torch", "transformers", "numpy", "starlette", "uvicorn", "tokenizers", "openvino")
    if importlib.util.find_spec(name) is not None), "loaded": sorted(
    name for name in ("torch", "numpy", "rerankd.engine", "rerankd.api") if name in sys.modules)}))
"""


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install <rerankd wheel>` and nothing else (the wheel built from a copy of the tree)."""
    root = tmp_path_factory.mktemp("bare-install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "wheels"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "wheels").glob("rerankd-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    installed = subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", str(wheel)], capture_output=True, text=True
    )
    if installed.returncode != 0 and re.search(
        r"NewConnectionError|Could not fetch URL|name resolution", installed.stderr
    ):
        pytest.skip(f"the package index is unreachable: {installed.stderr.strip().splitlines()[-1]}")
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_bare_install_holds_the_sdk_and_no_engine(bare_venv: Path) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bare_venv / "bin" / "python"), "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {requirement_name(entry) for entry in re.findall(r'"name": "([^"]+)"', listing)}
    assert {"rerankd", *SDK_REQUIREMENTS} <= names
    assert not names & (ENGINE | {"starlette", "uvicorn", "safetensors", "huggingface-hub", "msgspec"}), names


def test_the_bare_sdk_talks_to_a_server(bare_venv: Path, quickstart_server) -> None:
    completed = subprocess.run(
        [str(bare_venv / "bin" / "python"), "-c", SDK_CHECK, quickstart_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert answer == {"best": "b", "error": "MODEL_NOT_FOUND", "modules": [], "loaded": []}, answer
    no_torch = subprocess.run([str(bare_venv / "bin" / "python"), "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr


@pytest.mark.parametrize(
    "command",
    [["serve"], ["serve", "--memory-budget", "6GB"], ["score", "--model", "m", "--query", "q", "d"], ["bench"]],
    ids=["serve", "serve-with-sizes", "score", "bench"],
)
def test_engine_commands_say_what_to_install(bare_venv: Path, command: list[str]) -> None:
    completed = subprocess.run([str(bare_venv / "bin" / "rerankd"), *command], capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and SERVER_INSTALL in lines[0] and "torch" in lines[0], completed.stderr
    assert lines[0].startswith(f"rerankd {command[0]} needs the server")


def test_help_works_without_the_engine(bare_venv: Path) -> None:
    for command in (["--help"], ["serve", "--help"], ["--version"]):
        completed = subprocess.run([str(bare_venv / "bin" / "rerankd"), *command], capture_output=True, text=True)
        assert completed.returncode == 0, (command, completed.stderr)
        assert "Traceback" not in completed.stderr
