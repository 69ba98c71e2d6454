"""The entries of an experiment's lists, each checked when it is read: a weak supervisor
(:class:`WeakSupervisorConfig`: a mapping of its fields plus training arguments of its own training), a loss row
(:class:`LossSpec`: a registry name, or a mapping ``{name:, label:, <training argument>: value, candidates: [...]}``)
and the candidates chosen among on the validation split (:func:`parse_candidates`). :class:`~hf_w2s.ExperimentConfig`
(:mod:`hf_w2s.experiment.config`) holds the lists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from ..data.noise import NOISE_KINDS
from ..losses import LOSSES
from ..options import check_choice, check_ranges
from ..trainer.combiner import COMBINATIONS

__all__ = ["WeakSupervisorConfig", "LossSpec", "parse_candidates", "parse_setting_candidates", "model_fields",
           "check_run_arguments", "RUN_SET", "SOURCES",
           "WEAK_RENAMED"]

SOURCES = ("train", "model", "weak_labels", "noisy_labels", "combine")
#: training arguments the runner sets for each run (an entry that sets one is refused, naming the option to use)
RUN_SET = {"output_dir": "output_dir (the whole run's)", "w2s_loss": "losses", "seed": "seeds",
           "run_name": "nothing (each run is named after its row and seed)", "image_column": "image_column",
           "eval_dataset_split": "validation_split", "push_to_hub": "push_to_hub (the saved student's)"}
#: keys a candidate may set besides training arguments
CANDIDATE_KEYS = frozenset({"label", "augmentation"})
#: keys of a weak supervisor's mapping in hf_w2s 0.2 and what replaced them
WEAK_RENAMED = {
    "arch": "model: 'tiny:ARCH,width=W,depth=D'", "width": "model: 'tiny:ARCH,width=W,depth=D'",
    "depth": "model: 'tiny:ARCH,width=W,depth=D'", "pretrained": "model: ID with source: train",
    "epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size",
    "supervision_logit": "label_noise_confidence (the softmax probability of the noisy label)",
    "training": "its training arguments as keys of the entry (num_train_epochs: 30, ...)",
}


def training_fields() -> frozenset[str]:
    from ..trainer.config import WeakToStrongConfig

    return frozenset(f.name for f in dataclasses.fields(WeakToStrongConfig) if f.init)


def check_run_arguments(args: dict, where: str) -> None:
    """``args`` are training arguments (``WeakToStrongConfig`` fields) an entry may set for its runs."""
    unknown = sorted(set(args) - training_fields())
    if unknown:
        raise ValueError(
            f"{where}: {unknown} are not WeakToStrongConfig / TrainingArguments fields (e.g. learning_rate, "
            "num_train_epochs, kd_temperature, confidence_temperature, gt_loss_weight, a_max, a_ramp, a_warmup)."
        )
    for key in sorted(set(args) & set(RUN_SET)):
        raise ValueError(f"{where}: {key} is set by the runner for each run (use {RUN_SET[key]}).")


def _split_entry(cls, entry: dict, where: str) -> tuple[dict, dict]:
    """A mapping's keys that are ``cls``'s fields, and the others (training arguments, checked)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in entry:
        if key in WEAK_RENAMED and key not in names and cls is WeakSupervisorConfig:
            raise ValueError(f"{where}: the key {key!r} is gone in hf_w2s 0.3: use {WEAK_RENAMED[key]}")
    own = {k: v for k, v in entry.items() if k in names}
    rest = {k: v for k, v in entry.items() if k not in names}
    unknown = sorted(set(rest) - training_fields())
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)} and training arguments "
                         "(WeakToStrongConfig fields)")
    check_run_arguments(rest, where)
    return own, rest


#: keys of a weak supervisor's entry that only some sources read (any training argument: source train's)
_APPLIES_TO = {
    **dict.fromkeys(("train_split", "train_size", "shots_per_class", "augment", "num_train_epochs", "learning_rate",
                     "per_device_train_batch_size", "weight_decay", "calibration_size"), ("train",)),
    **dict.fromkeys(("label_noise_rate", "label_noise_kind", "label_noise_transition"), ("train", "noisy_labels")),
    "label_noise_confidence": ("noisy_labels",), "image_processor": ("train", "model", "weak_labels"),
    "weak_labels_split": ("weak_labels",), "combination": ("combine",), "calibrate": ("combine",),
}


