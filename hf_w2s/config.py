"""``WeakToStrongConfig``: ``TrainingArguments`` plus the weak-to-strong knobs (TRL's ``*_config.py`` style)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .losses import LOSSES


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

    def loss_knobs(self) -> dict:
        """The keyword arguments handed to the loss function."""
        return {
            "confidence_temperature": self.confidence_temperature,
            "kd_temperature": self.kd_temperature,
            "a_max": self.a_max,
            "a_ramp": self.a_ramp,
            "a_warmup": self.a_warmup,
        }
