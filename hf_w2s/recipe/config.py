"""``RecipeArguments``: what a recipe trains, on what data, supervised by whom (``hf-w2s train`` and
``recipes/configs/*.yaml``). Training hyper-parameters and the loss live in :class:`~hf_w2s.WeakToStrongConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..data.loading import check_source_name
from ..data.noise import NOISE_KINDS
from ..metrics import METRICS
from ..modeling import TINY_PREFIX
from ..trainer.config import WeakToStrongConfig
from ..trainer.validation import check_options

WEAK_SUPERVISION_MODES = ("online", "cached")


@dataclass
class RecipeArguments:
    """What to train, on what, supervised by whom. Training hyper-parameters and the loss live in
    :class:`~hf_w2s.WeakToStrongConfig`."""

    _argument_group_name = "recipe options (the student, the data, the weak supervision, augmentation)"
    #: ``name: (low, high, closed)`` of the numeric options (checked with their types by ``validate``)
    RANGES: ClassVar[dict[str, tuple]] = {
        "image_size": (1, None, True), "num_channels": (1, None, True), "split_sizes": (0, None, True),
        "split_seed": (0, None, True), "max_train_samples": (1, None, True), "max_eval_samples": (1, None, True),
        "weak_shots_per_class": (1, None, True), "weak_num_train_epochs": (0.0, None, False),
        "weak_learning_rate": (0.0, None, False), "label_noise_rate": (0.0, 1.0, True),
        "label_noise_transition": (0, None, True), "label_noise_seed": (0, None, True),
        "label_noise_confidence": (0.0, 1.0, False), "crop_scale_min": (0.0, 1.0, False),
        "randaugment_n": (0, None, True), "randaugment_m": (0, None, True), "random_erasing": (0.0, 1.0, True),
        "mixup_alpha": (0.0, None, True), "cutmix_alpha": (0.0, None, True), "input_size": (1, None, True),
        "weak_accuracy": (0.0, 1.0, True),
        "ceiling_accuracy": (0.0, 1.0, True), "validation_size": (0.0, None, True),
    }

    # -- the strong student ---------------------------------------------------------------------------------------
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "The strong student: a Hub id or local path of any AutoModelForImageClassification "
                  "checkpoint (its head is replaced by a fresh one sized to the label set), an MAE checkpoint "
                  "(vit_mae, loaded as ViTForImageClassification), or 'tiny:ARCH[,width=W][,depth=D]' with ARCH in "
                  "resnet|vit|convnext|linear for a small model built offline from a config."},
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    image_processor_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Image processor id/path (default: the student's; for tiny models a resize + rescale + "
                  "normalise processor at image_size with mean/std 0.5)."},
    )
    image_size: int = field(default=28, metadata={"help": "Input size of tiny models and their processor."})
    input_size: int | None = field(
        default=None,
        metadata={"help": "Resize a checkpoint student's inputs to this square size instead of its processor's own "
                  "(e.g. 32 for hf_w2s:efficientnet-lite0 on digits; tiny models use image_size)."},
    )
    num_channels: int = field(default=1, metadata={"help": "Channels of tiny models (1 = grayscale, 3 = RGB)."})

    # -- the data -------------------------------------------------------------------------------------------------
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Dataset: a Hub id, a local save_to_disk directory, a local data directory, 'imagefolder' "
                  "(with dataset_dir), or 'hf_w2s:mnist' / 'hf_w2s:sklearn_digits' (packaged offline digits, split "
                  "by split_sizes into weak_train / strong_train / test)."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub dataset revision (branch, tag or commit); the card records the commit."})
    dataset_dir: str | None = field(default=None, metadata={"help": "data_dir for 'imagefolder'."})
    dataset_train_split: str = field(
        default="train", metadata={"help": "Split the student trains on (strong_train for packaged data)."})
    dataset_test_split: str = field(
        default="test", metadata={"help": "Split used for evaluation and the model card's results."})
    label_column: str = field(
        default="label", metadata={"help": "Ground-truth label column (e.g. fine_label for CIFAR-100)."})
    class_names: list[str] | None = field(
        default=None,
        metadata={"help": "Class names, when the label column is not a ClassLabel (default: from the dataset)."},
    )
    split_sizes: list[int] = field(
        default_factory=lambda: [500, 3000, 1500],
        metadata={"help": "A single pool (packaged data, a single-Dataset directory) only: sizes of the weak_train, "
                  "strong_train and test splits, or four sizes with a validation split before test (weak_train, "
                  "strong_train, validation, test)."},
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the packaged splits and of sub-sampling."})
    dataset_validation_split: str | None = field(
        default=None,
        metadata={"help": "Split evaluated during training (eval_strategy) and on which load_best_model_at_end / "
                  "metric_for_best_model choose the checkpoint, e.g. 'validation'. Never the test split: the test "
                  "split is read once, after training, for the reported figures."},
    )
    validation_size: float = field(
        default=0.0,
        metadata={"help": "Carve a validation split out of the training split instead: this many seeded examples "
                  "(or this fraction, when < 1), removed from training. 0 = none."},
    )
    check_disjoint: bool = field(
        default=True,
        metadata={"help": "Check by content hash (the image bytes) that the training, weak-training, validation "
                  "and test splits share no example, and refuse otherwise. Reading every image takes a while on "
                  "ImageNet-sized data; turn it off only for splits known to be disjoint."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on a seeded random subset of this many examples."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on a seeded random subset of this many examples."})

    # -- the supervision (one of: weak-label dataset, weak model, label noise) -----------------------------------
    weak_labels_dataset: str | None = field(
        default=None,
        metadata={"help": "A weak-labelled dataset (Hub id or local path, with a weak_logits column, as written by "
                  "hf-w2s label); its dataset_train_split is the training set."},
    )
    weak_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A weak supervisor: Hub id / local path of an image classifier, or 'tiny:ARCH[,...]'. "
                  "Matched to the student by label names."},
    )
    weak_image_processor_name_or_path: str | None = field(
        default=None, metadata={"help": "The weak model's image processor (default: the weak model's)."})
    weak_supervision: str = field(
        default="online",
        metadata={"help": "online: the weak model labels every training batch (it sees the same augmented view); "
                  "cached: label the training split once with hf_w2s.label_dataset, then train from the column."},
    )
    weak_train_split: str | None = field(
        default=None,
        metadata={"help": "First fine-tune the weak model on the ground truth of this split (e.g. weak_train; "
                  "required for tiny weak models)."},
    )
    weak_shots_per_class: int | None = field(
        default=None, metadata={"help": "Few-shot: fine-tune the weak model on k seeded examples per class."})
    weak_num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs of weak-model fine-tuning."})
    weak_learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of weak-model fine-tuning."})
    weak_augment: bool = field(
        default=False,
        metadata={"help": "Fine-tune the weak model with the student's crop/flip/RandAugment too (never mixup); "
                  "default: the processor's plain transform."},
    )
    label_noise_rate: float = field(
        default=0.0,
        metadata={"help": "Noisy labels: supervise with the training split's labels corrupted at this rate "
                  "(hf_w2s.corrupt_labels); 0 = off."},
    )
    label_noise_kind: str = field(
        default="symmetric", metadata={"help": "symmetric (uniform to other classes) or asymmetric (c -> c+1)."})
    label_noise_transition: list[int] | None = field(
        default=None,
        metadata={"help": "Asymmetric noise: partner[c] for every class c (e.g. CIFAR-10's truck->automobile, "
                  "bird->airplane, deer->horse, cat<->dog: 0 1 0 5 7 3 6 7 8 1); default c -> c+1."},
    )
    label_noise_seed: int = field(default=0, metadata={"help": "Seed of the label noise."})
    label_noise_confidence: float = field(
        default=0.9, metadata={"help": "Softmax probability the noisy weak_logits put on the noisy label."})

    # -- augmentation (training only; evaluation uses the processor's plain transform) ----------------------------
    augment: bool = field(
        default=False,
        metadata={"help": "Random resized crop (+ flip, RandAugment) with kornia on the processor's output."})
    crop_scale_min: float = field(default=0.08, metadata={"help": "Smallest crop area of the random resized crop."})
    hflip: bool = field(default=True, metadata={"help": "Random horizontal flips (turn off for digits)."})
    randaugment_n: int = field(default=0, metadata={"help": "RandAugment operations per image (0 = off)."})
    randaugment_m: int = field(default=9, metadata={"help": "RandAugment magnitude (kornia scale 1-29)."})
    random_erasing: float = field(
        default=0.0,
        metadata={"help": "Probability of random erasing (one box of 2-33 %% of the image, filled with the mean "
                  "colour) per training image, after the other augmentations (0 = off; needs augment)."},
    )
    mixup_alpha: float = field(
        default=0.0,
        metadata={"help": "Mixup Beta(alpha, alpha) on images and weak supervision (0 = off); not with true-label "
                  "losses."},
    )
    cutmix_alpha: float = field(
        default=0.0,
        metadata={"help": "CutMix Beta(alpha, alpha) on images and weak supervision (0 = off); with mixup too, each "
                  "batch gets one of the two with probability 0.5; not with true-label losses."},
    )

    # -- evaluation and the model card ----------------------------------------------------------------------------
    metrics: list[str] = field(
        default_factory=lambda: ["accuracy"], metadata={"help": f"Evaluation metrics, from {list(METRICS)}."})
    compute_ceiling: bool = field(
        default=False,
        metadata={"help": "Also train the student on the training split's ground truth (same settings, no mixup) "
                  "to measure the ceiling, so the card reports PGR."},
    )
    weak_accuracy: float | None = field(
        default=None, metadata={"help": "Known weak accuracy on the test split (for PGR when not measurable)."})
    ceiling_accuracy: float | None = field(
        default=None, metadata={"help": "Known ceiling accuracy on the test split (for PGR)."})

    def validate(self, training_args: WeakToStrongConfig) -> None:
        """Check the arguments together; raise ``ValueError`` naming the problem before anything is loaded."""
        check_options(self)  # types, finiteness and RANGES of every option
        if self.augment or self.mixup_alpha or self.cutmix_alpha or self.randaugment_n or self.random_erasing:
            from ..import_utils import require

            require("kornia", "augment / randaugment_n / random_erasing / mixup_alpha / cutmix_alpha", "aug")
        if self.num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {self.num_channels}.")
        for option, what in (("dataset_name", "dataset"), ("weak_labels_dataset", "dataset"),
                             ("model_name_or_path", "model"), ("weak_model_name_or_path", "model"),
                             ("image_processor_name_or_path", "model"), ("weak_image_processor_name_or_path", "model")):
            value = getattr(self, option)
            if value and not value.startswith(TINY_PREFIX):
                check_source_name(value, what, option)
        if self.class_names is not None and len(set(self.class_names)) != len(self.class_names):
            twice = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
            raise ValueError(f"class_names must be distinct, but {twice} appear more than once.")
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required (a Hub id, a local path or 'tiny:ARCH').")
        if self.input_size is not None and self.model_name_or_path.startswith(TINY_PREFIX):
            raise ValueError("input_size resizes a checkpoint's inputs; a tiny model is built for image_size.")
        if not self.dataset_name and not self.weak_labels_dataset:
            raise ValueError("give dataset_name (or a weak_labels_dataset to train from).")
        sources = [n for n, on in (("weak_labels_dataset", self.weak_labels_dataset),
                                   ("weak_model_name_or_path", self.weak_model_name_or_path),
                                   ("label_noise_rate", self.label_noise_rate > 0)) if on]
        if len(sources) > 1:
            raise ValueError(f"give one source of weak supervision, got {sources}.")
        if not sources and training_args.w2s_loss != "ground_truth":
            raise ValueError(
                f"w2s_loss={training_args.w2s_loss!r} needs weak supervision: set weak_labels_dataset, "
                "weak_model_name_or_path or label_noise_rate (or use w2s_loss=ground_truth)."
            )
        if self.label_noise_kind not in NOISE_KINDS:
            raise ValueError(f"label_noise_kind={self.label_noise_kind!r}; choose one of {NOISE_KINDS}.")
        if self.label_noise_transition and self.label_noise_kind != "asymmetric":
            raise ValueError("label_noise_transition applies to label_noise_kind=asymmetric only.")
        if self.weak_supervision not in WEAK_SUPERVISION_MODES:
            raise ValueError(f"weak_supervision={self.weak_supervision!r}; choose one of {WEAK_SUPERVISION_MODES}.")
        weak = self.weak_model_name_or_path or ""
        if weak.startswith(TINY_PREFIX) and not self.weak_train_split:
            raise ValueError(f"weak_model_name_or_path={weak!r} builds an untrained model: set weak_train_split to "
                             "fine-tune it on ground truth first.")
        if (self.weak_train_split or self.weak_shots_per_class) and not weak:
            raise ValueError("weak_train_split / weak_shots_per_class need weak_model_name_or_path.")
        if self.random_erasing > 0 and not self.augment:
            raise ValueError("random_erasing is part of the image augmentation: set augment true as well.")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}.")
        if len(self.split_sizes) not in (3, 4):
            raise ValueError(f"split_sizes needs 3 sizes (weak_train, strong_train, test) or 4 (weak_train, "
                             f"strong_train, validation, test), got {self.split_sizes}.")
        self.validate_selection(training_args)

    def validate_selection(self, training_args: WeakToStrongConfig) -> None:
        """Evaluation during training and checkpoint selection read a validation split, never the test split."""
        if self.validation_size and self.dataset_validation_split:
            raise ValueError("give one validation split: dataset_validation_split or validation_size, not both.")
        if self.dataset_validation_split and self.dataset_validation_split == self.dataset_test_split:
            raise ValueError(f"dataset_validation_split and dataset_test_split are both "
                             f"{self.dataset_test_split!r}: choosing on the split that is reported measures the "
                             "choice, not the model. Use a validation split (or validation_size).")
        metric = str(training_args.metric_for_best_model or "")
        if metric.startswith("test") or metric.startswith("eval_test"):
            raise ValueError(f"metric_for_best_model={metric!r} would choose the checkpoint on the test split; it is "
                             "chosen on the validation split (eval_accuracy / eval_loss).")
        evaluates = str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"
        if (evaluates or training_args.load_best_model_at_end) and not self.has_validation:
            raise ValueError(
                "eval_strategy / load_best_model_at_end evaluate during training and choose on what they evaluate, "
                "so they need a validation split: set dataset_validation_split (e.g. validation, or four "
                "split_sizes for packaged data) or validation_size (carved from the training split). The test split "
                "is never evaluated during training. Or set eval_strategy no."
            )

    @property
    def has_validation(self) -> bool:
        return bool(self.dataset_validation_split or self.validation_size)