def _refuse_ignored(weak, keys: set, where: str) -> None:
    """What is said is what runs: a key of the entry that its source does not read is refused with the reason."""
    from ..trainer.config import WeakToStrongConfig

    own = {f.name for f in dataclasses.fields(WeakSupervisorConfig)}
    training = {f.name for f in dataclasses.fields(WeakToStrongConfig) if f.init} - own
    ignored = sorted(k for k in keys if weak.source not in _APPLIES_TO.get(k, ("train",) if k in training else
                                                                           (weak.source,)))
    if ignored:
        what = {"model": "a trained model used as it is", "weak_labels": "labels given as a dataset",
                "noisy_labels": "label noise on the strong split's ground truth",
                "combine": "a combination of other supervisors", "train": "trained on ground truth"}[weak.source]
        raise ValueError(f"{where}: {ignored} do not apply to source {weak.source} ({what}) and would be ignored; "
                         "remove them, or give the source they apply to (source: train trains it).")


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
        metadata={"help": "Training arguments of this row's runs: loss knobs (kd_temperature, confidence_temperature, "
                  "a_max, ...), gt_loss_weight, or any WeakToStrongConfig field."},
    )
    candidates: list = field(
        default_factory=list,
        metadata={"help": "Values to choose among ON THE VALIDATION SPLIT: mappings of training arguments (each "
                  "with an optional `label`), e.g. [{confidence_temperature: 0.5}, {confidence_temperature: 4.0}]. "
                  "Each runs on the selection seeds; the best mean validation figure runs on the other seeds."},
    )

    def __post_init__(self):
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r} in losses; choose one of {sorted(LOSSES)}")
        check_run_arguments(self.knobs, f"loss {self.name!r}")
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


