"""Training one model with :class:`~hf_w2s.WeakToStrongTrainer` and reading its predictions: the steps the scripts
and the experiment harness share."""

from __future__ import annotations

import numpy as np

from .integrations import name_run_logs
from .trainer import WeakToStrongTrainer

__all__ = ["fit", "predict"]


def fit(model, args, train_dataset, *, eval_dataset=None, processor=None, collator=None, weak_model=None,
        weak_processor=None, compute_metrics=None, calibration_dataset=None, quiet: bool = False, callbacks=None,
        logs_root=None, resume_from_checkpoint=None, peft_config=None, train: bool = True):
    """Train ``model`` with a :class:`~hf_w2s.WeakToStrongTrainer` built from these parts; returns the trainer.

    ``quiet`` drops the printed log dicts (they stay in ``trainer.state.log_history`` and go to ``report_to``);
    ``callbacks``: further ``TrainerCallback``s (e.g. early stopping); ``logs_root``: TensorBoard events go to
    ``logs_root/<run_name>``; ``resume_from_checkpoint``: as ``Trainer.train`` (``True``/``"true"``: the last complete
    checkpoint); ``peft_config``: a LoRA student (``WeakToStrongTrainer``'s); ``train=False``: the trainer only,
    built with every check of its inputs but not trained (a preflight)."""
    trainer = WeakToStrongTrainer(
        model=model, args=args, data_collator=collator, train_dataset=train_dataset, eval_dataset=eval_dataset,
        processing_class=processor, weak_model=weak_model, weak_processing_class=weak_processor,
        compute_metrics=compute_metrics, calibration_dataset=calibration_dataset, callbacks=callbacks,
        peft_config=peft_config,
    )
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if not train:
        return trainer
    name_run_logs(trainer, logs_root)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def predict(trainer, dataset, prefix: str = "test") -> tuple[np.ndarray, dict]:
    """``(logits (N, C), metrics)`` of the trained model on ``dataset`` (metrics prefixed with ``prefix``)."""
    prediction = trainer.predict(dataset, metric_key_prefix=prefix)
    logits = prediction.predictions
    logits = np.asarray(logits[0] if isinstance(logits, (tuple, list)) else logits)
    return logits, prediction.metrics
