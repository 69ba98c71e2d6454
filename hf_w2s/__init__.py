"""hf_w2s: weak-to-strong fine-tuning of Hugging Face vision models.

Layout (README "Layout"): ``losses`` (every loss and its knobs), ``calibration``, ``metrics``, ``labels``
(label sets matched by name), ``modeling`` (the one model loader) and ``model_config`` (the student's options),
``lora``, ``hub`` (cards and pushes), ``security`` (token redaction), ``distributed``, ``options`` / ``files`` /
``checkpoints`` / ``outputs`` (checks, whole-or-nothing writes, resuming, where a run writes); the packages
``trainer/`` (the Trainer and its config), ``data/`` (datasets, splits, weak labels), ``experiment/`` (the one runner
of ``hf-w2s train``, ``experiment`` and ``demo``) and ``scripts/`` (the ``hf-w2s`` commands and their one parser).
Public names are imported on first use, so ``hf-w2s --help`` stays light.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.3.0"

#: public name -> the module that defines it; imported on first use
_EXPORTS = {
    "fit_temperature": "calibration",
    "convert_efficientnet_lite": "convert",
    "converted_checkpoint": "convert",
    "WeakModel": "data",
    "add_noisy_labels": "data",
    "corrupt_labels": "data",
    "label_dataset": "data",
    "label_dataset_multi": "data",
    "load_image_dataset": "data",
    "load_weak_model": "data",
    "merge_weak_label_datasets": "data",
    "noisy_weak_logits": "data",
    "weak_label_accuracy": "data",
    "DataConfig": "data.config",
    "Experiment": "experiment",
    "ExperimentConfig": "experiment",
    "WeakSupervisorConfig": "experiment",
    "LossSpec": "experiment",
    "WeakLabelsPushError": "hub",
    "push_weak_labels": "hub",
    "complete_peft_config": "lora",
    "save_lora_student": "lora",
    "LOSSES": "losses",
    "LossKnobs": "losses",
    "W2SLossOutput": "losses",
    "compute_w2s_loss": "losses",
    "register_loss": "losses",
    "accuracy": "metrics",
    "agreement": "metrics",
    "performance_gap_recovered": "metrics",
    "ModelConfig": "model_config",
    "load_image_classifier": "modeling",
    "load_image_processor": "modeling",
    "build_experiment": "scripts.config",
    "load_config": "scripts.config",
    "AugmentingCollator": "trainer",
    "TrainAugmentation": "trainer",
    "WeakToStrongCollator": "trainer",
    "WeakToStrongConfig": "trainer",
    "WeakToStrongTrainer": "trainer",
    "WeakCombiner": "trainer.combiner",
}

if TYPE_CHECKING:  # what editors and type checkers see; at run time the names come from __getattr__
    from .calibration import fit_temperature
    from .convert import convert_efficientnet_lite, converted_checkpoint
    from .data import (
        WeakModel,
        add_noisy_labels,
        corrupt_labels,
        label_dataset,
        label_dataset_multi,
        load_image_dataset,
        load_weak_model,
        merge_weak_label_datasets,
        noisy_weak_logits,
        weak_label_accuracy,
    )
    from .data.config import DataConfig
    from .experiment import Experiment, ExperimentConfig, LossSpec, WeakSupervisorConfig
    from .hub import WeakLabelsPushError, push_weak_labels
    from .lora import complete_peft_config, save_lora_student
    from .losses import LOSSES, LossKnobs, W2SLossOutput, compute_w2s_loss, register_loss
    from .metrics import accuracy, agreement, performance_gap_recovered
    from .model_config import ModelConfig
    from .modeling import load_image_classifier, load_image_processor
    from .scripts.config import build_experiment, load_config
    from .trainer import (
        AugmentingCollator,
        TrainAugmentation,
        WeakToStrongCollator,
        WeakToStrongConfig,
        WeakToStrongTrainer,
    )
    from .trainer.combiner import WeakCombiner


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AugmentingCollator",
    "DataConfig",
    "Experiment",
    "ExperimentConfig",
    "LOSSES",
    "LossKnobs",
    "LossSpec",
    "ModelConfig",
    "TrainAugmentation",
    "W2SLossOutput",
    "WeakCombiner",
    "WeakLabelsPushError",
    "WeakModel",
    "WeakSupervisorConfig",
    "WeakToStrongCollator",
    "WeakToStrongConfig",
    "WeakToStrongTrainer",
    "accuracy",
    "add_noisy_labels",
    "agreement",
    "build_experiment",
    "complete_peft_config",
    "compute_w2s_loss",
    "convert_efficientnet_lite",
    "converted_checkpoint",
    "corrupt_labels",
    "fit_temperature",
    "label_dataset",
    "label_dataset_multi",
    "load_config",
    "load_image_classifier",
    "load_image_dataset",
    "load_image_processor",
    "load_weak_model",
    "merge_weak_label_datasets",
    "noisy_weak_logits",
    "performance_gap_recovered",
    "push_weak_labels",
    "register_loss",
    "save_lora_student",
    "weak_label_accuracy",
]
