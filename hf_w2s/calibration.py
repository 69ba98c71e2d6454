"""Calibration by temperature scaling, and the student's recalibration while it trains.

Temperature scaling (Guo et al. 2017): :func:`fit_temperature` minimises the NLL of ``logits / T`` with LBFGS. The
``conf_select`` loss (:mod:`hf_w2s.losses`) compares calibrated confidences: ``T_w`` (``weak_calibration_temperature``)
is fitted once on the weak supervisor's logits on held-out ground truth (:func:`column_temperature`); ``T_s``
(``student_calibration_temperature``) changes as the student trains: give :class:`~hf_w2s.WeakToStrongTrainer` a
``calibration_dataset`` (images with true labels, e.g. the weak model's ground-truth split) and it refits ``T_s`` on
the student's logits there at the start of training and every ``student_calibration_steps`` optimizer steps
(:class:`StudentCalibrationCallback`); without one, the fixed ``student_calibration_temperature`` (default 1, the raw
softmax) is used. Caveat: ``T_s`` is fitted on examples the student does not train on, while the selection happens on
examples it does train on, where it grows more confident than on held-out data; the refit cannot see that.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from .data.loading import column_array
from .predicting import predicting

__all__ = [
    "TEMPERATURE_BOUNDS",
    "fit_temperature",
    "column_temperature",
    "predict_logits",
    "StudentCalibrationCallback",
]

#: temperatures are clipped to this range: separable data drives the NLL optimum to 0, constant logits to infinity
TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 100, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> float:
    """The temperature ``T`` minimising ``mean CE(logits / T, labels)`` (temperature scaling), by LBFGS on ``log T``.

    ``logits`` ``(N, C)`` and integer ``labels`` ``(N,)``; labels equal to -100 are ignored. The result is clipped
    to ``bounds`` (the optimum runs to 0 when every example is right, to infinity when the logits carry no signal).
    """
    logits = torch.as_tensor(logits).detach().float().cpu()
    labels = torch.as_tensor(labels).detach().long().cpu()
    if logits.dim() != 2 or labels.dim() != 1 or len(logits) != len(labels):
        raise ValueError(
            f"fit_temperature needs logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    valid = labels != -100
    logits, labels = logits[valid], labels[valid]
    if len(labels) == 0:
        raise ValueError("fit_temperature needs at least one labelled example")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1] - 1}], got {labels.min()}..{labels.max()}")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.clamp(lo - 1, hi + 1).exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(math.exp(min(max(log_t.item(), lo), hi)))


# ----------------------------------------------------------------------------------------------------------------
# the student's temperature during training


def predict_logits(model, dataset, collator, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits ``(N, C)`` and the true labels ``(N,)`` on ``dataset``, batched through ``collator``.

    Runs through :func:`hf_w2s.predicting.predicting` (evaluation mode, no autograd) on the model's device; the
    model's modes are restored afterwards (a student in training keeps training, its batch-norm statistics
    untouched).
    """
    device = next(model.parameters()).device
    all_logits, all_labels = [], []
    with predicting(model):
        for start in range(0, len(dataset), batch_size):
            columns = dataset[start : start + batch_size]  # one slice, much faster than row by row
            rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
            batch = collator(rows)
            if "labels" not in batch:
                raise ValueError("the calibration dataset needs true labels (a 'label' or 'labels' column)")
            all_logits.append(model(pixel_values=batch["pixel_values"].to(device)).logits.float().cpu())
            all_labels.append(batch["labels"])
    return torch.cat(all_logits), torch.cat(all_labels)  # outside inference mode: plain tensors


class StudentCalibrationCallback(TrainerCallback):
    """Refit the student's temperature on a labelled calibration set while it trains.

    At the start of training and every ``every_n_steps`` optimizer steps (0: only at the start), computes the
    student's logits on ``calibration_dataset`` (through ``collator``, no augmentation) and stores the fitted
    temperature in ``knobs["student_calibration_temperature"]`` — the dict of loss-knob overrides the trainer reads.
    ``history`` keeps ``(global_step, temperature)``. A resumed run refits at its start, so nothing needs saving.
    """

    def __init__(self, calibration_dataset, collator, knobs: dict, every_n_steps: int = 0, batch_size: int = 256):
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        if len(calibration_dataset) == 0:
            raise ValueError("the calibration dataset is empty")
        self.calibration_dataset = calibration_dataset
        self.collator = collator
        self.knobs = knobs
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self.history: list[tuple[int, float]] = []

    def refit(self, model, step: int) -> float:
        logits, labels = predict_logits(model, self.calibration_dataset, self.collator, self.batch_size)
        temperature = fit_temperature(logits, labels)
        self.knobs["student_calibration_temperature"] = temperature
        self.history.append((step, temperature))
        return temperature

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.refit(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self.refit(model, state.global_step)


def column_temperature(dataset, logits_column: str = "weak_logits", label_column: str = "label") -> float:
    """:func:`fit_temperature` on a cached logits column of a labelled dataset (e.g. the weak model's held-out GT)."""
    for col in (logits_column, label_column):
        if col not in dataset.column_names:
            raise ValueError(f"dataset has no column {col!r}; columns: {dataset.column_names}")
    logits = column_array(dataset, logits_column, np.float32)
    labels = column_array(dataset, label_column, np.int64)
    return fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels))
