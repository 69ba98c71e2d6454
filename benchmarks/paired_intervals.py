"""Each loss against naive training (``weak_hard``), paired by seed, read straight from an experiment's
``results.jsonl`` — for results written by an earlier harness version, whose records ``--report_only`` no longer
matches. Prints per weak supervisor: the ceiling, each loss's test accuracy and PGR (mean ± std over seeds), and its
difference to ``weak_hard`` with a 95 % paired interval (t and bootstrap over seeds, :mod:`hf_w2s.stats`).

    python benchmarks/paired_intervals.py OUTPUT_DIR/results.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hf_w2s.metrics import performance_gap_recovered  # noqa: E402
from hf_w2s.stats import mean_std, paired_difference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    weak = {r["weak"]: r["test_accuracy"] for r in records if r["kind"] == "weak"}
    ceiling = {r["seed"]: r["test_accuracy"] for r in records if r["kind"] == "ceiling"}
    c = statistics.fmean(ceiling.values())
    print(f"ceiling: {100 * c:.1f} % over seeds {sorted(ceiling)}")
    for name, w in weak.items():
        rows: dict[str, dict[int, float]] = {}
        for r in records:
            if r["kind"] == "w2s" and r["weak"] == name:
                rows.setdefault(r["loss"], {})[r["seed"]] = r["test_accuracy"]
        print(f"\nweak supervisor {name}: {100 * w:.1f} %, gap {100 * (c - w):.1f} points")
        print("| loss | test accuracy (%) | PGR | Δ vs weak_hard, points [95 % CI, paired t] {bootstrap} |")
        print("|---|---|---|---|")
        base = rows.get("weak_hard", {})
        for loss, by_seed in rows.items():
            acc = list(by_seed.values())
            pgr = [performance_gap_recovered(w, a, c) for a in acc]
            mean, sd = mean_std(acc)
            if loss == "weak_hard":
                diff = "0"
            else:
                t = paired_difference(by_seed, base, method="t")
                boot = paired_difference(by_seed, base)
                diff = f"{t.format(100, 2)} {{{boot.low * 100:+.2f}, {boot.high * 100:+.2f}}} {t.verdict}"
            print(f"| {loss} | {100 * mean:.1f} ± {100 * sd:.1f} | {mean_std(pgr)[0]:.2f} | "
                  f"{diff} |")


if __name__ == "__main__":
    main()
