"""hf_w2s: weak-to-strong fine-tuning of Hugging Face vision models.

Layout: ``losses`` (every loss and its knobs), ``calibration``, ``metrics``, ``labels`` (label sets matched by name),
``modeling`` (the one model loader), ``lora``, ``hub`` (cards and pushes), ``security`` (token redaction),
``distributed``; the packages ``trainer/`` (config, trainer, collators, augmentation, checks), ``data/`` (the one
dataset loader, packaged data, splits, weak labels, noise), ``experiment/`` (the sweep harness and its report) and
``scripts/`` (the ``hf-w2s`` commands and their one parser).
"""

import importlib

#: public name -> the module that defines it; imported on first use (``hf-w2s --help`` stays light)
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
    "Experiment": "experiment",
    "ExperimentConfig": "experiment",
    "WeakLabelsPushError": "hub",
    "push_weak_labels": "hub",
    "apply_lora": "lora",
    "save_lora_student": "lora",
    "LOSSES": "losses",
    "LossKnobs": "losses",
    "W2SLossOutput": "losses",
    "compute_w2s_loss": "losses",
    "register_loss": "losses",
    "accuracy": "metrics",
    "agreement": "metrics",
    "performance_gap_recovered": "metrics",
    "load_image_classifier": "modeling",
    "load_image_processor": "modeling",
    "AugmentingCollator": "trainer",
    "TrainAugmentation": "trainer",
    "WeakToStrongCollator": "trainer",
    "WeakToStrongConfig": "trainer",
    "WeakToStrongTrainer": "trainer",
    "WeakCombiner": "trainer.multi_weak",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__version__ = "0.2.0"

__all__ = [
    "AugmentingCollator",
    "Experiment",
    "ExperimentConfig",
    "LOSSES",
    "LossKnobs",
    "TrainAugmentation",
    "W2SLossOutput",
    "WeakCombiner",
    "WeakLabelsPushError",
    "WeakModel",
    "WeakToStrongCollator",
    "WeakToStrongConfig",
    "WeakToStrongTrainer",
    "accuracy",
    "add_noisy_labels",
    "agreement",
    "apply_lora",
    "compute_w2s_loss",
    "convert_efficientnet_lite",
    "converted_checkpoint",
    "corrupt_labels",
    "fit_temperature",
    "label_dataset",
    "label_dataset_multi",
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
