"""Hot-swap, LRU eviction, unload and adapter removal under concurrent, cancelled requests.

Every iteration fires a handful of concurrent requests: short ones that run to their answer,
and long ones (many small batches) that the client cancels at a random moment, which ends
their hold on the model while their batches may still be queued on the compute thread. At a
random moment among them comes one lifecycle change: a hot-swap of
model `m` between checkpoints A and B, a request for model `n` that must evict `m`
(`--max-loaded-models 1`), `DELETE` of `m` (then re-added), or `DELETE`/replacement of adapter
`m:x`. Whatever the timing: no request fails, every answer is entirely one version's scores
(never a mix), and no batch ever runs on weights that were freed (a batch that fails is logged;
the server log must show none).

The checks are bounded by work (iterations), never by time; `slow` runs the long form.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.encoder_checkpoints import build_bert_cross_encoder
from support.lifecycle import DOCUMENTS, QUERY, TIMEOUT, score_body, scores_by_index
from support.lora import build_lora_adapter
from support.reference import cross_encoder_scores

from rerankd.bench.server import RunningServer, die_with_parent

# A short request is DOCUMENTS; a long one repeats them (many batches: the server runs 64-token batches).
LONG = DOCUMENTS * 10
OPERATIONS = ("swap", "evict", "delete-model", "replace-adapter", "delete-adapter")


@dataclass
class Outcome:
    model: str
    status: int | None  # None: the client cancelled it
    scores: np.ndarray | None = None
    code: str | None = None
    detail: str = ""


@pytest.fixture(scope="module")
def stress_setup(tmp_path_factory: pytest.TempPathFactory, minilm_bi_encoder_dir: Path) -> dict:
    """Three tiny BERT cross-encoders (A, B: the two versions of `m`; C: model `n`) and a LoRA adapter."""
    root = tmp_path_factory.mktemp("stress")
    paths = {
        name: build_bert_cross_encoder(root / name, minilm_bi_encoder_dir, seed=seed)
        for name, seed in (("A", 31), ("B", 32), ("C", 33))
    }
    adapter, _ = build_lora_adapter(paths["A"], root / "x", seed=34, targets=("query", "value"), perturb_head=True)
    return {"paths": paths, "adapter": adapter}


@pytest.fixture(scope="module")
def stress_server(start_server: Callable[..., RunningServer], stress_setup: dict) -> RunningServer:
    paths = stress_setup["paths"]
    server = start_server(
        "--admin-api",
        "--model",
        f"m={paths['A']}",
        "--model",
        f"n={paths['C']}",
        "--lazy",
        "--max-loaded-models",
        "1",
        "--max-batch-tokens",
        "64",
    )
    put_adapter(server.url, stress_setup["adapter"])
    return server


def put_adapter(url: str, source: Path) -> None:
    response = httpx.put(f"{url}/v1/models/m/adapters/x", json={"source": str(source)}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text


def quiet_scores(url: str, model: str) -> np.ndarray:
    response = httpx.post(f"{url}/v1/score/{model}", json=score_body(), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return scores_by_index(response.json())


@pytest.fixture(scope="module")
def references(stress_server: RunningServer, stress_setup: dict) -> dict[str, np.ndarray]:
    """Each version's scores, read on a quiet server: A and B (model m), A+x and B+x, C (model n)."""
    url, paths = stress_server.url, stress_setup["paths"]
    found = {"A": quiet_scores(url, "m"), "A+x": quiet_scores(url, "m:x")}
    swap(url, paths["B"])
    found |= {"B": quiet_scores(url, "m"), "B+x": quiet_scores(url, "m:x"), "C": quiet_scores(url, "n")}
    swap(url, paths["A"])
    expected = cross_encoder_scores(paths["A"], QUERY, DOCUMENTS)
    assert np.abs(found["A"] - expected).max() <= 1e-4  # the server's own scores are the reference model's
    names = list(found)
    for i, first in enumerate(names):  # every version is told apart from every other by its scores
        for second in names[i + 1 :]:
            assert np.abs(found[first] - found[second]).max() > 1e-2, (first, second)
    return found


