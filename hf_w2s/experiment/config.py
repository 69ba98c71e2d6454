"""``ExperimentConfig``: the runs of one weak-to-strong experiment — its weak supervisors, losses, seeds, ceiling,
candidates chosen on validation, augmentation — the options group of the one schema that ``hf-w2s train``,
``hf-w2s experiment`` and ``hf-w2s demo`` share with :class:`~hf_w2s.DataConfig`, :class:`~hf_w2s.ModelConfig` and
:class:`~hf_w2s.WeakToStrongConfig` (the training arguments of every strong run).

Entries of ``weak_supervisors`` are mappings of :class:`WeakSupervisorConfig` fields, plus any training argument of
its own training (``num_train_epochs: 30``); entries of ``losses`` are registry names or mappings
``{name:, label:, <training argument>: value, candidates: [...]}`` (:class:`LossSpec`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..losses import LOSSES
from ..options import check_choice, check_ranges
from .entries import RUN_SET, LossSpec, WeakSupervisorConfig, parse_candidates, parse_setting_candidates
from .store import non_default

__all__ = ["ExperimentConfig", "WeakSupervisorConfig", "LossSpec", "RUN_SET", "SELECTION_METRICS", "weak_losses"]

SELECTION_METRICS = ("accuracy", "loss")
#: a fixed-mix AugConf: a = 0.5 from the first step (no ramp), to test whether AdaptConf's *adaptive* a helps
FIXED_MIX = {"name": "aug_conf", "label": "aug_conf_fixed_a0.5", "a_max": 0.5, "a_ramp": 0.0}


def weak_losses() -> list[str]:
    """Every registered loss that learns from weak supervision and applies to any number of classes (``ground_truth``
    is the ceiling, run anyway; OpenAI's binary ``aux_conf`` is left out, ``aux_conf_multiclass`` is in)."""
    return [name for name, info in LOSSES.items() if not info.needs_labels and info.num_classes is None]


def default_losses() -> list:
    return [*weak_losses(), dict(FIXED_MIX)]


@dataclass
class ExperimentConfig:
    """The runs: weak supervisors, losses, seeds, ceiling, candidates, augmentation (ExperimentConfig)"""

    _argument_group_name = "the runs (ExperimentConfig)"

    weak_supervisors: list = field(
        default_factory=lambda: [{"name": "weak"}],
        metadata={"help": "The weak supervisors (mappings of WeakSupervisorConfig fields plus training arguments of "
                  "their own training), e.g. [{name: weak85, model: 'tiny:linear,width=16', num_train_epochs: 30}].",
                  "yaml": True, "list": True},
    )
    losses: list = field(
        default_factory=default_losses,
        metadata={"help": "The losses compared, one row each: registry names, 'all' (every weak loss not listed "
                  "otherwise), or mappings {name:, label:, <training argument>: value, candidates: [...]}. Default: "
                  "every weak loss plus aug_conf with a fixed a = 0.5.", "yaml": True, "list": True},
    )
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the strong runs."})
    ceiling: bool = field(
        default=True,
        metadata={"help": "Train the strong ceiling (the student on the strong split's ground truth) per seed; "
                  "PGR needs it."},
    )
    training_candidates: list = field(
        default_factory=list,
        metadata={"help": "Training settings to choose among ON THE VALIDATION SPLIT, for the ceiling and every loss "
                  "alike: mappings of training arguments, each with an optional label and augmentation.",
                  "yaml": True, "list": True},
    )
    selection_metric: str = field(
        default="accuracy",
        metadata={"help": "What chooses on the validation split (candidates, checkpoints with "
                  "load_best_model_at_end, the saved student).", "choices": list(SELECTION_METRICS)},
    )
    selection_protocol: str = field(
        default="ground_truth",
        metadata={"help": "What the validation split's labels are when a student run is chosen (its checkpoint, its "
                  "candidate, the saved student): ground_truth, or weak_labels — what its supervisor says of the "
                  "validation split (the no-ground-truth situation weak-to-strong is about; the ceiling and the "
                  "report's test figures still use ground truth).", "choices": ["ground_truth", "weak_labels"]},
    )
    selection_seeds: list[int] | None = field(
        default=None,
        metadata={"help": "Seeds on which candidates are compared (default: every seed); the chosen one then runs on "
                  "the other seeds."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop a strong run after this many evaluations without a better validation figure "
                  "(implies load_best_model_at_end)."},
    )
    setting_candidates: list = field(
        default_factory=list,
        metadata={"help": "The student's setting to choose ON THE VALIDATION SPLIT, by the ceiling, before any student "
                  "trains: mappings of student options (input_size, ...), cache_features and training arguments "
                  "(student_mode, num_train_epochs, learning_rate, weight_decay, ...), each with an optional label; "
                  "every other run is trained in the chosen one. Needs ceiling: true.", "yaml": True, "list": True},
    )
    cache_features: bool = field(
        default=False,
        metadata={"help": "The students and the ceiling are linear probes trained on the frozen student's features, "
                  "computed once per split and cached (hf_w2s.data.features): student_mode linear_probe, tens of "
                  "times faster. The saved student is the whole model with the trained head."},
    )
    augmentation: Any = field(
        default=None,
        metadata={"help": "Training augmentation of the strong runs: kornia.augmentation classes mapped to their "
                  "arguments, in order (RandAugment: kornia.augmentation.auto's; RandomErasing: after normalisation), "
                  "e.g. {RandomResizedCrop: {size: [32, 32], scale: [0.35, 1.0]}, RandomHorizontalFlip: {p: 0.5}}.",
                  "yaml": True},
    )
    mixup_alpha: float = field(
        default=0.0,
        metadata={"help": "Mixup Beta(alpha, alpha) on the strong runs' batches (0 = off): images, weak supervision "
                  "and true labels are mixed alike."},
    )
    cutmix_alpha: float = field(
        default=0.0,
        metadata={"help": "CutMix Beta(alpha, alpha) (0 = off); with mixup too, each batch gets one of the two."},
    )
    metrics: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Metrics of the strong runs (validation curves, test figures, the card): accuracy, "
                  "top5_accuracy. Agreement with the supervisor and PGR are always reported."},
    )
    label_batch_size: int = field(default=256, metadata={"help": "Batch size of weak labelling."})
    save_students: bool = field(default=False, metadata={"help": "Also keep every student's model under runs/."})
    plots: bool = field(default=True, metadata={"help": "Write the report's PNG plots (needs hf_w2s[plots])."})
    title: str | None = field(default=None, metadata={"help": "Title of the report."})

    RANGES: ClassVar[dict[str, tuple]] = {
        "seeds": (0, None, True), "selection_seeds": (0, None, True), "early_stopping_patience": (1, None, True),
        "mixup_alpha": (0.0, None, True), "cutmix_alpha": (0.0, None, True), "label_batch_size": (1, None, True),
    }

    def __post_init__(self):
        check_ranges(self)
        check_choice("selection_metric", self.selection_metric, SELECTION_METRICS)
        from ..metrics import METRICS

        for name in self.metrics:
            check_choice("metrics", name, METRICS)
        if "accuracy" not in self.metrics:
            self.metrics = ["accuracy", *self.metrics]
        if isinstance(self.weak_supervisors, dict) or isinstance(self.losses, (str, dict)):
            what = "weak_supervisors" if isinstance(self.weak_supervisors, dict) else "losses"
            raise ValueError(f"{what} must be a list (one entry per row: {what}: [...]), got "
                             f"{getattr(self, what)!r}.")
        self.weak_supervisors = [WeakSupervisorConfig.parse(w) for w in self.weak_supervisors or []]
        explicit = [LossSpec.parse(e) for e in self.losses or [] if e != "all"]
        listed = {spec.label for spec in explicit}
        losses, explicit = [], iter(explicit)
        for entry in self.losses or []:
            if entry == "all":  # every weak loss of the registry that is not listed on its own
                losses += [LossSpec(name=n) for n in weak_losses() if n not in listed]
            else:
                losses.append(next(explicit))
        self.losses = losses
        self.training_candidates = parse_candidates(self.training_candidates, "training_candidates")
        self.setting_candidates = parse_setting_candidates(self.setting_candidates)
        check_choice("selection_protocol", self.selection_protocol, ("ground_truth", "weak_labels"))
        if self.selection_protocol == "weak_labels":
            given = [w.name for w in self.weak_supervisors if w.source == "weak_labels" and not w.model]
            if given:
                raise ValueError(f"selection_protocol weak_labels needs what each supervisor says of the validation "
                                 f"split: {given} are weak-label datasets without their model (give model:).")
            if self.setting_candidates:
                raise ValueError("setting_candidates are chosen by the ceiling on ground truth; with "
                                 "selection_protocol weak_labels choose the setting beforehand (or use "
                                 "selection_protocol ground_truth).")
        if self.setting_candidates and not self.ceiling:
            raise ValueError("setting_candidates are chosen by the ceiling's validation figure: set ceiling: true.")
        self._check_rows()
        self._check_optional_dependencies()

    def _check_rows(self) -> None:
        if not self.weak_supervisors and any(not LOSSES[s.name].needs_labels for s in self.losses):
            raise ValueError("weak_supervisors is empty but weak losses are listed: the students need a supervisor.")
        names = [w.name for w in self.weak_supervisors]
        if len(set(names)) != len(names):
            raise ValueError(f"weak supervisor names must be unique, got {names}")
        for w in self.weak_supervisors:
            if w.source == "combine":
                members = [m for m in self.weak_supervisors if m.name in w.combine]
                bad = [n for n in w.combine if n not in names or n == w.name]
                if bad or any(m.source == "combine" for m in members):
                    raise ValueError(f"weak supervisor {w.name!r}: combine must name other, non-combined "
                                     f"supervisors of this config ({[n for n in names if n != w.name]}), got "
                                     f"{w.combine}.")
        labels = [spec.label for spec in self.losses]
        duplicated = sorted({x for x in labels if labels.count(x) > 1})
        if duplicated:
            raise ValueError(f"losses {duplicated} appear twice; give repeated losses distinct `label`s.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if self.selection_seeds is not None:
            bad = [s for s in self.selection_seeds if s not in self.seeds]
            if not self.selection_seeds or bad:
                raise ValueError(f"selection_seeds must be a non-empty subset of seeds {self.seeds}, got "
                                 f"{self.selection_seeds}")

    def _check_optional_dependencies(self) -> None:
        """What the runs will need from optional packages, checked before anything trains: matplotlib for the plots,
        kornia for augmentation and mixing (every augmentation entry built once)."""
        from ..import_utils import require
        from ..trainer.augment import check_augmentation

        if self.plots:
            require("matplotlib", "the experiment report's plots (plots: true)", "plots")
        check_augmentation(self.augmentation)
        for c in self.training_candidates:
            check_augmentation(c.get("augmentation"), f"training_candidates {c['label']!r} augmentation")
        if self.mixup_alpha or self.cutmix_alpha:
            require("kornia", "mixup_alpha / cutmix_alpha", "aug")

    @property
    def student_rows(self) -> int:
        return len(self.weak_supervisors) * len(self.losses)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["losses"] = [{"name": s.name, "label": s.label, **s.knobs, **({"candidates": s.candidates}
                                                                           if s.candidates else {})}
                         for s in self.losses]
        out["weak_supervisors"] = [non_default(w) for w in self.weak_supervisors]
        return out
