"""Offline metrics: accuracy, student–weak agreement and performance gap recovered (PGR)."""

from __future__ import annotations

import math

import numpy as np


def _as_logits(predictions) -> np.ndarray:
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    return np.asarray(predictions)


def accuracy(predictions, labels) -> float:
    """Top-1 accuracy of logits ``(N, C)`` or class ids ``(N,)`` against ``labels`` (``-100`` ignored)."""
    preds = _as_logits(predictions)
    if preds.ndim == 2:
        preds = preds.argmax(-1)
    labels = np.asarray(labels)
    valid = labels != -100
    if not valid.any():
        return float("nan")
    return float((preds[valid] == labels[valid]).mean())


def agreement(student_logits, weak_logits) -> float:
    """Fraction of examples where the student's argmax equals the weak supervisor's."""
    s = _as_logits(student_logits).argmax(-1)
    w = np.asarray(weak_logits).argmax(-1)
    return float((s == w).mean())


def performance_gap_recovered(weak: float, w2s: float, ceiling: float) -> float:
    """PGR = (w2s − weak) / (ceiling − weak): 0 = no better than the supervisor, 1 = the ground-truth ceiling.

    Returns ``nan`` when the ceiling does not exceed the weak accuracy (the gap is empty and PGR undefined).
    """
    gap = ceiling - weak
    if not gap > 0 or any(math.isnan(x) for x in (weak, w2s, ceiling)):
        return float("nan")
    return (w2s - weak) / gap


def top_k_accuracy(logits, labels, k: int = 5) -> float:
    """Fraction of examples whose label is among the ``k`` highest logits (``-100`` ignored)."""
    logits, labels = _as_logits(logits), np.asarray(labels)
    k = min(k, logits.shape[-1])
    top = np.argsort(-logits, axis=-1)[:, :k]
    valid = labels != -100
    return float((top[valid] == labels[valid, None]).any(-1).mean()) if valid.any() else float("nan")


METRICS = {"accuracy": accuracy, "top5_accuracy": top_k_accuracy}


def build_compute_metrics(names=("accuracy",)):
    """``compute_metrics`` for ``Trainer`` computing the named metrics of :data:`METRICS`."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}.")

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = _as_logits(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        return {name: METRICS[name](logits, labels) for name in names}

    return compute


compute_accuracy = build_compute_metrics(["accuracy"])
