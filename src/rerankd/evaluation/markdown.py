"""Markdown tables: the summary (also what the terminal shows), the significance tests, per query."""

from __future__ import annotations

from pathlib import Path

from rerankd.evaluation.errors import BadInput
from rerankd.evaluation.runner import EvalReport
from rerankd.evaluation.significance import TESTS


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def summary(report: EvalReport) -> str:
    settings = report.settings
    depth = f", top {settings['top_k']} reranked" if settings.get("top_k") else ""
    lines = [
        f"{report.dataset}: {len(report.qids)} judged queries, first stage {report.first_stage}{depth}",
        "",
        "| system | " + " | ".join(report.metrics) + " |",
        "| --- |" + " ---: |" * len(report.metrics),
    ]
    for name, means in report.systems.items():
        lines.append(f"| {name} | " + " | ".join(f"{means[m]:.4f}" for m in report.metrics) + " |")
    return "\n".join(lines)


def significance(report: EvalReport, metrics: list[str] | None = None) -> str:
    chosen = metrics or report.metrics
    rows = [c for c in report.comparisons if c.metric in chosen]
    if not rows:
        return ""
    lines = [
        f"Paired tests over {len(report.qids)} queries: {TESTS}; b against a.",
        "",
        "| a | b | metric | a | b | Δ (b − a) | b wins / loses / ties | p (t-test) | p (randomization) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in rows:
        lines.append(
            f"| {c.a} | {c.b} | {c.metric} | {c.mean_a:.4f} | {c.mean_b:.4f} | {c.delta:+.4f} "
            f"| {c.wins} / {c.losses} / {c.ties} | {_p(c.p_ttest)} | {_p(c.p_randomization)} |"
        )
    return "\n".join(lines)


def per_query(report: EvalReport) -> str:
    metric = report.primary
    names = list(report.systems)
    first = names[0]
    others = names[1:]
    header = "| query id | query | " + " | ".join(names) + "".join(f" | Δ {name}" for name in others) + " |"
    lines = [f"{metric} per query (Δ: against {first})", "", header, "| --- | --- |" + " ---: |" * (2 * len(names) - 1)]
    for qid in report.qids:
        text = report.query_texts[qid].replace("|", "\\|")
        text = text if len(text) <= 60 else text[:57] + "..."
        values = [report.per_query[name][qid][metric] for name in names]
        deltas = [value - values[0] for value in values[1:]]
        lines.append(
            f"| {qid} | {text} | "
            + " | ".join(f"{v:.4f}" for v in values)
            + "".join(f" | {d:+.4f}" for d in deltas)
            + " |"
        )
    return "\n".join(lines)


def document(report: EvalReport) -> str:
    parts = ["# rerankd eval", "", summary(report)]
    tests = significance(report)
    if tests:
        parts += ["", "## Significance", "", tests]
    parts += ["", "## Per query", "", per_query(report)]
    if report.notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in report.notes)]
    return "\n".join(parts) + "\n"


def write_markdown(report: EvalReport, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document(report))
    except OSError as error:
        raise BadInput(f"cannot write {path}: {error.strerror or error}") from None
    return path
