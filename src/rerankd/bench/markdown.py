"""`bench.md`: the run as markdown tables, what the README's benchmark section is regenerated from."""

from __future__ import annotations

import datetime
from pathlib import Path

from rerankd.bench.measure import ModeResult, Target
from rerankd.bench.report import agreement_cells, matmul_line, mib, numerics_by_label
from rerankd.bench.runner import BenchReport

RESULT_HEADER = (
    "| engine | precision | numerics | clients | requests | pairs/s | tokens/s | latency p50 / p95 / p99 (ms) "
    "| padding % | model GFLOP/s | peak MiB | τ mean | τ min | top-10 overlap | max abs Δ score |"
)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def machine_markdown(machine: dict) -> str:
    summary = machine.get("cpu_summary") or {}
    flags = ", ".join(summary.get("features", [])) or "-"
    gpu = f"; GPU {machine['gpu']}" if machine.get("gpu") else ""
    return (
        f"**Machine:** {_cell(machine.get('cpu_description') or machine.get('cpu'))}; CPU flags: {flags}; "
        f"torch {machine['torch']} ({machine['threads']} threads, ATen capability {machine.get('cpu_capability')}), "
        f"Python {machine['python']}{gpu}. {_first_upper(matmul_line(machine))}."
    )


def result_row(row: ModeResult, numerics: dict[str, str]) -> str:
    waste = f"{100 * row.padding_waste:.1f}" if row.padding_waste is not None else "–"
    latency = " / ".join(f"{1000 * row.latency(p):.0f}" for p in (50, 95, 99))
    tau, tau_min, top, delta = agreement_cells(row)
    cells = [
        row.name,
        row.precision or "–",
        numerics.get(row.label, "–"),
        row.concurrency,
        row.requests,
        f"{row.pairs_per_s:.1f}",
        f"{row.tokens_per_s:.0f}",
        latency,
        waste,
        f"{row.flops_per_s / 1e9:.0f}",
        mib(row.peak_memory_bytes),
        tau,
        tau_min,
        top,
        delta,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def target_row(target: Target) -> str:
    sign = "≥" if target.higher_is_better else "≤"
    verdict = "met" if target.met else "**not met**"
    value = f"{target.value:.2e}" if abs(target.value) < 1e-3 else f"{target.value:.3f}"
    bound = f"{target.bound:.0e}" if abs(target.bound) < 1e-3 else f"{target.bound:.3g}"
    return f"| {_cell(target.name)} | {value} | {sign} {bound} | {verdict} | {_cell(target.detail or '–')} |"


def markdown(report: BenchReport, when: datetime.date | None = None) -> str:
    config = report.config
    when = when or datetime.date.today()
    numerics = numerics_by_label(report.results)
    lines = [
        f"# rerankd bench, {when.isoformat()}",
        "",
        machine_markdown(report.machine),
        "",
        f"**Run:** model `{config['model']}`, {config['requests_per_mode']} requests of "
        f"{config['documents_per_request']} documents per concurrency-1 mode (at concurrency c, at least c); "
        f"precisions {', '.join(config.get('precisions', []))}; agreement against "
        f"{config.get('agreement_reference') or 'nothing'} on the same requests.",
        "",
        RESULT_HEADER,
        "|" + " --- |" * (RESULT_HEADER.count("|") - 1),
    ]
    lines += [result_row(row, numerics) for row in report.results]
    if report.skipped:
        lines += ["", "Not run: " + "; ".join(f"{peer} ({_cell(why)})" for peer, why in report.skipped.items()) + "."]
    lines += ["", "| target | value | bound | verdict | compared with |", "| --- | --- | --- | --- | --- |"]
    lines += [target_row(target) for target in report.targets]
    return "\n".join(lines) + "\n"


def write_markdown(report: BenchReport, path: Path) -> Path:
    path.write_text(markdown(report))
    return path


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]
