"""A linear-probe sweep (losses × seeds, plus the ceiling) at 64 px on the ImageNet-pretrained EfficientNet-Lite0:
students trained on the frozen backbone's cached features (``cache_features: true``) against the same probes trained
on images (``student_mode: linear_probe``: the backbone runs at every step), on the same data, in one run. Prints each
sweep's wall time, the ratio, and that both learn the same task (their ceilings' validation accuracy).

    OMP_NUM_THREADS=2 python benchmarks/cached_features.py [--seeds 3] [--losses weak_hard kd adapt_conf]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (offline, the checkout on sys.path)

from hf_w2s import build_experiment  # noqa: E402


def config(out: Path, cached: bool, seeds: int, losses: list[str], sizes: list[int], epochs: float) -> dict:
    return {
        "output_dir": str(out), "dataset": "hf_w2s:mnist", "split_sizes": sizes, "num_channels": 3,
        "weak_supervisors": [{"name": "linear", "model": "tiny:linear,width=16", "num_train_epochs": 30,
                              "learning_rate": 1e-2}],
        "model_name_or_path": "hf_w2s:efficientnet-lite0", "input_size": 64, "student_mode": "linear_probe",
        "cache_features": cached, "num_train_epochs": epochs, "learning_rate": 1e-2,
        "per_device_train_batch_size": 64, "per_device_eval_batch_size": 256, "eval_strategy": "epoch",
        "save_strategy": "epoch", "load_best_model_at_end": True, "losses": losses, "seeds": list(range(seeds)),
        "plots": False, "report_to": "none",
    }


def sweep(out: Path, cached: bool, args) -> tuple[float, float]:
    exp = build_experiment(values=config(out, cached, args.seeds, args.losses, args.sizes, args.epochs),
                           log=lambda *_: None)
    exp.claim_output_dir()
    exp.splits()
    exp.supervisors.of(exp.config.weak_supervisors[0])  # splits and the supervisor: the same in both, not timed
    start = time.perf_counter()
    exp.run()
    seconds = time.perf_counter() - start
    ceilings = [r["validation_accuracy"] for r in exp.results() if r["kind"] == "ceiling"]
    return seconds, sum(ceilings) / len(ceilings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--losses", nargs="+", default=["weak_hard", "kd", "adapt_conf"])
    parser.add_argument("--sizes", type=int, nargs=4, default=[500, 1000, 300, 500])
    parser.add_argument("--epochs", type=float, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="w2s-cached-features-"))
    try:
        runs = args.seeds * (len(args.losses) + 1)
        cached, cached_acc = sweep(root / "cached", True, args)
        images, images_acc = sweep(root / "images", False, args)
        print(f"{runs} runs ({len(args.losses)} losses x {args.seeds} seeds + the ceiling), split {args.sizes}, "
              f"{args.epochs:g} epochs, Lite0 at 64 px")
        print(f"cached features (features once + heads): {cached:8.1f} s; ceiling validation {100 * cached_acc:.1f} %")
        print(f"linear_probe on images:                  {images:8.1f} s; ceiling validation {100 * images_acc:.1f} %")
        print(f"ratio: {images / cached:.1f}x faster")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
