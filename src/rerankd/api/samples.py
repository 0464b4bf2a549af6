"""Query/passage sets for the page at `/`: the project's own, and TREC DL 2019 when the server has it.

    GET /ui/samples             every set, without its passages
    GET /ui/samples/{sample}    one set: the query, its passages and their relevance grades

The project's sets (`web/samples.jsonl`) were written for rerankd, with our own grades, so
they ship in the package. TREC DL 2019 (MS MARCO passages: non-commercial research use) must
not be copied into it: it is read at run time from `$RERANKD_SHARED_DATA` (or, in a source
checkout, `../shared/data`), and only when present: each of its 43 judged queries with its
first `TREC_CANDIDATES` BM25 passages and their TREC grades. These are data routes: they need
the API key like every other data call (only the page and its static files are open).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import render, wants_msgpack
from rerankd.api.openapi import Operation
from rerankd.api.schemas import samples as wire
from rerankd.core.errors import NotFound

BUILTIN = Path(__file__).parent / "web" / "samples.jsonl"
TREC_FILE = Path("trec-dl-2019") / "retrieve_results_dl19.json"
TREC_QRELS = Path("trec-dl-2019") / "qrels.dl19-passage.txt"
TREC_SOURCE = "trec-dl-2019"
# BM25's first passages per query: enough to see a reranker reorder them, few enough to score in a blink on a CPU.
TREC_CANDIDATES = 20


def shared_data_dir() -> Path | None:
    """`$RERANKD_SHARED_DATA`, else `../shared/data` beside a source checkout (an installed package has none)."""
    configured = os.environ.get("RERANKD_SHARED_DATA")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file():
        return checkout.parent / "shared" / "data"
    return None


@dataclass(frozen=True)
class SampleSets:
    """Every sample set this server offers, in the order the page lists them."""

    sets: tuple[wire.Sample, ...]
    trec: bool

    def summaries(self) -> wire.SampleList:
        rows = [wire.SampleSummary(s.id, s.source, s.query, len(s.documents)) for s in self.sets]
        return wire.SampleList(samples=rows, trec_dl_2019=self.trec)

    def get(self, sample_id: str) -> wire.Sample:
        for sample in self.sets:
            if sample.id == sample_id:
                return sample
        raise NotFound(f"no sample '{sample_id}' here (GET /ui/samples lists them)", param="sample")


def _builtin() -> list[wire.Sample]:
    rows = (json.loads(line) for line in BUILTIN.read_text(encoding="utf-8").splitlines() if line.strip())
    return [wire.Sample(row["id"], "rerankd", row["query"], row["documents"], row["grades"]) for row in rows]


def _qrels(path: Path) -> dict[tuple[str, str], int]:
    grades = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) == 4:
                grades[(fields[0], fields[2])] = int(fields[3])
    return grades


def _trec(folder: Path) -> list[wire.Sample]:
    grades = _qrels(folder / TREC_QRELS)
    samples = []
    for row in json.loads((folder / TREC_FILE).read_text(encoding="utf-8")):
        hits = row["hits"][:TREC_CANDIDATES]
        if not hits:
            continue
        qid = str(hits[0]["qid"])
        # A passage is one line in the page's candidate box.
        documents = [" ".join(hit["content"].split()) for hit in hits]
        judged = [grades.get((qid, str(hit["docid"]))) for hit in hits]
        samples.append(wire.Sample(f"{TREC_SOURCE}-{qid}", TREC_SOURCE, row["query"], documents, judged))
    return samples


@cache
def _sample_sets(folder: Path | None) -> SampleSets:
    """Read once per data folder (the TREC file is a few MB): the sets never change while serving."""
    builtin = _builtin()
    if folder is None or not (folder / TREC_FILE).is_file():
        return SampleSets(tuple(builtin), trec=False)
    return SampleSets((*builtin, *_trec(folder)), trec=True)


async def sample_sets() -> SampleSets:
    return await run_in_threadpool(_sample_sets, shared_data_dir())


async def list_samples(request: Request) -> Response:
    return render((await sample_sets()).summaries(), msgpack_body=wants_msgpack(request))


async def get_sample(request: Request) -> Response:
    sample = (await sample_sets()).get(request.path_params["sample"])
    return render(sample, msgpack_body=wants_msgpack(request))


routes = [
    Route("/ui/samples", list_samples, methods=["GET"]),
    Route("/ui/samples/{sample}", get_sample, methods=["GET"]),
]

operations = [
    Operation(
        "GET",
        "/ui/samples",
        "Sample queries and passages for the page at /",
        tag="Page",
        response=wire.SampleList,
        description="The project's own sets, then TREC DL 2019's judged queries when the server has the data "
        "(`RERANKD_SHARED_DATA`), each with its first BM25 passages.",
    ),
    Operation(
        "GET",
        "/ui/samples/{sample}",
        "One sample set: the query, its passages and their relevance grades",
        tag="Page",
        response=wire.Sample,
        errors=(NotFound,),
        params={"sample": "a sample id from `GET /ui/samples`"},
    ),
]
