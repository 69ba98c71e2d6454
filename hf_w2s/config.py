"""``WeakToStrongConfig``: ``TrainingArguments`` plus the weak-to-strong knobs (TRL's ``*_config.py`` style)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .conf_select import CONF_SELECT_MODES
from .losses import LOSSES
from .multi_weak import COMBINATIONS


@dataclass
class WeakToStrongConfig(TrainingArguments):
    r"""Configuration for [`WeakToStrongTrainer`].

    Extends `transformers.TrainingArguments` with the loss of weak-to-strong training and its knobs. With student
    logits `s`, weak logits `w` and true labels `y`, the trainer minimises
    `gt_loss_weight * CE(s, y) + weak_loss_weight * mean(LOSSES[w2s_loss](s, w))`.
    """

    w2s_loss: str = field(
        default="adapt_conf",
        metadata={
            "help": "Weak-to-strong loss, a name in hf_w2s.LOSSES: adapt_conf (AdaptConf), aug_conf (AugConf), "
            "aux_conf (OpenAI's auxiliary confidence loss), kd (Hinton KD), weak_soft, weak_hard (naive), "
            "ground_truth (the strong ceiling)."
        },
    )
    confidence_temperature: float = field(
        default=0.5,
        metadata={"help": "AdaptConf's confidence temperature T (paper: 0.5 on CIFAR, 4.0 on ImageNet). Must be > 0."},
    )
    kd_temperature: float = field(
        default=1.0, metadata={"help": "Distillation temperature tau of the KD term (paper default 1). Must be > 0."}
    )
    gt_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Weight lambda_gt of CE to the true labels added to a weak loss (1.0 in the paper's "
                  "distillation setting, 0 when only weak labels exist)."},
    )
    weak_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight lambda_w of the weak-supervision loss."}
    )
    a_max: float = field(
        default=0.5,
        metadata={"help": "aug_conf / aux_conf: the confidence weight a reached after the ramp, in [0, 1]."},
    )
    a_ramp: float = field(
        default=0.3,
        metadata={"help": "aug_conf / aux_conf: fraction of training over which a rises linearly from 0 to a_max "
                  "(0 = constant a_max from the start), in [0, 1]."},
    )
    a_warmup: float = field(
        default=0.0,
        metadata={"help": "adapt_conf: fraction of training over which the adaptive a is multiplied by a linear "
                  "warm-up from 0 to 1 (the paper uses 0.25 for few-shot and noisy labels), in [0, 1]."},
    )
    image_column: str = field(
        default="image", metadata={"help": "Name of the image column when batches are built from raw images."}
    )
    weak_logits_column: str = field(
        default="weak_logits", metadata={"help": "Name of the column holding the cached weak logits."}
    )
    eval_dataset_split: str = field(
        default="test",
        metadata={"help": "Split loaded when WeakToStrongTrainer's eval_dataset is given as a Hub dataset id or a "
                  "local path (train_dataset given that way loads its 'train' split)."},
    )
    layer_decay: float = field(
        default=1.0,
        metadata={"help": "Layer-wise learning-rate decay (BEiT / MAE fine-tuning; the paper uses 0.65 for ViT-B): "
                  "encoder block i of L trains at lr * layer_decay^(L - i), the embeddings at lr * layer_decay^(L + "
                  "1), the head at lr. For encoders with one sequence of numbered blocks, layers.N / encoder.layer.N "
                  "(ViT, DeiT, BEiT, DINOv2, ViT-MAE; also under LoRA). 1.0 = off. In (0, 1]."},
    )
    # -- conf_select (hf_w2s.conf_select) --
    conf_select_mode: str = field(
        default="hard",
        metadata={"help": "conf_select: 'hard' trains toward the label (weak or the student's own) with the higher "
                  "calibrated confidence; 'soft' weights the two by their calibrated confidences."},
    )
    conf_select_warmup: float = field(
        default=0.0,
        metadata={"help": "conf_select: fraction of training over which the student's confidence is scaled up "
                  "linearly from 0 (the weak label always wins) to 1, in [0, 1]."},
    )
    weak_calibration_temperature: float = field(
        default=1.0,
        metadata={"help": "conf_select: temperature T_w calibrating the weak supervisor's softmax, fitted on its "
                  "held-out ground truth (hf_w2s.conf_select.fit_temperature / column_temperature). Must be > 0."},
    )
    student_calibration_temperature: float = field(
        default=1.0,
        metadata={"help": "conf_select: temperature T_s calibrating the student's softmax when the trainer has no "
                  "calibration_dataset; with one, T_s is refitted on it during training. Must be > 0."},
    )
    student_calibration_steps: int = field(
        default=50,
        metadata={"help": "conf_select with a calibration_dataset: refit the student's temperature every this many "
                  "optimizer steps (and at the start of training); 0 = only at the start. Must be >= 0."},
    )
    # -- several weak supervisors (hf_w2s.multi_weak) --
    weak_logits_columns: list[str] | None = field(
        default=None,
        metadata={"help": "Several weak supervisors: the names of their logits columns (e.g. weak_logits_0 "
                  "weak_logits_1 weak_logits_2); they are combined by weak_combination into one supervision. "
                  "Unset: one supervisor in weak_logits_column."},
    )
    weak_combination: str = field(
        default="mean",
        metadata={"help": "How several weak supervisors are combined (a mixture of their probabilities): 'mean' "
                  "(equal weights), 'accuracy' (weights proportional to accuracy above chance, weak_accuracies), "
                  "'learned' (softmax of a trainable vector, trained jointly with the student)."},
    )
    weak_accuracies: list[float] | None = field(
        default=None,
        metadata={"help": "weak_combination='accuracy': each supervisor's accuracy on its ground-truth split, in "
                  "the order of weak_logits_columns (hf_w2s.multi_weak.supervisor_accuracies)."},
    )
    weak_temperatures: list[float] | None = field(
        default=None,
        metadata={"help": "Optional temperature per weak supervisor applied before combining (calibration, "
                  "hf_w2s.multi_weak.supervisor_temperatures), in the order of weak_logits_columns."},
    )
    weak_weights_learning_rate: float = field(
        default=0.05,
        metadata={"help": "weak_combination='learned': learning rate of the supervisor weights' logits (their own "
                  "optimizer group, no weight decay). Must be > 0."},
    )
    weak_weights_warmup: float = field(
        default=0.3,
        metadata={"help": "weak_combination='learned': fraction of training during which the weights stay fixed "
                  "(uniform) before they start learning: the student's early predictions are noise, and the weights "
                  "learn from agreement with the student. In [0, 1]."},
    )
    weak_agreement_warmup: float = field(
        default=0.0,
        metadata={"help": "Several weak supervisors: fraction of training during which the student trains only on "
                  "the examples where all supervisors agree, in [0, 1]."},
    )

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace a run already in output_dir (its checkpoint-* folders are removed). Without it, "
                  "training refuses an output_dir that holds a different run; resume_from_checkpoint continues one. "
                  "(transformers 5 removed TrainingArguments.overwrite_output_dir; this is hf_w2s's own flag.)"},
    )

    # -- tokens never leave the process through the config -------------------------------------------------------

    def __repr__(self) -> str:
        # @dataclass would generate a repr that prints hub_token; TrainingArguments' __str__ masks every *_token
        return self.__str__()

    def __getstate__(self):
        # the Trainer pickles its arguments into training_args.bin (pushed with the model): never with the token
        state = self.__dict__.copy()
        if state.get("hub_token") is not None:
            state["hub_token"] = None
        return state

    def __deepcopy__(self, memo):
        # an in-process deep copy keeps the token (pickling drops it, see __getstate__)
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new

    def __post_init__(self):
        self.validate_w2s()
        super().__post_init__()

    def validate_w2s(self) -> None:
        """Check the weak-to-strong knobs; raises ``ValueError`` naming the bad knob before anything runs."""
        if self.w2s_loss not in LOSSES:
            raise ValueError(f"w2s_loss={self.w2s_loss!r} is not a known loss; choose one of {sorted(LOSSES)}.")
        for name in ("confidence_temperature", "kd_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("a_max", "a_ramp", "a_warmup"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {v}.")
        for name in ("gt_loss_weight", "weak_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}.")
        self._validate_beyond_the_paper()

    def _validate_beyond_the_paper(self) -> None:
        """conf_select and several weak supervisors (hf_w2s.conf_select, hf_w2s.multi_weak)."""
        if self.conf_select_mode not in CONF_SELECT_MODES:
            raise ValueError(f"conf_select_mode must be one of {CONF_SELECT_MODES}, got {self.conf_select_mode!r}.")
        for name in ("weak_calibration_temperature", "student_calibration_temperature", "weak_weights_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("conf_select_warmup", "weak_agreement_warmup", "weak_weights_warmup"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}.")
        if self.student_calibration_steps < 0:
            raise ValueError(f"student_calibration_steps must be >= 0, got {self.student_calibration_steps}.")
        if self.weak_combination not in COMBINATIONS:
            raise ValueError(f"weak_combination must be one of {COMBINATIONS}, got {self.weak_combination!r}.")
        cols = self.weak_logits_columns
        if cols is not None:
            if isinstance(cols, str):
                raise ValueError(f"weak_logits_columns must be a list of column names, got the string {cols!r}.")
            if len(cols) < 1 or len(set(cols)) != len(cols):
                raise ValueError(f"weak_logits_columns must name distinct columns, got {cols}.")
        k = len(cols) if cols else None
        for name in ("weak_accuracies", "weak_temperatures"):
            values = getattr(self, name)
            if values is None:
                continue
            if k is None:
                raise ValueError(f"{name} is set but weak_logits_columns is not (it is per weak supervisor).")
            if len(values) != k:
                raise ValueError(f"{name} has {len(values)} values for {k} weak_logits_columns.")
        if self.weak_accuracies is not None and not all(0.0 <= a <= 1.0 for a in self.weak_accuracies):
            raise ValueError(f"weak_accuracies must lie in [0, 1], got {self.weak_accuracies}.")
        if self.weak_temperatures is not None and not all(t > 0 for t in self.weak_temperatures):
            raise ValueError(f"weak_temperatures must be > 0, got {self.weak_temperatures}.")
        if self.weak_combination == "accuracy" and cols and self.weak_accuracies is None:
            raise ValueError("weak_combination='accuracy' needs weak_accuracies (one per weak_logits_columns entry).")

    def loss_knobs(self) -> dict:
        """The keyword arguments handed to the loss function."""
        return {
            "confidence_temperature": self.confidence_temperature,
            "kd_temperature": self.kd_temperature,
            "a_max": self.a_max,
            "a_ramp": self.a_ramp,
            "a_warmup": self.a_warmup,
            "conf_select_mode": self.conf_select_mode,
            "conf_select_warmup": self.conf_select_warmup,
            "weak_calibration_temperature": self.weak_calibration_temperature,
            "student_calibration_temperature": self.student_calibration_temperature,
        }