def parse_candidates(candidates, where: str) -> list[dict]:
    """Candidates to choose among on the validation split: mappings of training arguments, plus an optional
    ``label`` (default: the values) and ``augmentation`` (for ``training_candidates``); distinct labels."""
    if candidates is None:
        return []
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise ValueError(f"{where} must be a list of mappings (training arguments), got {candidates!r}")
    out = []
    for c in candidates:
        c = dict(c)
        check_run_arguments({k: v for k, v in c.items() if k not in CANDIDATE_KEYS}, where)
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
    """One weak supervisor. ``source`` is inferred when left out: ``combine`` if ``combine`` lists other
    supervisors, ``weak_labels`` if a weak-label dataset is given, ``noisy_labels`` if only ``label_noise_rate`` is,
    ``train`` for a model built from a config (``tiny:...``, the default), ``model`` for a checkpoint (used as it
    is; ``source: train`` fine-tunes it)."""

    name: str = field(default="weak", metadata={"help": "Its name in the report, run names and folders."})
    source: str | None = field(
        default=None,
        metadata={"help": "train (trained on ground truth of train_split), model (a trained classifier, as it is), "
                  "weak_labels (a weak-label dataset replaces the strong split), noisy_labels (the strong split's "
                  "ground truth with label noise), combine (several of the other supervisors)."},
    )
    model: str | None = field(
        default=None,
        metadata={"help": "Its model: 'tiny:ARCH[,width=W][,depth=D]' (default tiny:linear,width=8: a linear model "
                  "of the pixels), a Hub id or a local path."},
    )
    image_processor: str | None = field(default=None, metadata={"help": "Its image processor (default: its own)."})
    image_size: int | None = field(
        default=None,
        metadata={"help": "The resolution it sees: a tiny model is built for it, a checkpoint's inputs are resized to "
                  "it (a low-resolution supervisor, e.g. 7 for digits: errors a sharper student need not share)."},
    )
    weak_labels: str | None = field(
        default=None,
        metadata={"help": "source weak_labels: a save_to_disk directory or Hub dataset id with a weak_logits column "
                  "(hf-w2s label); it replaces the strong split. With `model` too, that model gives the weak test "
                  "accuracy."},
    )
    weak_labels_split: str | None = field(default=None, metadata={"help": "The split of that dataset."})
    train_split: str = field(
        default="weak_train",
        metadata={"help": "source train: the ground truth it learns from, weak_train (disjoint from the students'; the "
                  "W2S setting) or strong_train (the distillation setting). Never validation or test.",
                  "choices": ["weak_train", "strong_train"]},
    )
    train_size: int | None = field(default=None, metadata={"help": "Train on a seeded subset of this many examples."})
    shots_per_class: int | None = field(default=None, metadata={"help": "Few-shot: k seeded examples per class."})
    label_noise_rate: float = field(
        default=0.0,
        metadata={"help": "Label noise in [0, 1]: source train learns from corrupted ground truth; source "
                  "noisy_labels supervises with the strong split's corrupted ground truth."},
    )
    label_noise_kind: str = field(default="symmetric", metadata={"help": "symmetric or asymmetric (c -> c+1).",
                                                                  "choices": list(NOISE_KINDS)})
    label_noise_transition: list[int] | None = field(
        default=None,
        metadata={"help": "Asymmetric noise: partner[c] for every class c (CIFAR-10's semantic flips: [0, 1, 0, 5, 7, "
                  "3, 6, 7, 8, 1]); default c -> c+1."},
    )
    label_noise_confidence: float = field(
        default=0.9995,
        metadata={"help": "source noisy_labels: the softmax probability its weak logits put on the (noisy) label."},
    )
    online: bool = field(
        default=False,
        metadata={"help": "Run the weak model on every training batch of its students (the same augmented, mixed "
                  "view), as the paper's code does; default: its labels of the clean strong split, computed once and "
                  "cached by datasets."},
    )
    augment: bool = field(
        default=False, metadata={"help": "Train it with the run's augmentation (never mixup / CutMix)."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "source train: epochs."})
    learning_rate: float = field(default=3e-3, metadata={"help": "source train: learning rate."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "source train: batch size."})
    weight_decay: float = field(default=0.0, metadata={"help": "source train: weight decay."})
    seed: int = field(default=0, metadata={"help": "Seed of its initialisation, subsets and label noise."})
    calibration_size: int = field(
        default=0,
        metadata={"help": "source train: hold this many seeded examples of its ground-truth split out of its "
                  "training; its temperature (conf_select) and accuracy (combination: accuracy) are measured there."},
    )
    combine: list[str] | None = field(
        default=None, metadata={"help": "source combine: the names of the supervisors whose labels are combined."})
    combination: str = field(default="mean", metadata={"help": "source combine: mean, accuracy or learned.",
                                                       "choices": list(COMBINATIONS)})
    calibrate: bool = field(
        default=False, metadata={"help": "source combine: temperature-scale each supervisor before mixing."})
    combine_knobs: dict = field(
        default_factory=dict,
        metadata={"help": "source combine: training arguments of its students (weak_weights_warmup, "
                  "weak_agreement_warmup, weak_weights_learning_rate, ...)."},
    )
    training_args: dict = field(
        default_factory=dict,
        metadata={"help": "Further training arguments of its own training (any other key of the entry)."},
    )

    RANGES: ClassVar[dict[str, tuple]] = {
        "train_size": (1, None, True), "shots_per_class": (1, None, True), "image_size": (1, None, True),
        "label_noise_rate": (0.0, 1.0, True),
        "label_noise_confidence": (0.0, 1.0, False), "num_train_epochs": (0.0, None, False),
        "learning_rate": (0.0, None, False), "per_device_train_batch_size": (1, None, True),
        "weight_decay": (0.0, None, True), "seed": (0, None, True), "calibration_size": (0, None, True),
    }

    @classmethod
    def parse(cls, entry) -> WeakSupervisorConfig:
        if isinstance(entry, WeakSupervisorConfig):
            return entry
        if not isinstance(entry, dict):
            raise ValueError(f"each entry of weak_supervisors must be a mapping, got {entry!r}")
        where = f"weak supervisor {entry.get('name', 'weak')!r}"
        own, rest = _split_entry(cls, entry, where)
        weak = cls(**own, training_args={**own.pop("training_args", {}), **rest})
        _refuse_ignored(weak, set(entry), where)
        return weak

    def __post_init__(self):
        from ..data.loading import check_source_name
        from ..modeling import TINY_PREFIX, parse_tiny

        where = f"weak supervisor {self.name!r}: "
        check_ranges(self, where=where)
        check_choice(where + "label_noise_kind", self.label_noise_kind, NOISE_KINDS)
        check_choice(where + "combination", self.combination, COMBINATIONS)
        check_choice(where + "train_split", self.train_split, ("weak_train", "strong_train"))
        if self.model and self.model.startswith(TINY_PREFIX):
            parse_tiny(self.model, where + "model")
        elif self.model:
            check_source_name(self.model, "model", where + "model")
        if self.weak_labels:
            check_source_name(self.weak_labels, "dataset", where + "weak_labels")
        if self.source is None:
            self.source = (
                "combine" if self.combine else "weak_labels" if self.weak_labels
                else "noisy_labels" if self.label_noise_rate > 0 and not self.model
                else "train" if not self.model or self.model.startswith(TINY_PREFIX) else "model"
            )
        check_choice(where + "source", self.source, SOURCES)
        if self.source == "train" and self.model is None:
            self.model = "tiny:linear,width=8"
        self._check_source(where)
        check_run_arguments(self.training_args, where + "training arguments")
        check_run_arguments(self.combine_knobs, where + "combine_knobs")

    def _check_source(self, where: str) -> None:
        from ..modeling import TINY_PREFIX

        if self.source == "model" and not self.model:
            raise ValueError(f"{where}source model needs `model` (a Hub id or path of a trained classifier).")
        if self.source == "model" and self.model.startswith(TINY_PREFIX):
            raise ValueError(f"{where}{self.model!r} builds an untrained model: use source train (it learns from "
                             "train_split's ground truth).")
        if self.source == "weak_labels" and not self.weak_labels:
            raise ValueError(f"{where}source weak_labels needs `weak_labels` (a weak-label dataset).")
        if self.source == "noisy_labels" and not self.label_noise_rate > 0:
            raise ValueError(f"{where}source noisy_labels needs label_noise_rate > 0.")
        if self.label_noise_transition is not None and self.label_noise_kind != "asymmetric":
            raise ValueError(f"{where}label_noise_transition applies to label_noise_kind asymmetric only.")
        if self.online and self.source not in ("train", "model"):
            raise ValueError(f"{where}online needs a weak model (source train or model), not source "
                             f"{self.source!r}.")
        if self.source == "combine":
            if not self.combine or len(self.combine) < 2 or len(set(self.combine)) != len(self.combine):
                raise ValueError(f"{where}source combine needs `combine`, the names of at least two distinct other "
                                 f"supervisors, got {self.combine}.")
        elif self.combine_knobs:
            raise ValueError(f"{where}combine_knobs apply to source combine only.")

    @property
    def trains(self) -> bool:
        return self.source == "train"


def model_fields() -> frozenset[str]:
    from ..model_config import ModelConfig

    return frozenset(f.name for f in dataclasses.fields(ModelConfig) if f.init)


def parse_setting_candidates(candidates) -> list[dict]:
    """Each candidate checked (its keys are options of the student, ``cache_features`` or training arguments; distinct
    labels, given or made from the values)."""
    if not candidates:
        return []
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise ValueError(f"setting_candidates must be a list of mappings, got {candidates!r}")
    out = []
    for c in candidates:
        c = dict(c)
        training = {k: v for k, v in c.items() if k not in model_fields() | {"label", "cache_features"}}
        check_run_arguments(training, f"setting_candidates {c.get('label', c)!r}")
        if c.get("label") is None:
            c["label"] = ",".join(f"{k}={v}" for k, v in sorted(c.items()) if k != "label") or "default"
        out.append(c)
    labels = [c["label"] for c in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"setting_candidates: labels must be distinct, got {labels}")
    return out
