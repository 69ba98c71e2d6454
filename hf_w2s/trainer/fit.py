"""Training one model with :class:`~hf_w2s.WeakToStrongTrainer` and reading its predictions: the steps the scripts
and the experiment harness share."""

from __future__ import annotations

import dataclasses

import numpy as np

from .integrations import name_run_logs
from .trainer import WeakToStrongTrainer

__all__ = ["auxiliary_args", "fit", "predict"]


def auxiliary_args(args, output_dir: str, **overrides):
    """A copy of the training arguments for an auxiliary run (a weak supervisor, a ceiling): no pushing, no saving,
    no evaluation during training, no resuming, unless ``overrides`` say otherwise."""
    overrides = {"output_dir": str(output_dir), "push_to_hub": False, "save_strategy": "no", "eval_strategy": "no",
                 "load_best_model_at_end": False, "hub_model_id": None, "resume_from_checkpoint": None, **overrides}
    return dataclasses.replace(args, **overrides)


def fit(model, args, train_dataset, *, eval_dataset=None, processor=None, collator=None, weak_model=None,
        weak_processor=None, compute_metrics=None, calibration_dataset=None, quiet: bool = False, callbacks=None,
        logs_root=None, resume_from_checkpoint=None):
    """Train ``model`` with a :class:`~hf_w2s.WeakToStrongTrainer` built from these parts; returns the trainer.

    ``quiet`` drops the printed log dicts (they stay in ``trainer.state.log_history`` and go to ``report_to``);
    ``callbacks``: further ``TrainerCallback``s (e.g. early stopping); ``logs_root``: TensorBoard events go to
    ``logs_root/<run_name>``; ``resume_from_checkpoint``: as ``Trainer.train`` (``True``/``"true"``: the last complete
    checkpoint)."""
    trainer = WeakToStrongTrainer(
        model=model, args=args, data_collator=collator, train_dataset=train_dataset, eval_dataset=eval_dataset,
        processing_class=processor, weak_model=weak_model, weak_processing_class=weak_processor,
        compute_metrics=compute_metrics, calibration_dataset=calibration_dataset, callbacks=callbacks,
    )
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    name_run_logs(trainer, logs_root)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def predict(trainer, dataset, prefix: str = "test") -> tuple[np.ndarray, dict]:
    """``(logits (N, C), metrics)`` of the trained model on ``dataset`` (metrics prefixed with ``prefix``)."""
    prediction = trainer.predict(dataset, metric_key_prefix=prefix)
    logits = prediction.predictions
    logits = np.asarray(logits[0] if isinstance(logits, (tuple, list)) else logits)
    return logits, prediction.metrics
