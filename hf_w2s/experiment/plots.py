"""The report's plots (``hf_w2s[plots]``): test accuracy per supervisor, PGR per loss, the training and validation
curves, and the weak-strength curve — drawn from :func:`hf_w2s.experiment.report.summarize`'s summaries."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from ..stats import mean_interval, mean_std


def _axes(width: float, height: float, rows: int, cols: int, *, bottom: float, gap: float):
    """A figure of ``rows`` x ``cols`` axes with fixed margins, in inches: ``bottom`` under each row (tick labels,
    x label), ``gap`` between columns, room for a title above each row. Fixed margins instead of a layout engine:
    matplotlib's constrained layout measured every text twice and took half of a report's time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    left, right, top = 0.75, 0.3, 0.4
    axis_w = (width - left - right - (cols - 1) * gap) / cols
    axis_h = (height - rows * (bottom + top)) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap / axis_w, hspace=(bottom + top) / axis_h)
    return fig, fig.subplots(rows, cols, squeeze=False)


def plot_accuracy(summaries: list, path: Path) -> None:
    fig, axes = _axes(max(6.0, 1.2 * len(summaries[0].rows) + 2), 3.6 * len(summaries), len(summaries), 1,
                      bottom=1.0, gap=0.0)
    axes = axes[:, 0]
    for ax, s in zip(axes, summaries):
        names = [r.name for r in s.rows]
        means = [100 * mean_std(r.accuracies)[0] for r in s.rows]
        stds = [100 * mean_std(r.accuracies)[1] for r in s.rows]
        ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        ax.axhline(100 * s.weak_accuracy, color="tab:red", ls="--", label=f"weak {100 * s.weak_accuracy:.1f} %")
        c_mean, c_std = mean_std(s.ceiling.accuracies)
        if not math.isnan(c_mean):
            ax.axhline(100 * c_mean, color="tab:green", ls="--", label=f"ceiling {100 * c_mean:.1f} %")
            ax.axhspan(100 * (c_mean - c_std), 100 * (c_mean + c_std), color="tab:green", alpha=0.15)
        finite = [v for v in [*means, 100 * s.weak_accuracy, 100 * c_mean] if not math.isnan(v)]
        if finite:
            ax.set_ylim(max(0.0, min(finite) - 5), min(100.0, max(finite) + 3))
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"weak supervisor {s.name}")
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)


def plot_pgr(summaries: list, path: Path) -> None:
    names = [r.name for r in summaries[0].rows]
    fig, axes = _axes(max(6.0, 1.2 * len(names) + 2), 4.0, 1, 1, bottom=1.0, gap=0.0)
    ax = axes[0, 0]
    width = 0.8 / len(summaries)
    for j, s in enumerate(summaries):
        xs = [i + (j - (len(summaries) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [mean_std(r.pgrs)[0] for r in s.rows], width, yerr=[mean_std(r.pgrs)[1] for r in s.rows],
               capsize=3, label=f"{s.name} ({100 * s.weak_accuracy:.1f} %)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("PGR (mean ± std over seeds)")
    ax.set_title("performance gap recovered")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def plot_strength(summaries: list, path: Path) -> None:
    """The weak-strength curve: each loss's PGR (mean and 95 % interval over seeds) against the supervisor's test
    accuracy."""
    ordered = sorted(summaries, key=lambda s: s.weak_accuracy)
    xs = [100 * s.weak_accuracy for s in ordered]
    fig, axes = _axes(7.0, 4.2, 1, 1, bottom=0.6, gap=0.0)
    ax = axes[0, 0]
    for i, row in enumerate(ordered[0].rows):
        intervals = [mean_interval(s.rows[i].pgrs, method="t") if i < len(s.rows) else None for s in ordered]
        means = [iv.mean if iv and iv.n else math.nan for iv in intervals]
        low = [m - iv.low if iv and iv.n > 1 else 0.0 for m, iv in zip(means, intervals)]
        high = [iv.high - m if iv and iv.n > 1 else 0.0 for m, iv in zip(means, intervals)]
        ax.errorbar([x + 0.15 * (i - len(ordered[0].rows) / 2) for x in xs], means, yerr=[low, high], marker="o",
                    ms=3, capsize=2, lw=1, label=row.name)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("weak supervisor's test accuracy (%)")
    ax.set_ylabel("PGR (mean, 95 % interval)")
    ax.set_title("weak-strength curve")
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=110)


def _curve(records: list[dict], metric: str, eval_only: bool) -> tuple[list[float], list[float]]:
    """Mean over seeds of ``metric`` against the epoch, from each record's ``log_history``."""
    points: dict[float, list[float]] = {}
    for r in records:
        for entry in r.get("log_history", []):
            if metric in entry and ("eval_loss" in entry) == eval_only and "epoch" in entry:
                points.setdefault(round(float(entry["epoch"]), 4), []).append(float(entry[metric]))
    xs = sorted(points)
    return xs, [statistics.fmean(points[x]) for x in xs]


def plot_curves(summaries: list, path: Path) -> None:
    panels = [("loss", False, "training loss"), ("eval_accuracy", True, "validation accuracy"),
              ("a", False, "mean a")]
    fig, axes = _axes(13.0, 3.4 * len(summaries), len(summaries), len(panels), bottom=0.55, gap=0.6)
    for row_axes, s in zip(axes, summaries):
        for ax, (metric, eval_only, title) in zip(row_axes, panels):
            for i, row in enumerate([s.ceiling, *s.rows]):
                xs, ys = _curve(row.records, metric, eval_only)
                if xs:  # one colour per row in every panel
                    style = {"color": "black", "ls": "--"} if row is s.ceiling else {"color": f"C{(i - 1) % 10}"}
                    ax.plot(xs, ys, label=row.name, lw=1.2, **style)
            ax.set_xlabel("epoch")
            ax.set_title(f"{s.name}: {title}", fontsize=9)
            if metric == "eval_accuracy":
                ax.axhline(s.weak_accuracy, color="tab:red", ls=":", lw=1)
            if ax.lines and metric == "loss":
                ax.legend(fontsize=6)
    fig.savefig(path, dpi=110)

