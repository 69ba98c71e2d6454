"""The trainer side: ``WeakToStrongConfig`` + ``WeakToStrongTrainer`` (TRL's ``<name>_config.py`` /
``<name>_trainer.py`` pair), its collators and augmentation, layer-wise lr decay, several weak supervisors' combiner,
and the input checks run before any compute."""

from .augment import AugmentingCollator, TrainAugmentation
from .collator import WeakToStrongCollator
from .config import WeakToStrongConfig
from .trainer import WEAK_COMBINER_NAME, WeakToStrongTrainer

__all__ = [
    "AugmentingCollator",
    "TrainAugmentation",
    "WEAK_COMBINER_NAME",
    "WeakToStrongCollator",
    "WeakToStrongConfig",
    "WeakToStrongTrainer",
]
