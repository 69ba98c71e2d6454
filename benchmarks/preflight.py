"""The preflight's cost against a whole run: the smallest shipped config (recipes/experiments/, the one of least
compute: noisy_labels_digits_tiny.yaml) run as ``hf-w2s experiment`` runs it, in a fresh output folder, with the
preflight (``hf_w2s.experiment.preflight.preflight``: reruns, every model built and run on one batch, one step and
one evaluation per strong run) timed inside it. Target: at most 5 % of the run.

    OMP_NUM_THREADS=1 python benchmarks/preflight.py [--config recipes/experiments/noisy_labels_digits_tiny.yaml]
        [--repeats 3] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import header

ROOT = Path(__file__).resolve().parent.parent
SMALLEST = ROOT / "recipes" / "experiments" / "noisy_labels_digits_tiny.yaml"


def run_once(config: Path, extra: list[str]) -> tuple[float, float]:
    """``(preflight seconds, whole-run seconds)`` of one run of ``config`` in a new folder (wall time)."""
    from hf_w2s import build_experiment
    from hf_w2s.console import quiet_libraries
    from hf_w2s.experiment import preflight as module

    timed = []
    real = module.preflight

    def preflight(exp, done):
        start = time.perf_counter()
        real(exp, done)
        timed.append(time.perf_counter() - start)

    quiet_libraries()
    with tempfile.TemporaryDirectory() as out:
        module.preflight = preflight
        try:
            start = time.perf_counter()
            exp = build_experiment(config, argv=["--output_dir", out, "--plots", "false", "--report_to", "none",
                                                 *extra], log=lambda *_: None)
            exp.run()
            whole = time.perf_counter() - start
        finally:
            module.preflight = real
    return sum(timed), whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=SMALLEST)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="options of the config, e.g. num_train_epochs=1")
    args = parser.parse_args()
    extra = [w for kv in args.set for w in (f"--{kv.split('=', 1)[0]}", kv.split("=", 1)[1])]
    header(f"preflight cost: {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}")
    runs = [run_once(args.config, extra) for _ in range(args.repeats)]
    for i, (pre, whole) in enumerate(runs):
        print(f"run {i}: preflight {pre:.2f} s of a {whole:.2f} s run ({100 * pre / whole:.1f} %)")
    ratio = statistics.median(pre / whole for pre, whole in runs)
    print(f"preflight / whole run (median of {len(runs)}): {ratio:.3f} ({100 * ratio:.1f} %; target <= 5 %)")


if __name__ == "__main__":
    main()
