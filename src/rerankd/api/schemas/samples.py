"""Bodies of the page's sample routes (`GET /ui/samples`, `GET /ui/samples/{sample}`)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class SampleSummary(msgspec.Struct):
    """One sample set, without its documents (what the page's picker lists)."""

    id: Annotated[str, Meta(description="`GET /ui/samples/{id}` returns it")]
    source: Annotated[str, Meta(description="`rerankd` (written for the project) or `trec-dl-2019`")]
    query: str
    documents: Annotated[int, Meta(description="how many candidate passages it has")]


class SampleList(msgspec.Struct):
    samples: list[SampleSummary]
    trec_dl_2019: Annotated[
        bool,
        Meta(description="whether this server found TREC DL 2019 (`RERANKD_SHARED_DATA`) and lists its queries"),
    ] = False


class Sample(msgspec.Struct):
    """A query, its candidate passages and, where judged, each passage's relevance grade."""

    id: str
    source: str
    query: str
    documents: list[str]
    grades: Annotated[
        list[int | None],
        Meta(
            description="relevance of each document, 0 (not relevant) to 3 (perfectly relevant): TREC's qrels, or "
            "the project's own judgement for its samples; null where unjudged"
        ),
    ]