def swap(url: str, source: Path) -> None:
    response = httpx.put(f"{url}/v1/models/m", json={"source": str(source)}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text


async def score(http: httpx.AsyncClient, model: str, documents: list[str] = DOCUMENTS) -> Outcome:
    """One request; a task running this may be cancelled, which hangs up on the server."""
    try:
        response = await http.post(f"/v1/score/{model}", json=score_body(documents))
    except httpx.HTTPError as error:
        return Outcome(model, 0, detail=repr(error))
    if response.status_code != 200:
        code = response.headers.get("x-error-code")
        return Outcome(model, response.status_code, code=code, detail=response.text[:300])
    return Outcome(model, 200, scores=scores_by_index(response.json()))


async def lifecycle_change(http: httpx.AsyncClient, operation: str, state: dict, stress_setup: dict) -> None:
    """One admin change to `m` or its adapter; restores what a later iteration relies on."""
    paths, adapter = stress_setup["paths"], stress_setup["adapter"]
    if operation == "swap":
        state["m"] = "B" if state["m"] == "A" else "A"
        response = await http.put("/v1/models/m", json={"source": str(paths[state["m"]])})
        assert response.status_code == 200, response.text
    elif operation == "delete-model":
        response = await http.delete("/v1/models/m")
        assert response.status_code == 200, response.text
        response = await http.put("/v1/models/m", json={"source": str(paths[state["m"]])})
        assert response.status_code == 200, response.text
        response = await http.put("/v1/models/m/adapters/x", json={"source": str(adapter)})
        assert response.status_code == 200, response.text
    elif operation == "replace-adapter":
        response = await http.put("/v1/models/m/adapters/x", json={"source": str(adapter)})
        assert response.status_code == 200, response.text
    elif operation == "delete-adapter":
        response = await http.delete("/v1/models/m/adapters/x")
        assert response.status_code == 200, response.text
        response = await http.put("/v1/models/m/adapters/x", json={"source": str(adapter)})
        assert response.status_code == 200, response.text
    # "evict": the requests for `n` in this iteration do it (one loaded model at most)


def acceptable(outcome: Outcome, operation: str, references: dict[str, np.ndarray]) -> str | None:
    """Why `outcome` is wrong, or None when it is one of the answers this iteration allows."""
    if outcome.status is None:
        return None
    if outcome.status == 200:
        allowed = {"m": ("A", "B"), "m:x": ("A+x", "B+x"), "n": ("C",)}[outcome.model]
        for name in allowed:
            reference = np.tile(references[name], len(outcome.scores) // len(DOCUMENTS))  # short or long request
            if outcome.scores.shape == reference.shape and np.abs(outcome.scores - reference).max() <= 1e-4:
                return None
        return f"{outcome.model}: scores match none of {allowed} (a mix of versions?)"
    gone = {
        "delete-model": {("m", "MODEL_NOT_FOUND"), ("m:x", "MODEL_NOT_FOUND"), ("m:x", "ADAPTER_NOT_FOUND")},
        "delete-adapter": {("m:x", "ADAPTER_NOT_FOUND")},
    }.get(operation, set())
    if outcome.status == 404 and (outcome.model, outcome.code) in gone:
        return None  # sent while the model or adapter was deleted: the answer a client must get
    return f"{outcome.model}: {outcome.status} {outcome.code} {outcome.detail}"


async def one_iteration(
    http: httpx.AsyncClient, operation: str, rng: random.Random, state: dict, stress_setup: dict
) -> list[Outcome]:
    """Short requests answered in full, long ones hung up on right when the change makes that dangerous.

    A swap or an adapter replacement has retired the old weights when its PUT returns: the long
    requests still on them are then cancelled, so their release is the last and their batches
    may still be queued. A DELETE waits for in-flight work: the long requests are cancelled while
    it waits. An eviction waits for `m` to go idle: cancelling makes it idle at once.
    """
    models = ["m", "m", "m:x"] + (["n"] if operation == "evict" else [])
    answered = [asyncio.create_task(score(http, model)) for model in models]
    hung_up = [asyncio.create_task(score(http, model, LONG)) for model in ("m", "m", "m:x")]
    await asyncio.sleep(rng.uniform(0.005, 0.03))  # the requests reach their schedulers
    change = asyncio.create_task(lifecycle_change(http, operation, state, stress_setup))
    if operation in ("swap", "replace-adapter"):
        await change
    await asyncio.sleep(rng.uniform(0.0, 0.04))
    for task in hung_up:
        task.cancel()
    await change
    outcomes = await asyncio.gather(*answered)
    for task, model in zip(hung_up, ("m", "m", "m:x"), strict=True):
        try:
            outcomes.append(await task)  # answered before the client hung up
        except asyncio.CancelledError:
            outcomes.append(Outcome(model, None))
    return outcomes


async def stress(url: str, iterations: int, stress_setup: dict, references: dict, seed: int) -> Counter:
    rng = random.Random(seed)
    state = {"m": "A"}
    tally: Counter = Counter()
    problems: list[str] = []
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as http:
        for iteration in range(iterations):
            operation = OPERATIONS[iteration % len(OPERATIONS)]
            outcomes = await one_iteration(http, operation, rng, state, stress_setup)
            for outcome in outcomes:
                tally["cancelled" if outcome.status is None else str(outcome.status)] += 1
                why = acceptable(outcome, operation, references)
                if why is not None:
                    problems.append(f"iteration {iteration} ({operation}): {why}")
            tally[operation] += 1
    assert not problems, f"{len(problems)} failed requests; first: {problems[:5]}"
    return tally


@contextlib.contextmanager
def busy_cores() -> None:
    """A busy loop per core: the compute thread runs late, which is where lifetime races show."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    # die_with_parent: a test run killed mid-way must not leave busy loops behind on the CI machine.
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=die_with_parent) for _ in range(count)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def no_failed_batches(server: RunningServer) -> None:
    """A batch that ran on freed weights fails (its network is gone) and is logged with its traceback."""
    log = server.log
    for marker in ("units failed", "Traceback"):
        at = log.find(marker)
        assert at < 0, (
            f"{log.count(marker)} x {marker!r} in the server log; the first:\n{log[max(0, at - 500) : at + 2500]}"
        )


def run_stress(server: RunningServer, stress_setup: dict, references: dict, iterations: int, seed: int) -> None:
    tally = asyncio.run(stress(server.url, iterations, stress_setup, references, seed))
    no_failed_batches(server)
    assert server.alive()
    answered = sum(count for key, count in tally.items() if key.isdigit())
    assert tally["cancelled"] > iterations and tally["200"] > iterations  # both kinds happened, often
    print(f"\nstress: {iterations} iterations, {dict(tally)}; {answered} answered, 0 failed, 0 failed batches")


@pytest.mark.parametrize("contention", [False, True], ids=["quiet", "busy-cores"])
def test_lifecycle_changes_under_cancelled_load_fail_nothing(stress_server, stress_setup, references, contention):
    with busy_cores() if contention else contextlib.nullcontext():
        run_stress(stress_server, stress_setup, references, iterations=200, seed=7 + contention)


@pytest.mark.slow
def test_lifecycle_stress_long_form(stress_server, stress_setup, references):
    with busy_cores():
        run_stress(stress_server, stress_setup, references, iterations=2000, seed=99)
