"""Offline metrics: accuracy, student–weak agreement and performance gap recovered (PGR).

The functions here are the one implementation; :mod:`hf_w2s.metric_modules` ships them as ``evaluate`` modules
(:func:`load_metric`), through which the trainer's ``compute_metrics`` and the harness compute accuracies."""

from __future__ import annotations

import functools
import math

import numpy as np


def _as_logits(predictions) -> np.ndarray:
    if isinstance(predictions, tuple):  # a model's outputs as the Trainer gathers them: the logits come first
        predictions = predictions[0]
    return np.asarray(predictions)


def accuracy(predictions, labels) -> float:
    """Top-1 accuracy of logits ``(N, C)`` or class ids ``(N,)`` against ``labels`` (``-100`` ignored)."""
    preds = _class_ids(predictions)
    labels = np.asarray(labels)
    valid = labels != -100
    if not valid.any():
        return float("nan")
    return float((preds[valid] == labels[valid]).mean())


def _class_ids(predictions) -> np.ndarray:
    preds = _as_logits(predictions)
    return preds.argmax(-1) if preds.ndim == 2 else preds


def agreement(student_logits, weak_logits) -> float:
    """Fraction of examples where the student's class equals the weak supervisor's (logits ``(N, C)`` or class ids
    ``(N,)`` on either side)."""
    return float((_class_ids(student_logits) == _class_ids(weak_logits)).mean())


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


@functools.lru_cache(maxsize=None)
def load_metric(name: str):
    """The ``evaluate`` module of metric ``name`` shipped in :mod:`hf_w2s.metric_modules` (``accuracy``,
    ``agreement``, ``pgr``), loaded offline from its path once per process; kept in memory (no cache files)."""
    import evaluate

    from .metric_modules import metric_path

    return evaluate.load(metric_path(name), keep_in_memory=True)


def evaluate_metric(name: str, predictions, references, **kwargs) -> dict[str, float]:
    """``load_metric(name).compute(...)`` on logits ``(N, C)`` or class ids ``(N,)`` (both sides)."""
    return load_metric(name).compute(predictions=_class_ids(predictions), references=_class_ids(references),
                                     **kwargs)


def build_compute_metrics(names=("accuracy",)):
    """``compute_metrics`` for ``Trainer`` computing the named metrics of :data:`METRICS` (accuracy through its
    ``evaluate`` module, :func:`load_metric`)."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}.")

    def compute(eval_pred) -> dict[str, float]:
        logits, labels = _as_logits(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        return {name: evaluate_metric(name, logits, labels)[name] if name == "accuracy" else
                METRICS[name](logits, labels) for name in names}

    return compute


compute_accuracy = build_compute_metrics(["accuracy"])
