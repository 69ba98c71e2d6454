"""hf_w2s: weak-to-strong fine-tuning of Hugging Face vision models."""

from .collator import WeakToStrongCollator
from .config import WeakToStrongConfig
from .losses import LOSSES, W2SLossOutput, compute_w2s_loss, register_loss
from .metrics import accuracy, agreement, performance_gap_recovered
from .trainer import WeakToStrongTrainer
from .weak_labels import label_dataset

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "W2SLossOutput",
    "WeakToStrongCollator",
    "WeakToStrongConfig",
    "WeakToStrongTrainer",
    "accuracy",
    "agreement",
    "compute_w2s_loss",
    "label_dataset",
    "performance_gap_recovered",
    "register_loss",
]
