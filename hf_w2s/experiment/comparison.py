"""The report's comparisons that can tell: each loss against naive training paired by seed with a 95 % interval, the
misfit to the supervisor next to the gain over it, and a warning where the gap to recover is too small for PGR to
mean anything (:mod:`hf_w2s.stats`)."""

from __future__ import annotations

import math

from ..stats import correlation, mean_interval, mean_std, paired_difference

__all__ = ["BASELINE", "MIN_GAP", "comparison_lines", "gap_warning", "paired_rows", "strength_lines"]

#: the loss every other is compared with (naive weak-to-strong training)
BASELINE = "weak_hard"
#: a ceiling − weak gap below this (in accuracy) makes PGR unreliable
MIN_GAP = 0.05


def _by_seed(records: list[dict], field: str = "test_accuracy") -> dict:
    return {r["seed"]: r[field] for r in records if r.get(field) is not None}


def gap_warning(summary) -> str | None:
    """A sentence when the ceiling is less than :data:`MIN_GAP` above the supervisor, or less than two standard
    errors of the ceiling's mean: PGR divides by that gap."""
    ceiling = [a for a in summary.ceiling.accuracies if a is not None]
    if not ceiling or summary.weak_accuracy is None or math.isnan(summary.weak_accuracy):
        return None
    interval = mean_interval(ceiling, method="t")
    gap = interval.mean - summary.weak_accuracy
    se = (interval.high - interval.mean) / 2 if interval.n > 1 else 0.0
    if gap >= MIN_GAP and gap >= 2 * se:
        return None
    noise = "below 2 standard errors of the ceiling, " if gap < 2 * se else ""
    return (f"**PGR is unreliable here**: the ceiling is only {100 * gap:+.1f} points above the supervisor "
            f"({noise}under {100 * MIN_GAP:.0f} points), so "
            "small differences in accuracy make large swings in PGR. Give the student what it needs to be much "
            "stronger than its supervisor: a larger input size, more of it trained (student_mode), longer training, "
            "or its cached features (cache_features) — chosen on validation with setting_candidates.")


def paired_rows(summary) -> list[tuple[str, object, object]]:
    """``(row name, interval of test accuracy − naive's, interval of the misfit)`` per loss, paired by seed; the
    naive row itself is left out (no row named ``weak_hard``: no pairs)."""
    base = next((r for r in summary.rows if r.name == BASELINE), None)
    out = []
    for row in summary.rows:
        if row is base:
            continue
        diff = paired_difference(_by_seed(row.records), _by_seed(base.records)) if base is not None else None
        misfit = mean_interval([r.get("train_misfit") for r in row.records], method="t")
        out.append((row.name, diff, misfit))
    return out


def comparison_lines(summary) -> list[str]:
    """The markdown under a supervisor's table: the gap warning, then each loss minus naive training (paired by seed,
    95 % interval, bootstrap over seeds) with its verdict, and the misfit–gain correlation over runs."""
    lines = []
    warning = gap_warning(summary)
    if warning:
        lines += [warning, ""]
    rows = paired_rows(summary)
    if rows and any(diff is not None and diff.n for _, diff, _ in rows):
        lines += [f"Each loss against `{BASELINE}` (naive training), paired by seed: test accuracy difference in "
                  "points with its 95 % interval (bootstrap over seeds); a loss is called better or worse only when "
                  "the interval excludes 0. Misfit: disagreement with the supervisor on the strong split it trained on "
                  "(no ground truth needed), mean over seeds.", "",
                  f"| loss | Δ accuracy vs `{BASELINE}` [95 % CI] | verdict | misfit (%) |", "|---|---|---|---|"]
        base = next((r for r in summary.rows if r.name == BASELINE), None)
        if base is not None:
            base_misfit = mean_interval([r.get("train_misfit") for r in base.records], method="t")
            lines.append(f"| {BASELINE} | 0 | – | {_pct(base_misfit.mean)} |")
        for name, diff, misfit in rows:
            lines.append(f"| {name} | {diff.format(100, 1) if diff else '–'} | "
                         f"{diff.verdict if diff and diff.n > 1 else '–'} | {_pct(misfit.mean)} |")
        lines.append("")
    rho, n = misfit_gain_correlation([summary])
    if not math.isnan(rho):
        lines += [f"Misfit predicts the gain over the supervisor with Pearson's r = {rho:.2f} over {n} student "
                      "runs (Charikar et al. 2024: for a convex strong class the gain is at least the misfit).", ""]
    return lines


def strength_lines(summaries) -> list[str]:
    """The weak-strength curve as a table — the supervisors by test accuracy, each loss's PGR with its 95 % interval
    over seeds (t) — then how well the misfit predicts the gain over every student run of every supervisor."""
    ordered = sorted(summaries, key=lambda s: s.weak_accuracy)
    lines = ["## Weak-strength curve", "",
             "PGR against the supervisor's test accuracy (weakest first): mean [95 % interval over seeds, t]; the "
             "gap column is ceiling − supervisor in points (PGR divides by it).", "",
             "| loss | " + " | ".join(f"{s.name} ({100 * s.weak_accuracy:.1f} %)" for s in ordered) + " |",
             "|---|" + "---|" * len(ordered)]
    gaps = [100 * (mean_std(s.ceiling.accuracies)[0] - s.weak_accuracy) for s in ordered]
    lines.append("| gap (points) | " + " | ".join("–" if math.isnan(g) else f"{g:.1f}" for g in gaps) + " |")
    for i, row in enumerate(ordered[0].rows):
        cells = [mean_interval(s.rows[i].pgrs, method="t").format(1.0, 2) if i < len(s.rows) else "–"
                 for s in ordered]
        lines.append(f"| {row.name} | " + " | ".join(c.replace("+", "") for c in cells) + " |")
    lines.append("")
    rho, n = misfit_gain_correlation(summaries)
    if not math.isnan(rho):
        lines += [f"Across every supervisor, misfit predicts the gain over the supervisor with Pearson's r = "
                  f"{rho:.2f} over {n} student runs.", ""]
    return lines


def misfit_gain_correlation(summaries) -> tuple[float, int]:
    """Pearson's r between each student run's misfit and its gain over its supervisor, over the runs of
    ``summaries`` that have a misfit, and their number (NaN under 3 runs)."""
    gains = [(r["train_misfit"], r["test_accuracy"] - s.weak_accuracy)
             for s in summaries for row in s.rows for r in row.records if r.get("train_misfit") is not None]
    return correlation(*zip(*gains)) if len(gains) >= 3 else (math.nan, len(gains))


def _pct(value) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"
