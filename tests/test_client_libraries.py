"""The client libraries RAG teams already run rank exactly like rerankd's own `/v1/score`.

The code under test is the README's: every block after a `<!-- tested: NAME -->` marker runs,
against a live quick-start `rerankd serve` (no arguments: all-MiniLM-L6-v2). Cohere's SDK, LangChain,
LlamaIndex, Haystack and the SIE integrations run in their own venv (`.venv-clients`, built by
`tests/clients/make_clients_venv.sh`; `.ci/run` builds it), through `tests/clients/run_snippets.py`,
which refuses and records every connection that is not to loopback. Each snippet prints
`score text` lines, best first; they must match `/v1/score` for the same texts (scores within float
noise, order with ties as ties), and the server must be the only address any library contacted.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.ranking import assert_same_ranking

from rerankd.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CLIENTS_VENV = ROOT / ".venv-clients"
RUNNER = ROOT / "tests" / "clients" / "run_snippets.py"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
README_URL = "http://localhost:8080"
TOLERANCE = 1e-5  # the same texts scored in other requests (other batches): float noise only
TOP_N = 3  # every snippet asks for the best three
SHELL_EXAMPLES = ["curl-score", "curl-rerank", "cli-score"]

LIBRARY_SNIPPETS = [
    "cohere",
    "langchain-cohere",
    "llamaindex-cohere",
    "llamaindex-tei",
    "haystack-tei",
    "haystack-cohere",
    "sie-sdk",
    "sie-langchain",
    "sie-llamaindex",
    "sie-haystack",
]
HAYSTACK_3_IMPORT = "from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker"
HAYSTACK_2_IMPORT = "from haystack.components.rankers import HuggingFaceTEIRanker"
TELEMETRY_OFF = 'os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"'


def readme_blocks() -> dict[str, str]:
    """`{name: code}` of every fenced block right after a `<!-- tested: name -->` marker."""
    text = README.read_text()
    return dict(re.findall(r"<!-- tested: ([\w-]+) -->\n```\w+\n(.*?)```", text, flags=re.DOTALL))


def test_readme_marks_every_tested_snippet() -> None:
    """A snippet dropped from the README (or renamed) must not silently leave the suite."""
    assert set(readme_blocks()) == {"input", *LIBRARY_SNIPPETS, "rerankd-sdk", *SHELL_EXAMPLES}


@pytest.fixture(scope="module")
def inputs() -> tuple[str, list[str]]:
    namespace: dict = {}
    exec(readme_blocks()["input"], namespace)
    documents = namespace["documents"]
    assert len(set(documents)) == len(documents) > TOP_N  # printed texts map back to one index each
    return namespace["query"], documents


@pytest.fixture(scope="module")
def reference(quickstart_server, inputs) -> np.ndarray:
    """rerankd's own `/v1/score` answer, as scores by document index."""
    query, documents = inputs
    response = httpx.post(
        f"{quickstart_server.url}/v1/score/{MODEL}",
        json={"query": {"text": query}, "items": [{"text": d} for d in documents]},
        timeout=60,
    )
    response.raise_for_status()
    scores = np.empty(len(documents))
    for entry in response.json()["scores"]:
        scores[entry["index"]] = entry["score"]
    return scores


# ------------------------------------------------------------------ the libraries, in their venv


def clients_python() -> Path:
    python = CLIENTS_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no {CLIENTS_VENV.name} (build it with tests/clients/make_clients_venv.sh, as .ci/run does)")
    return python


