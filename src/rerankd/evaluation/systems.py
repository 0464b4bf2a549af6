"""The systems an evaluation compares, and how a reranked list is made from the first stage.

`--model [LABEL=]MODEL[:ADAPTER]`: MODEL is, in-process, what `rerankd serve --model` takes (a
catalog id, a local directory, an installed model package) and ADAPTER a PEFT adapter directory;
with `--url`, MODEL is a name the server serves and ADAPTER the name of an adapter loaded on it.
LABEL names the system in reports (default: the text after `LABEL=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rerankd.evaluation.errors import BadInput


@dataclass(frozen=True)
class SystemSpec:
    label: str
    model: str
    adapter: str | None = None

    @classmethod
    def parse(cls, text: str) -> SystemSpec:
        label, sep, rest = text.partition("=")
        if not sep:
            label, rest = text, text
        model, sep, adapter = rest.partition(":")
        if not label or not model or (sep and not adapter):
            raise BadInput(f"--model expects [LABEL=]MODEL[:ADAPTER], got {text!r}")
        return cls(label=label, model=model, adapter=adapter or None)


class Scorer(Protocol):
    """Scores texts against a query for one system; `open` checks every system can run first."""

    def open(self, systems: list[SystemSpec]) -> None: ...

    def score(self, system: SystemSpec, query: str, texts: list[str]) -> list[float]: ...

    def close(self) -> None: ...


def reranked(head: list[tuple[str, float]], scores: list[float], tail: list[tuple[str, float]]) -> list:
    """The reranked list: the head by the model's scores (trec_eval's tie order), then the tail as it was.

    The tail's scores are made to sit below every head score in its own order, so a metric
    reads exactly this list.
    """
    ranked = sorted(
        ((docid, float(score)) for (docid, _), score in zip(head, scores, strict=True)),
        key=lambda hit: (hit[1], hit[0]),
        reverse=True,
    )
    if tail:
        floor = min(score for _, score in ranked) if ranked else 0.0
        ranked += [(docid, floor - 1.0 - position) for position, (docid, _) in enumerate(tail)]
    return ranked


def check_labels(first_stage: str, systems: list[SystemSpec]) -> None:
    labels = [first_stage, *(system.label for system in systems)]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise BadInput(
            f"two systems are named {twice[0]!r} (the first stage is {first_stage!r}): "
            f"name them with --model LABEL=MODEL[:ADAPTER]"
        )
