"""The report of an experiment: a markdown table (the candidate chosen on the validation split and its validation
figure, then its test figures: mean ± std over seeds, the paired difference to the ceiling of the same seed, PGR,
agreement, mean ``a``) and PNG plots.

Everything here is computed from the JSON-lines records that :mod:`hf_w2s.experiment` writes, so a report can be
rebuilt at any time (``hf-w2s experiment --config ... --report_only``). ``exp`` is the
:class:`~hf_w2s.experiment.runner.Experiment` whose records these are.

PGR of a student run is ``(acc − weak) / (mean ceiling − weak)``; the table shows its mean ± std over seeds (so the
mean equals the PGR of the mean accuracy). Where a supervisor has no test predictions (noisy labels, or a weak-label
dataset without its model), ``weak`` is the accuracy of its labels on the strong split, and the table says so.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..metrics import performance_gap_recovered
from ..stats import mean_std
from .comparison import comparison_lines, strength_lines


@dataclass
class Row:
    name: str
    candidate: str = "default"  # the candidate chosen on the validation split
    #: candidate label -> (mean validation figure over the selection seeds, number of runs), for rows with several
    candidates: dict = field(default_factory=dict)
    validation: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    pgrs: list[float] = field(default_factory=list)
    agreements: list[float] = field(default_factory=list)
    mean_a: list[float] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    #: accuracy minus the ceiling's of the same seed (same initialisation and data order): a paired comparison
    to_ceiling: list[float] = field(default_factory=list)


@dataclass
class WeakSummary:
    name: str
    source: str
    weak_accuracy: float
    weak_basis: str  # "test" or "strong-split labels"
    num_train_examples: int | None
    ceiling: Row
    rows: list[Row]


def _fmt(values: list[float], scale: float = 1.0, digits: int = 1, signed: bool = False) -> str:
    m, s = mean_std(values)
    if math.isnan(m):
        return "–"
    sign = "+" if signed else ""
    if len([v for v in values if v is not None and not math.isnan(v)]) == 1:
        return f"{m * scale:{sign}.{digits}f}"
    return f"{m * scale:{sign}.{digits}f} ± {s * scale:.{digits}f}"


def _agreement(record: dict, weak_pred) -> float | None:
    if weak_pred is None or record.get("test_predictions") is None:
        return None
    return float(np.mean(np.asarray(record["test_predictions"]) == np.asarray(weak_pred)))


def choose_candidate(records_by_label: dict, metric: str = "accuracy") -> str:
    """The candidate with the best mean validation figure over its records (``validation_accuracy``: highest;
    ``validation_loss``: lowest); ties go to the first listed. Only validation figures are read."""
    best, best_value = None, None
    for label, records in records_by_label.items():
        values = [r[f"validation_{metric}"] for r in records if r.get(f"validation_{metric}") is not None]
        if not values:
            continue
        value = statistics.fmean(values) * (-1 if metric == "loss" else 1)
        if best is None or value > best_value:
            best, best_value = label, value
    return best if best is not None else next(iter(records_by_label))


def chosen_records(config, by_key: dict, row_keys: dict) -> tuple[str, dict, list[dict]]:
    """``(chosen label, {label: (mean validation figure, n)}, the chosen candidate's records over all seeds)`` of one
    row, ``row_keys`` = ``{candidate label: {seed: key}}``: the choice is made on the selection seeds' validation
    figures, as the harness made it."""
    metric = config.selection_metric
    if len(row_keys) == 1:
        label = next(iter(row_keys))
        return label, {}, [by_key[k] for k in row_keys[label].values() if k in by_key]
    selection = list(config.selection_seeds or config.seeds)
    on_selection = {label: [by_key[keys[s]] for s in selection if keys.get(s) in by_key]
                    for label, keys in row_keys.items()}
    chosen = choose_candidate(on_selection, metric)
    table = {label: (mean_std([r.get(f"validation_{metric}") for r in recs])[0], len(recs))
             for label, recs in on_selection.items()}
    return chosen, table, [by_key[k] for k in row_keys[chosen].values() if k in by_key]


def summarize(exp, results: list[dict]) -> list[WeakSummary]:
    """Per weak supervisor: its accuracy, the ceiling row and one row per loss (in config order), each row the
    candidate chosen on the validation split."""
    config, key_of = exp.config, exp.keys_by_role()
    by_key = {r["key"]: r for r in results}
    ceiling_label, ceiling_table, ceiling_records = ("default", {}, [])
    if key_of["ceiling"]:
        ceiling_label, ceiling_table, ceiling_records = chosen_records(config, by_key, key_of["ceiling"])
    ceiling_by_seed = {r["seed"]: r for r in ceiling_records}
    ceiling_accs = [r["test_accuracy"] for r in ceiling_records]
    ceiling_mean = mean_std(ceiling_accs)[0]
    out = []
    for w in config.weak_supervisors:
        weak = by_key.get(key_of["weak"][w.name])
        if weak is None:
            continue
        if weak.get("test_accuracy") is not None:
            weak_acc, basis = weak["test_accuracy"], "test"
        else:
            weak_acc, basis = weak.get("supervision_accuracy", float("nan")), "strong-split labels"
        weak_pred = weak.get("test_predictions")

        def make_row(name: str, records: list[dict], chosen: str = "default", table: dict | None = None) -> Row:
            row = Row(name, candidate=chosen, candidates=table or {}, records=records)
            for r in records:
                row.validation.append(r.get("validation_accuracy"))
                row.accuracies.append(r["test_accuracy"])
                row.pgrs.append(performance_gap_recovered(weak_acc, r["test_accuracy"], ceiling_mean))
                row.agreements.append(_agreement(r, weak_pred))
                if r.get("mean_a") is not None:
                    row.mean_a.append(r["mean_a"])
            return row

        rows = []
        for spec in config.losses:
            chosen, table, records = chosen_records(config, by_key, key_of["w2s"][(w.name, spec.label)])
            row = make_row(spec.label, records, chosen, table)
            for r in records:
                ceiling = ceiling_by_seed.get(r["seed"])
                if ceiling is not None:
                    row.to_ceiling.append(r["test_accuracy"] - ceiling["test_accuracy"])
            rows.append(row)
        out.append(WeakSummary(w.name, w.source, weak_acc, basis, weak.get("num_train_examples"),
                               make_row("strong ceiling (ground truth)", ceiling_records, ceiling_label,
                                        ceiling_table), rows))
    return out


def selection_text(exp) -> str:
    """What chose what, for the report."""
    config, training = exp.config, exp.training
    validation = exp.data.validation_split or f"{exp.data.split_sizes[2]} examples"
    parts = [f"Everything chosen in this report is chosen on the validation split ({validation} with their ground "
             "truth, disjoint from the training splits and from test, checked by content hash)"]
    chosen = []
    if exp.evaluates:
        chosen.append("the curves are validation curves")
    if training.load_best_model_at_end or config.early_stopping_patience or any(
            c.get("load_best_model_at_end") for spec in config.losses for c in [spec.knobs, *spec.candidates]):
        chosen.append(f"each run's checkpoint is the one with the best validation {config.selection_metric}"
                      + (f" (early stopping, patience {config.early_stopping_patience})"
                         if config.early_stopping_patience else ""))
    if config.training_candidates or any(spec.candidates for spec in config.losses):
        seeds = list(config.selection_seeds or config.seeds)
        chosen.append(f"rows with candidates run each on seed(s) {seeds} and keep the one with the best mean "
                      f"validation {config.selection_metric} (the 'chosen on validation' column), which then runs "
                      "on the other seeds")
    chosen.append("the saved student (student/) is the student run with the best validation "
                  f"{config.selection_metric}")
    text = parts[0] + ": " + "; ".join(chosen) + ". "
    if config.selection_protocol == "weak_labels":
        text += ("**No ground truth was used to choose a student** (selection_protocol weak_labels): for the student "
                 "runs the validation split's labels are what their supervisor says of it, so their validation "
                 "column is agreement with the supervisor, and every student choice above is made by it; the ceiling "
                 "is a ground-truth reference. ")
    test = exp.data.split_sizes[3] or f"all of {exp.data.test_split}"
    return text + (f"The test split ({test} examples) is read once per run, after training, for the test figures; "
                   "nothing is chosen on it.")


def _candidate_lines(summary: WeakSummary, metric: str) -> list[str]:
    """For rows with several candidates: each candidate's mean validation figure on the selection seeds."""
    lines = []
    for row in [summary.ceiling, *summary.rows]:
        if not row.candidates:
            continue
        shown = ", ".join(
            (f"{label}: –" if math.isnan(value) else f"{label}: {100 * value:.1f} %" if metric == "accuracy"
             else f"{label}: {value:.4f}") + (" (chosen)" if label == row.candidate else "")
            for label, (value, _) in row.candidates.items())
        lines.append(f"- {row.name}, mean validation {metric} of each candidate on the selection seeds: {shown}")
    return lines + ([""] if lines else [])


def markdown(exp, summaries: list[WeakSummary], images: list[str] = (), provenance: str = "") -> str:
    config, m = exp.config, exp.model
    lines = [f"# {config.title or 'Weak-to-strong experiment'}", ""]
    strong = f"`{m.model_name_or_path}`" + (f" at {m.input_size} px" if m.input_size else "") + (
        f", pre-trained on {m.pretrain_dataset}" if m.pretrain_dataset else "") + (
        f", student_mode {exp.training.student_mode}" if exp.training.student_mode != "full" else "") + (
        ", LoRA" if m.use_peft else "")
    sizes = exp.data.split_sizes
    strong_split = ("with its ground truth for the losses that ask for it"
                    if any(exp.needs_labels(spec) for spec in config.losses)
                    else "seen by the students only through weak labels")
    lines += [
        f"Dataset `{exp.data.dataset}`, split {sizes[0]} / {sizes[1]} / {sizes[2]} / {sizes[3]}: the weak supervisor's "
        f"ground truth / the strong split ({strong_split}) / validation / test. Strong model: {strong}. "
        f"Seeds: {list(config.seeds)}. Accuracies in %, mean ± std over seeds; PGR = (student − "
        "weak) / (ceiling − weak) on the test split, with the mean ceiling; Δ ceiling = test accuracy minus the "
        "ceiling's of the same seed (same initialisation and data order), in points; agreement = student–weak "
        "agreement on the test split; mean a = the confidence weight averaged over training.",
        "",
        f"**Selection.** {selection_text(exp)}",
        "",
    ]
    if provenance:  # where the figures come from, checked (hf_w2s.experiment.provenance)
        lines += [f"**Provenance.** {provenance}", ""]
    if config.setting_candidates or exp.setting_key:  # the student's setting, chosen by the ceiling on validation
        lines += setting_lines(exp.results())
    for summary in summaries:
        basis = "" if summary.weak_basis == "test" else " (accuracy of its labels on the strong split: no test " \
                                                         "predictions)"
        spec = next(w for w in config.weak_supervisors if w.name == summary.name)
        n = f", trained on {summary.num_train_examples} examples of {spec.train_split}" \
            if summary.num_train_examples else ""
        lines += [f"## Weak supervisor `{summary.name}` ({summary.source}{n}): {100 * summary.weak_accuracy:.1f} %"
                  f"{basis}", ""]
        lines += ["| run | chosen on validation | validation accuracy (%) | test accuracy (%) | Δ ceiling, same seed | "
                  "PGR | agreement with weak (%) | mean a | seeds |",
                  "|---|---|---|---|---|---|---|---|---|"]
        weak_agree = "100.0" if summary.weak_basis == "test" else "–"
        lines.append(f"| weak supervisor | – | – | {100 * summary.weak_accuracy:.1f} | – | 0 | {weak_agree} | – | 1 |")
        for row in [summary.ceiling, *summary.rows]:
            if row is summary.ceiling:
                pgr = "1" if row.accuracies else "–"
                to_ceiling = "0" if row.accuracies else "–"
            else:
                pgr, to_ceiling = _fmt(row.pgrs, 1.0, 2), _fmt(row.to_ceiling, 100, 1, signed=True)
            chosen = row.candidate if row.candidates else "–"
            lines.append(f"| {row.name} | {chosen} | {_fmt(row.validation, 100)} | {_fmt(row.accuracies, 100)} | "
                         f"{to_ceiling} | {pgr} | {_fmt(row.agreements, 100)} | {_fmt(row.mean_a, 1.0, 3)} | "
                         f"{len(row.records)} |")
        lines.append("")
        lines += _candidate_lines(summary, config.selection_metric)
        lines += comparison_lines(summary)  # each loss against naive training, paired by seed, with its interval
    if len(summaries) > 1:
        lines += ["## PGR by loss and weak supervisor", "",
                  "| loss | " + " | ".join(f"{s.name} ({100 * s.weak_accuracy:.1f} %)" for s in summaries) + " |",
                  "|---|" + "---|" * len(summaries)]
        for i, spec in enumerate(config.losses):
            lines.append(f"| {spec.label} | " + " | ".join(_fmt(s.rows[i].pgrs, 1.0, 2) for s in summaries) + " |")
        lines.append("")
        lines += strength_lines(summaries)  # the weak-strength curve and the misfit-gain correlation over them all
    for image in images:
        lines.append(f"![{Path(image).stem}]({Path(image).name})")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------------------------
# plots (matplotlib's object API on the Agg canvas: no display, no global pyplot state)


def write_report(exp, results: list[dict], out_dir, write: bool = True) -> str:
    """Write ``report.md`` and (with ``plots``) ``accuracy.png``, ``pgr.png`` and ``curves.png`` under ``out_dir``;
    return the markdown (``write=False``: only return it)."""
    from .provenance import check_figures, provenance_text

    out_dir = Path(out_dir)
    check_figures(exp, results, "the report")  # nothing is written when a choice was made off validation
    summaries = summarize(exp, results)
    images = []
    if exp.config.plots and summaries and summaries[0].rows:
        images = ["accuracy.png", "pgr.png", "curves.png"] + (["strength.png"] if len(summaries) > 1 else [])
    text = markdown(exp, summaries, images, provenance=provenance_text(exp))
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        from .plots import plot_accuracy, plot_curves, plot_pgr, plot_strength

        for name, plot in zip(images, (plot_accuracy, plot_pgr, plot_curves, plot_strength)):
            plot(summaries, out_dir / name)
        (out_dir / "report.md").write_text(text)
    return text


def setting_lines(results: list[dict]) -> list[str]:
    """The report's account of the setting choice: each setting's mean validation figure of the ceiling on the
    selection seeds, and the one kept."""
    record = next((r for r in results if r.get("kind") == "setting"), None)
    if record is None:
        return []
    metric = record["metric"]

    def shown(values):
        values = [v for v in values if v is not None]
        if not values:
            return "–"
        mean = sum(values) / len(values)
        return f"{100 * mean:.1f} %" if metric == "accuracy" else f"{mean:.4f}"

    parts = [f"`{label}`: {shown(values)}" + (" (chosen)" if label == record["chosen"] else "")
             for label, values in record["validation"].items()]
    return [f"**Setting chosen on validation.** The student's setting was chosen by the ceiling's mean validation "
            f"{metric} on seed(s) {record['selection_seeds']} before any student trained: {'; '.join(parts)}. Every "
            "run below is in the chosen setting.", ""]
