"""hf_w2s: weak-to-strong fine-tuning of Hugging Face vision models."""

from .augment import AugmentingCollator, TrainAugmentation
from .collator import WeakToStrongCollator
from .conf_select import fit_temperature
from .config import WeakToStrongConfig
from .experiment import Experiment
from .experiment_config import ExperimentConfig
from .hub import WeakLabelsPushError, load_image_dataset, push_weak_labels
from .losses import LOSSES, W2SLossOutput, compute_w2s_loss, register_loss
from .metrics import accuracy, agreement, performance_gap_recovered
from .multi_weak import WeakCombiner, label_dataset_multi, merge_weak_label_datasets
from .noise import add_noisy_labels, corrupt_labels, noisy_weak_logits
from .peft_utils import apply_lora, save_lora_student
from .trainer import WeakToStrongTrainer
from .weak_labels import WeakModel, label_dataset, load_weak_model, weak_label_accuracy

__version__ = "0.1.0"

__all__ = [
    "AugmentingCollator",
    "LOSSES",
    "TrainAugmentation",
    "W2SLossOutput",
    "WeakToStrongCollator",
    "WeakToStrongConfig",
    "WeakToStrongTrainer",
    "WeakLabelsPushError",
    "WeakModel",
    "label_dataset",
    "load_image_dataset",
    "load_weak_model",
    "push_weak_labels",
    "weak_label_accuracy",
    "add_noisy_labels",
    "apply_lora",
    "save_lora_student",
    "corrupt_labels",
    "noisy_weak_logits",
    "Experiment",
    "ExperimentConfig",
    "accuracy",
    "agreement",
    "compute_w2s_loss",
    "fit_temperature",
    "label_dataset_multi",
    "merge_weak_label_datasets",
    "WeakCombiner",
    "performance_gap_recovered",
    "register_loss",
]