class Runner:
    """One process of `run_snippets.py`: started at once (it imports `preload` meanwhile), sent its snippets later.

    `overlays` (folders of the venv's `overlays/`) go first on its path.
    """

    def __init__(self, python: Path, home: Path, *, preload: tuple[str, ...] = (), overlays: tuple[str, ...] = ()):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # caches and Haystack's telemetry id land here, not in the developer's home
            "HF_HUB_OFFLINE": "1",
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
        }
        folders = [CLIENTS_VENV / "overlays" / name for name in overlays]
        for folder in folders:
            if not folder.is_dir():
                pytest.skip(f"no {folder} (rebuild the venv with tests/clients/make_clients_venv.sh)")
        if folders:
            env["PYTHONPATH"] = os.pathsep.join(map(str, folders))
        self.stderr = home / "stderr.txt"
        with self.stderr.open("w") as stderr:
            self.process = subprocess.Popen(
                [str(python), str(RUNNER), *preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )

    def send(self, url: str, snippets: dict[str, str]) -> None:
        blocks = readme_blocks()
        request = {"url": url, "preamble": blocks["input"], "snippets": snippets, "versions": ["cohere", "haystack-ai"]}
        self.process.stdin.write(json.dumps(request))  # small: the pipe takes it without blocking
        self.process.stdin.close()

    def result(self) -> dict:
        stdout = self.process.stdout.read()
        self.process.wait(timeout=300)
        assert self.process.returncode == 0, f"exit {self.process.returncode}\n{self.stderr.read_text()}"
        return json.loads(stdout)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every snippet once, in three processes at the same time, started while the server starts.

    `pinned`: the venv as pinned (cohere 5.x, Haystack 3.x); `overlays`: the newest Cohere SDK and
    Haystack 2.x; `telemetry-on`: the Haystack snippet without its telemetry line, the guard's control.
    """
    python = clients_python()
    blocks = readme_blocks()
    haystack = blocks["haystack-tei"]
    assert HAYSTACK_3_IMPORT in haystack and TELEMETRY_OFF in haystack
    home = tmp_path_factory.mktemp
    libraries = ("cohere", "langchain_classic.retrievers", "langchain_cohere", "llama_index.core", "sie_sdk")
    runners = {
        "pinned": Runner(python, home("pinned"), preload=libraries),
        "overlays": Runner(python, home("overlays"), preload=("cohere",), overlays=("cohere-7", "haystack-2")),
        "telemetry-on": Runner(python, home("telemetry-on")),
    }
    try:
        url = request.getfixturevalue("quickstart_server").url
    except BaseException:
        for runner in runners.values():
            runner.process.kill()
        raise
    runners["pinned"].send(url, {name: blocks[name] for name in LIBRARY_SNIPPETS})
    runners["overlays"].send(
        url, {"cohere": blocks["cohere"], "haystack-tei": haystack.replace(HAYSTACK_3_IMPORT, HAYSTACK_2_IMPORT)}
    )
    runners["telemetry-on"].send(url, {"haystack-tei": haystack.replace(TELEMETRY_OFF, "")})
    return {name: runner.result() for name, runner in runners.items()}


def printed_ranking(printed: str, documents: list[str]) -> tuple[list[int], list[float]]:
    """The `score text` lines a snippet printed, as document indices and scores (best first)."""
    order, scores = [], []
    for line in printed.splitlines():
        score, _, text = line.partition(" ")
        order.append(documents.index(text))
        scores.append(float(score))
    return order, scores


CASES = [("pinned", name) for name in LIBRARY_SNIPPETS] + [("overlays", "cohere"), ("overlays", "haystack-tei")]


@pytest.mark.parametrize(("run", "snippet"), CASES, ids=[f"{run}:{snippet}" for run, snippet in CASES])
def test_snippet_ranks_like_v1_score(run: str, snippet: str, runs, reference, inputs) -> None:
    result = runs[run]
    assert snippet not in result["failed"], result["failed"][snippet]
    order, scores = printed_ranking(result["printed"][snippet], inputs[1])
    assert len(order) == TOP_N
    assert np.abs(np.array(scores) - reference[order]).max() <= TOLERANCE, (scores, reference[order])
    assert_same_ranking(order, reference, TOLERANCE, top_k=TOP_N)


def test_the_overlays_run_the_versions_they_name(runs) -> None:
    assert runs["pinned"]["versions"]["cohere"].startswith("5.")
    assert runs["pinned"]["versions"]["haystack-ai"].startswith("3.")
    assert runs["overlays"]["versions"]["cohere"].startswith("7.")
    assert runs["overlays"]["versions"]["haystack-ai"].startswith("2.")


def test_no_library_contacts_anything_but_the_server(runs, quickstart_server) -> None:
    for name in ("pinned", "overlays"):
        assert runs[name]["blocked"] == [], name
        assert runs[name]["connections"] == [f"127.0.0.1:{quickstart_server.port}"], name


def test_the_guard_catches_haystack_telemetry_left_on(runs, reference, inputs) -> None:
    """The control: without the README's telemetry line Haystack calls PostHog, and the guard sees it."""
    control = runs["telemetry-on"]
    assert "haystack-tei" not in control["failed"], control["failed"]["haystack-tei"]
    assert any("posthog.com" in attempt for attempt in control["blocked"]), control["blocked"]
    order, _ = printed_ranking(control["printed"]["haystack-tei"], inputs[1])
    assert_same_ranking(order, reference, TOLERANCE, top_k=TOP_N)


# ------------------------------------------------------------------ the README's other snippets


def test_readme_sdk_snippet(quickstart_server) -> None:
    """The Python SDK section, as written, against the quick-start server."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(readme_blocks()["rerankd-sdk"].replace(README_URL, quickstart_server.url), {})
    best_id, (score, usage), (index, relevance, text) = (
        out.getvalue().splitlines()[0],
        out.getvalue().splitlines()[1].split(" ", 1),
        out.getvalue().splitlines()[2].split(" ", 2),
    )
    assert best_id == "0"
    assert 0 < float(score) <= 1 and "input_tokens" in usage
    assert (index, text) == ("0", "ML learns from data.") and float(relevance) > 0


def run_shell_example(block: str, url: str) -> str:
    """What the example prints: curl with the live server's address; `rerankd ...` through `cli.main` in
    this process (the same parser and code as the console script, without a second torch start-up)."""
    if not block.startswith("rerankd "):
        command = block.replace("http://localhost:8080", url).replace("localhost:8080", url.removeprefix("http://"))
        completed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout
    command = " ".join(line for line in block.splitlines() if not line.startswith("#")).replace("\\ ", " ")
    registry_log = logging.getLogger("rerankd.registry")
    level = registry_log.level
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            assert main(shlex.split(command)[1:]) == 0
    finally:
        registry_log.setLevel(level)  # `score` turns its load lines on for the process
    return out.getvalue()


@pytest.mark.parametrize("name", SHELL_EXAMPLES)
def test_readme_shell_example_answers_what_it_shows(name: str, quickstart_server) -> None:
    """The HTTP and `rerankd score` examples run as written, and every number in their `# {...}` is true."""
    if name.startswith("curl") and shutil.which("curl") is None:
        pytest.skip("no curl")
    block = readme_blocks()[name]
    answer = json.loads(run_shell_example(block, quickstart_server.url))
    assert "error" not in answer, answer
    shown = "\n".join(line for line in block.splitlines() if line.startswith("#"))
    numbers: dict[str, list] = {}

    def walk(value) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(child, (int, float)) and not isinstance(child, bool):
                    numbers.setdefault(key, []).append(child)
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(answer)
    seen: dict[str, int] = {}
    checked = 0
    for key, text in re.findall(r'"(\w+)": (-?\d+(?:\.\d+)?)', shown):
        position = seen.get(key, 0)
        seen[key] = position + 1
        actual = numbers[key][position]
        decimals = len(text.partition(".")[2])
        assert round(actual, decimals) == float(text), f"{key}: README shows {text}, the server says {actual}"
        checked += 1
    assert checked >= 3
