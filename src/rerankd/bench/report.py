"""Bench output: a terminal table, a JSON file and a PNG plot (throughput and latency vs concurrency)."""

from __future__ import annotations

import json
from pathlib import Path

from rerankd.bench.measure import ModeResult, Target
from rerankd.bench.runner import BenchReport


def mib(value: int | None) -> str:
    return f"{value / 2**20:.0f}" if value else "-"


def agreement_cells(row: ModeResult) -> tuple[str, str, str, str]:
    """τ mean, τ min, top-10 overlap, max |Δ score| (dashes where the row has no agreement)."""
    a = row.agreement
    if a is None:
        return "-", "-", "-", "-"
    return f"{a.tau_mean:.4f}", f"{a.tau_min:.4f}", f"{a.top10_overlap:.3f}", f"{a.max_abs_delta:.1e}"


def matmul_line(machine: dict) -> str:
    rates = ", ".join(f"{r['dtype']} {r['flops_per_s'] / 1e9:.0f}" for r in machine.get("matmul_rates", []))
    reference = machine.get("matmul_reference") or {}
    return f"matmul GFLOP/s: {rates} (reference: {reference.get('dtype', '?')}, the fastest native dtype)"


def machine_line(machine: dict) -> str:
    cpu = machine.get("cpu_description") or machine.get("cpu") or machine["device"]
    flags = " ".join((machine.get("cpu_summary") or {}).get("features", []))
    return (
        f"machine: {cpu}; flags {flags or '-'}; torch {machine['torch']} ({machine['threads']} threads, "
        f"capability {machine.get('cpu_capability')}), Python {machine['python']}, "
        f"{machine['device']} {machine['dtype']}"
    )


def target_line(target: Target) -> str:
    sign = ">=" if target.higher_is_better else "<="
    verdict = "met" if target.met else "NOT met"
    detail = f"  [{target.detail}]" if target.detail else ""
    return f"target {target.name}: {target.value:.4g} ({sign} {target.bound:.4g}) {verdict}{detail}"


def table(report: BenchReport) -> str:
    gpu = any(r.peak_device_memory_bytes for r in report.results)
    header = (
        f"{'engine':<28}{'conc':>5}{'reqs':>5}{'pairs/s':>9}{'tokens/s':>10}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'pad %':>7}{'GFLOP/s':>9}{'peak MiB':>9}{'GPU MiB' if gpu else '':>{8 if gpu else 0}}"
        f"{'tau mean':>9}{'tau min':>8}{'top10':>7}{'max|d|':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in report.results:
        waste = f"{100 * r.padding_waste:.1f}" if r.padding_waste is not None else "-"
        tau, tau_min, top, delta = agreement_cells(r)
        lines.append(
            f"{r.label:<28}{r.concurrency:>5}{r.requests:>5}{r.pairs_per_s:>9.1f}{r.tokens_per_s:>10.0f}"
            f"{1000 * r.latency(50):>8.0f}{1000 * r.latency(95):>8.0f}{1000 * r.latency(99):>8.0f}"
            f"{waste:>7}{r.flops_per_s / 1e9:>9.1f}{mib(r.peak_memory_bytes):>9}"
            f"{mib(r.peak_device_memory_bytes) if gpu else '':>{8 if gpu else 0}}"
            f"{tau:>9}{tau_min:>8}{top:>7}{delta:>9}"
        )
    lines += ["", machine_line(report.machine), matmul_line(report.machine)]
    lines.append(f"agreement reference: {report.config.get('agreement_reference') or 'none'}")
    for label, numerics in numerics_by_label(report.results).items():
        lines.append(f"numerics of {label}: {numerics}")
    for peer, reason in report.skipped.items():
        lines.append(f"skipped {peer}: {reason}")
    for precision, s in report.scales.items():
        lines.append(
            f"scale ({precision}): {s['big_items']} items {s['big_s']:.2f}s vs {s['small_items']} items "
            f"{s['small_s']:.2f}s = {s['ratio']:.2f}x (linear: {s['linear_ratio']:.0f}x)"
        )
    lines.append("")
    lines += [target_line(target) for target in report.targets]
    return "\n".join(lines)


def numerics_text(numerics: dict) -> str:
    """`openvino fp32`, `int8 dynamic (avx512_vnni)`, `OpenVINO default, inference bf16`: short enough for a cell."""
    what = numerics.get("numerics") or numerics.get("dtype") or "?"
    text = f"{numerics['backend']} {what}" if numerics.get("backend") else str(what)
    if numerics.get("inference_precision"):
        text += f", inference {numerics['inference_precision']}"
    return text


def numerics_by_label(results: list[ModeResult]) -> dict[str, str]:
    """What each engine said it computes in, once per engine (every concurrency of it says the same)."""
    seen: dict[str, str] = {}
    for r in results:
        if r.numerics and r.label not in seen:
            seen[r.label] = numerics_text(r.numerics)
    return seen


def write_json(report: BenchReport, path: Path) -> Path:
    path.write_text(json.dumps(report.to_json(), indent=2))
    return path


def write_plot(report: BenchReport, path: Path) -> Path | None:
    """Throughput and p50/p95 latency against concurrency per precision; each peer as a reference line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for precision in report.config.get("precisions", []):
        for mode, marker in (("engine", "s"), ("http", "o")):
            rows = sorted(
                (r for r in report.results if r.mode == mode and r.precision == precision), key=lambda r: r.concurrency
            )
            if not rows:
                continue
            xs = [r.concurrency for r in rows]
            label = f"rerankd {mode} ({precision})"
            left.plot(xs, [r.pairs_per_s for r in rows], marker=marker, label=label)
            right.plot(xs, [1000 * r.latency(50) for r in rows], marker=marker, label=f"{label} p50")
    styles = iter(["--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))] * 3)
    for r in (r for r in report.results if r.mode == "peer"):
        style = next(styles)
        left.axhline(r.pairs_per_s, color="grey", linestyle=style, label=r.name)
        right.axhline(1000 * r.latency(50), color="grey", linestyle=style, label=f"{r.name} p50")
    left.set(xlabel="concurrent clients", ylabel="pairs / s", title="Throughput")
    right.set(xlabel="concurrent clients", ylabel="ms per 100-document request", title="Latency")
    for axis in (left, right):
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    machine = report.machine
    figure.suptitle(
        f"rerankd bench: {report.config['model']} on {machine.get('cpu') or machine['device']} ({machine['dtype']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
