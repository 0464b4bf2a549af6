"""Bench output: a terminal table, a JSON file and a PNG plot (throughput and latency vs concurrency)."""

from __future__ import annotations

import json
from pathlib import Path

from rerankd.bench.runner import BenchReport


def _mib(value: int | None) -> str:
    return f"{value / 2**20:.0f}" if value else "-"


def table(report: BenchReport) -> str:
    header = (
        f"{'mode':<9}{'conc':>5}{'reqs':>6}{'pairs/s':>10}{'tokens/s':>11}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'pad %':>7}{'GFLOP/s':>9}{'peak MiB':>10}{'GPU MiB':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in report.results:
        waste = f"{100 * r.padding_waste:.1f}" if r.padding_waste is not None else "-"
        lines.append(
            f"{r.mode:<9}{r.concurrency:>5}{r.requests:>6}{r.pairs_per_s:>10.1f}{r.tokens_per_s:>11.0f}"
            f"{1000 * r.latency(50):>9.0f}{1000 * r.latency(95):>9.0f}{1000 * r.latency(99):>9.0f}"
            f"{waste:>7}{r.flops_per_s / 1e9:>9.1f}{_mib(r.peak_memory_bytes):>10}"
            f"{_mib(r.peak_device_memory_bytes):>9}"
        )
    machine = report.machine
    lines.append("")
    lines.append(
        f"machine: {machine.get('cpu') or machine['device']}, {machine['threads']} threads, {machine['dtype']}; "
        f"matmul {machine['matmul_flops_bf16'] / 1e9:.0f} GFLOP/s bf16, "
        f"{machine['matmul_flops_fp32'] / 1e9:.0f} GFLOP/s fp32 (measured at start-up)"
    )
    if report.scale:
        s = report.scale
        lines.append(
            f"scale: {s['big_items']} items {s['big_s']:.2f}s vs {s['small_items']} items {s['small_s']:.2f}s "
            f"= {s['ratio']:.2f}x (linear: {s['linear_ratio']:.0f}x)"
        )
    lines.append("")
    for target in report.targets:
        sign = ">=" if target.higher_is_better else "<="
        verdict = "met" if target.met else "NOT met"
        lines.append(f"target {target.name}: {target.value:.3f} ({sign} {target.bound}) {verdict}")
    return "\n".join(lines)


def write_json(report: BenchReport, path: Path) -> Path:
    path.write_text(json.dumps(report.to_json(), indent=2))
    return path


def write_plot(report: BenchReport, path: Path) -> Path | None:
    """Throughput and p50/p95 latency against concurrency; the baseline as a reference line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, marker in (("engine", "s"), ("http", "o")):
        rows = sorted((r for r in report.results if r.mode == mode), key=lambda r: r.concurrency)
        if not rows:
            continue
        xs = [r.concurrency for r in rows]
        left.plot(xs, [r.pairs_per_s for r in rows], marker=marker, label=f"rerankd {mode}")
        right.plot(xs, [1000 * r.latency(50) for r in rows], marker=marker, label=f"rerankd {mode} p50")
        right.plot(xs, [1000 * r.latency(95) for r in rows], marker=marker, linestyle=":", label=f"{mode} p95")
    for r in report.results:
        if r.mode == "baseline":
            left.axhline(r.pairs_per_s, color="grey", linestyle="--", label="sentence-transformers CrossEncoder")
            right.axhline(1000 * r.latency(50), color="grey", linestyle="--", label="CrossEncoder p50")
    left.set(xlabel="concurrent clients", ylabel="pairs / s", title="Throughput")
    right.set(xlabel="concurrent clients", ylabel="ms per 100-document request", title="Latency")
    for axis in (left, right):
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    machine = report.machine
    figure.suptitle(
        f"rerankd bench: {report.config['model']} on {machine.get('cpu') or machine['device']} ({machine['dtype']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
