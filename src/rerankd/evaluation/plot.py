"""The PNG (`--plot OUT`): each system's mean per metric, and per-query changes against the first stage."""

from __future__ import annotations

from pathlib import Path

from rerankd.evaluation.errors import BadInput
from rerankd.evaluation.runner import EvalReport


def write_plot(report: EvalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report.systems)
    others = names[1:]
    rows = 1 + len(others)
    figure, axes = plt.subplots(rows, 1, figsize=(10, 3.6 * rows), squeeze=False)
    bars = axes[0][0]
    width = 0.8 / len(names)
    positions = np.arange(len(report.metrics))
    for index, name in enumerate(names):
        means = [report.systems[name][metric] for metric in report.metrics]
        drawn = bars.bar(positions + index * width, means, width, label=name)
        bars.bar_label(drawn, fmt="%.3f", fontsize=7)
    bars.set_xticks(positions + width * (len(names) - 1) / 2, report.metrics)
    bars.set_ylim(0, 1.05)
    bars.set_title(f"{Path(report.dataset).name}: {len(report.qids)} queries")
    bars.legend(fontsize=8)
    metric = report.primary
    first = names[0]
    for row, name in enumerate(others, start=1):
        axis = axes[row][0]
        deltas = np.array([report.per_query[name][q][metric] - report.per_query[first][q][metric] for q in report.qids])
        order = np.argsort(-deltas, kind="stable")
        colors = ["tab:green" if d > 0 else "tab:red" if d < 0 else "tab:gray" for d in deltas[order]]
        axis.bar(np.arange(len(deltas)), deltas[order], color=colors)
        axis.axhline(0, color="black", linewidth=0.6)
        axis.set_ylabel(f"Δ {metric}")
        axis.set_xlabel("queries, sorted by change")
        wins, losses = int((deltas > 0).sum()), int((deltas < 0).sum())
        axis.set_title(f"{name} against {first}: mean Δ {deltas.mean():+.4f} ({wins} better, {losses} worse)")
    figure.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise BadInput(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        plt.close(figure)
    return path
