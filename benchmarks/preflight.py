"""The preflight's cost against a whole run: the smallest shipped config (recipes/experiments/, the one of least
compute: noisy_labels_digits_tiny.yaml) run as ``hf-w2s experiment`` runs it, in a fresh output folder, with the
preflight (``hf_w2s.experiment.preflight.preflight``: reruns, every model built and run on one batch, one step and
one evaluation per distinct strong-run check) timed inside it. Target: at most 5 % of the run.

``--cached``: a cached-feature sweep instead (``cache_features: true``, the ImageNet EfficientNet-Lite0 at 64 px as
the student, its head trained on the frozen backbone's features; 3 losses + the ceiling, one seed, on 500 / 1,000 /
300 / 500 MNIST digits: benchmarks/cached_features.py's run), where the preflight checks each run's head on a batch
of features and runs the backbone once for all of them. ``--demo``: ``hf-w2s demo``'s run (its default setting, also a
cached-feature Lite0 probe).

The first ``--warmup`` runs (default 1) are not counted: a process's first run pays one-time imports and compilations
(``evaluate``, scipy, transformers' weight-name patterns) wherever they first happen, with or without a preflight.

    OMP_NUM_THREADS=1 python benchmarks/preflight.py [--config recipes/experiments/noisy_labels_digits_tiny.yaml]
        [--cached | --demo] [--repeats 3] [--warmup 1] [--set KEY=VALUE ...]
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


def cached_values(out: str) -> dict:
    """benchmarks/cached_features.py's cached-feature sweep, one seed."""
    return {
        "output_dir": out, "dataset": "hf_w2s:mnist", "split_sizes": [500, 1000, 300, 500], "num_channels": 3,
        "weak_supervisors": [{"name": "linear", "model": "tiny:linear,width=16", "num_train_epochs": 30,
                              "learning_rate": 1e-2}],
        "model_name_or_path": "hf_w2s:efficientnet-lite0", "input_size": 64, "student_mode": "linear_probe",
        "cache_features": True, "num_train_epochs": 5, "learning_rate": 1e-2, "per_device_train_batch_size": 64,
        "per_device_eval_batch_size": 256, "eval_strategy": "epoch", "save_strategy": "epoch",
        "load_best_model_at_end": True, "losses": ["weak_hard", "kd", "adapt_conf"], "seeds": [0], "plots": False,
        "report_to": "none",
    }


def demo_values(out: str) -> dict:
    """``hf-w2s demo``'s setting (its defaults)."""
    from hf_w2s.scripts.demo import DEMO

    return {**DEMO, "output_dir": out, "plots": False, "report_to": "none"}


def run_once(config, extra: list[str]) -> tuple[float, float]:
    """``(preflight seconds, whole-run seconds)`` of one run of ``config`` (a file, or a function of the output folder
    giving the config's keys) in a new folder (wall time)."""
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
            if callable(config):
                exp = build_experiment(values=config(out), argv=extra, log=lambda *_: None)
            else:
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
    parser.add_argument("--cached", action="store_true", help="the cached-feature Lite0 sweep instead of --config")
    parser.add_argument("--demo", action="store_true", help="hf-w2s demo's run instead of --config")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="first runs not counted (one-time imports)")
    parser.add_argument("--set", nargs="*", default=[], help="options of the config, e.g. num_train_epochs=1")
    args = parser.parse_args()
    extra = [w for kv in args.set for w in (f"--{kv.split('=', 1)[0]}", kv.split("=", 1)[1])]
    config = cached_values if args.cached else demo_values if args.demo else args.config
    name = ("cached-feature sweep (Lite0, 64 px)" if args.cached else "hf-w2s demo" if args.demo else
            config.relative_to(ROOT) if config.is_relative_to(ROOT) else config)
    header(f"preflight cost: {name}")
    for i in range(args.warmup):
        pre, whole = run_once(config, extra)
        print(f"warm-up {i} (not counted): preflight {pre:.2f} s of a {whole:.2f} s run ({100 * pre / whole:.1f} %)")
    runs = [run_once(config, extra) for _ in range(args.repeats)]
    for i, (pre, whole) in enumerate(runs):
        print(f"run {i}: preflight {pre:.2f} s of a {whole:.2f} s run ({100 * pre / whole:.1f} %)")
    ratio = statistics.median(pre / whole for pre, whole in runs)
    print(f"preflight / whole run (median of {len(runs)}): {ratio:.3f} ({100 * ratio:.1f} %; target <= 5 %)")


if __name__ == "__main__":
    main()
