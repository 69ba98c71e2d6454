"""hf_w2s: weak-to-strong fine-tuning of Hugging Face vision models."""

from .collator import WeakToStrongCollator
from .config import WeakToStrongConfig
from .experiment import Experiment
from .experiment_config import ExperimentConfig
from .losses import LOSSES, W2SLossOutput, compute_w2s_loss, register_loss
from .metrics import accuracy, agreement, performance_gap_recovered
from .noise import corrupt_labels
from .trainer import WeakToStrongTrainer

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "W2SLossOutput",
    "WeakToStrongCollator",
    "WeakToStrongConfig",
    "WeakToStrongTrainer",
    "Experiment",
    "ExperimentConfig",
    "corrupt_labels",
    "accuracy",
    "agreement",
    "compute_w2s_loss",
    "performance_gap_recovered",
    "register_loss",
]
