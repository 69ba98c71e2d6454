"""``WeakToStrongConfig``: ``TrainingArguments`` plus the weak-to-strong knobs (TRL's ``*_config.py`` style)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import ClassVar

from transformers import TrainingArguments

from ..checkpoints import resume_target
from ..losses import LOSSES, LossKnobs, knobs_of
from ..options import check_choice, check_finite_numbers, check_ranges
from ..outputs import check_output_path
from ..security import redact_obj
from .combiner import COMBINATIONS
from .integrations import check_hub_strategy, check_report_to
from .student_modes import STUDENT_MODES

__all__ = ["WeakToStrongConfig"]


@dataclass
class WeakToStrongConfig(LossKnobs, TrainingArguments):
    r"""Configuration for [`WeakToStrongTrainer`].

    Extends `transformers.TrainingArguments` with the loss of weak-to-strong training and its knobs (the fields of
    [`~hf_w2s.losses.LossKnobs`], whose defaults are the only ones). With student logits `s`, weak logits `w` and true
    labels `y`, the trainer minimises `gt_loss_weight * CE(s, y) + weak_loss_weight * mean(LOSSES[w2s_loss](s, w))`.

    Every option is checked when the config is built (and again by the trainer): hf_w2s's own numbers against
    `RANGES` ([`~hf_w2s.options.check_ranges`]), transformers' numbers for finiteness (and `TRAINING_RANGES`: the few
    that torch or numpy would refuse only once training started), word options against their choices; some training
    must happen (epochs or steps > 0, a loss that is not 0 by its weights). What part of the student trains is
    `student_mode` ([`hf_w2s.trainer.student_modes`]); LoRA is the trainer's `peft_config`.
    """

    #: ``name: (low, high, closed)`` of every numeric option of hf_w2s's (the loss knobs' and the trainer's)
    RANGES: ClassVar[dict[str, tuple]] = {
        **LossKnobs.RANGES,
        "gt_loss_weight": (0.0, None, True),
        "weak_loss_weight": (0.0, None, True),
        "layer_decay": (0.0, 1.0, False),
        "student_calibration_steps": (0, None, True),
        "weak_weights_learning_rate": (0.0, None, False),
        "weak_weights_warmup": (0.0, 1.0, True),
        "weak_agreement_warmup": (0.0, 1.0, True),
        "weak_accuracies": (0.0, 1.0, True),
        "weak_temperatures": (0.0, None, False),
        "pixel_cache_mb": (0.0, None, True),
        "trainable_blocks": (1, None, True),
    }
    #: TrainingArguments numbers that transformers accepts but torch, numpy or the Trainer refuse once training
    #: starts (an optimizer with a negative learning rate, a DataLoader of batch size 0, a seed numpy cannot take):
    #: refused when the config is built, before any compute. Their other numbers are only checked to be finite.
    TRAINING_RANGES: ClassVar[dict[str, tuple]] = {
        "learning_rate": (0.0, None, True),
        "weight_decay": (0.0, None, True),
        "per_device_train_batch_size": (1, None, True),
        "per_device_eval_batch_size": (1, None, True),
        "gradient_accumulation_steps": (1, None, True),
        "seed": (0, None, True),
    }

    w2s_loss: str = field(
        default="adapt_conf",
        metadata={
            "help": "Weak-to-strong loss, a name in hf_w2s.LOSSES: adapt_conf (AdaptConf), aug_conf (AugConf), "
            "aux_conf (OpenAI's auxiliary confidence loss), kd (Hinton KD), weak_soft, weak_hard (naive), "
            "ground_truth (the strong ceiling).",
            "choices": LOSSES.keys(),
        },
    )
    student_mode: str = field(
        default="full",
        metadata={"help": "What of the student trains: full (every weight), linear_probe (the backbone frozen in "
                  "eval mode, batch norms included: a linear probe on the pretrained features), last_blocks (the last "
                  "trainable_blocks blocks and the head). LoRA is a peft_config (use_peft).",
                  "choices": list(STUDENT_MODES)},
    )
    trainable_blocks: int = field(
        default=1, metadata={"help": "student_mode last_blocks: how many of the backbone's last blocks train (>= 1)."}
    )
    gt_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Weight lambda_gt of CE to the true labels added to a weak loss (1.0 in the paper's "
                  "distillation setting, 0 when only weak labels exist)."},
    )
    weak_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight lambda_w of the weak-supervision loss."}
    )
    image_column: str = field(
        default="image", metadata={"help": "Name of the image column when batches are built from raw images."}
    )
    weak_logits_column: str = field(
        default="weak_logits", metadata={"help": "Name of the column holding the cached weak logits."}
    )
    eval_dataset_split: str | None = field(
        default=None,
        metadata={"help": "Split loaded when WeakToStrongTrainer's eval_dataset is given as a Hub dataset id or a "
                  "local path (default: its 'test' split, or all of a dataset without splits; train_dataset given "
                  "that way loads its 'train' split)."},
    )
    layer_decay: float = field(
        default=1.0,
        metadata={"help": "Layer-wise learning-rate decay (BEiT / MAE fine-tuning; the paper uses 0.65 for ViT-B): "
                  "encoder block i of L trains at lr * layer_decay^(L - i), the embeddings at lr * layer_decay^(L + "
                  "1), the head at lr. For encoders with one sequence of numbered blocks, layers.N / encoder.layer.N "
                  "(ViT, DeiT, BEiT, DINOv2, ViT-MAE; also under LoRA). 1.0 = off. In (0, 1]."},
    )
    # -- conf_select (the loss's knobs are LossKnobs fields) --
    student_calibration_steps: int = field(
        default=50,
        metadata={"help": "conf_select with a calibration_dataset: refit the student's temperature every this many "
                  "optimizer steps (and at the start of training); 0 = only at the start. Must be >= 0."},
    )
    # -- several weak supervisors (hf_w2s.trainer.combiner) --
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
                  "the order of weak_logits_columns (hf_w2s.data.multi_weak.supervisor_accuracies)."},
    )
    weak_temperatures: list[float] | None = field(
        default=None,
        metadata={"help": "Optional temperature per weak supervisor applied before combining (calibration, "
                  "hf_w2s.data.multi_weak.supervisor_temperatures), in the order of weak_logits_columns."},
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

    check_images: bool = field(
        default=True,
        metadata={"help": "Decode every image of the training and evaluation datasets before training, so that an "
                  "image that does not decode stops the run before any compute, with its row and path (each dataset "
                  "once per process; ~1 s per 20,000 small PNGs). Turn off for very large datasets you trust."},
    )
    channels_last: bool = field(
        default=False,
        metadata={"help": "Keep the student's (and an online weak model's) convolution weights in channels-last "
                  "memory format (torch.channels_last): the same model and results up to float rounding, faster "
                  "convolutions — on a 2-core CPU, EfficientNet-Lite0 at 32 px trains ~1.1x and evaluates ~2.3x "
                  "faster (benchmarks/channels_last.py). No effect on models without convolutions (ViT)."},
    )
    pixel_cache_mb: float = field(
        default=1024.0,
        metadata={"help": "Decode and pre-process each image of a (map-style) training or evaluation dataset once and "
                  "keep the pixel values in memory when they take at most this many MiB (the same batches, in the "
                  "same order, as pre-processing every batch; random augmentation still runs every step). 0: "
                  "pre-process every batch."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace a run already in output_dir (its checkpoint-* folders are removed). Without it, "
                  "training refuses an output_dir that holds a different run; resume_from_checkpoint continues one."},
    )

    # -- tokens never leave the process through the config -------------------------------------------------------

    def __repr__(self) -> str:
        # @dataclass would generate a repr that prints hub_token; TrainingArguments' __str__ masks every *_token
        return self.__str__()

    def __getstate__(self):
        # the Trainer pickles its arguments into training_args.bin (pushed with the model): never with a token
        state = redact_obj(self.__dict__.copy())
        state["hub_token"] = None
        return state

    def __deepcopy__(self, memo):
        # an in-process deep copy keeps the token (pickling drops it, see __getstate__)
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new

    def __post_init__(self):
        if isinstance(self.resume_from_checkpoint, bool):  # Trainer.train takes True; the field is a string
            self.resume_from_checkpoint = "true" if self.resume_from_checkpoint else None
        self.validate_w2s()
        check_output_path(self.output_dir, "output_dir")
        resume_target(self.resume_from_checkpoint, hub=bool(self.push_to_hub))
        super().__post_init__()
        if self.dataloader_pin_memory and not _has_accelerator(self):
            self.dataloader_pin_memory = False  # pinned memory is for copies to an accelerator; torch warns otherwise
        check_report_to(self.report_to)  # trackers and Hub pushes: refused now, not after a weak model trained
        check_hub_strategy(self)

    def validate_w2s(self) -> None:
        """Check the weak-to-strong options and the numbers of every option; raises ``ValueError`` naming the bad
        option before anything runs. The trainer calls it again, so a knob changed after construction is checked
        too."""
        check_choice("w2s_loss", self.w2s_loss, sorted(LOSSES))
        check_choice("student_mode", self.student_mode, STUDENT_MODES)
        check_ranges(self)
        check_ranges(self, self.TRAINING_RANGES)
        check_finite_numbers(self, {f.name for f in fields(TrainingArguments)} - set(self.TRAINING_RANGES))
        for f in fields(LossKnobs):
            if "choices" in f.metadata:
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        self._validate_length()
        self._validate_beyond_the_paper()

    def _validate_length(self) -> None:
        """Some training must happen: epochs or steps > 0, and a loss that is not 0 by its weights."""
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be > 0 (or -1: train for num_train_epochs), got {self.max_steps}.")
        if self.max_steps < 0 and not self.num_train_epochs > 0:
            raise ValueError(f"num_train_epochs must be > 0 (or set max_steps > 0), got {self.num_train_epochs}.")
        if LOSSES[self.w2s_loss].uses_weak and self.weak_loss_weight == 0 and self.gt_loss_weight == 0:
            raise ValueError(f"w2s_loss={self.w2s_loss!r} with weak_loss_weight=0 and gt_loss_weight=0 is a loss of "
                             "0: nothing would be learned. Give one of the two weights a value > 0.")

    def _validate_beyond_the_paper(self) -> None:
        """Several weak supervisors (hf_w2s.trainer.combiner); their numeric ranges are in ``RANGES``."""
        check_choice("weak_combination", self.weak_combination, COMBINATIONS)
        cols = self.weak_logits_columns
        if cols is not None:
            if isinstance(cols, str):
                raise ValueError(f"weak_logits_columns must be a list of column names, got {cols!r} (str).")
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
        if self.weak_combination == "accuracy" and cols and self.weak_accuracies is None:
            raise ValueError("weak_combination='accuracy' needs weak_accuracies (one per weak_logits_columns entry).")

    def loss_knobs(self) -> dict:
        """The knobs the chosen loss reads (``LOSSES[w2s_loss].knobs``) and their values."""
        return knobs_of(self.w2s_loss, self)


def _has_accelerator(args) -> bool:
    """Whether the run will train on an accelerator (a GPU, MPS, XPU, ...): not with ``use_cpu``, nor on a machine
    without one."""
    import torch

    if args.use_cpu:
        return False
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()
