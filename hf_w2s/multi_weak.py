"""Several weak supervisors: datasets with one logits column per weak model, and combining them into one supervision.

A dataset carries ``K`` logits columns (``weak_logits_0 .. weak_logits_{K-1}`` by default), written by
:func:`label_dataset_multi` (one call, looping :func:`~hf_w2s.weak_labels.label_dataset` over the weak models) or by
:func:`merge_weak_label_datasets` (several single-supervisor datasets of the same rows). The collator stacks them into
``weak_logits`` of shape ``(B, K, C)`` and :class:`WeakCombiner` turns that into one ``(B, C)`` supervision that any
W2S loss takes as its weak logits:

``log m(c) = log Σ_k π_k · softmax(w_k / T_k)(c)`` — a mixture of the supervisors' (optionally temperature-scaled)
probabilities, returned as log-probabilities, with simplex weights ``π``:

* ``mean``: ``π_k = 1/K``;
* ``accuracy``: ``π_k ∝ max(acc_k − 1/C, 0)``, each supervisor's accuracy on its ground-truth split above chance;
* ``learned``: ``π = softmax(θ)``, ``θ`` a trainable vector (starting at 0, i.e. uniform) trained jointly with the
  student by its own objective, the mixture's negative log-likelihood of the student's current predictions
  ``−mean log Σ_k π_k p_k(argmax s)`` (gradient to ``θ`` only; the student's loss sees ``π`` detached). The
  weights move toward the supervisors the student agrees with, whatever the W2S loss (hard losses give no gradient
  through an argmax). The weights stay uniform for the first ``weak_weights_warmup`` of training (default 0.3): a
  student that has barely trained is no judge, and measured without the warm-up the weights first drifted toward the
  worst supervisor (the flattest or the one the untrained student happened to agree with) and sometimes stayed there.
  Optionally the student trains only on the examples where all supervisors agree for the first part of training
  (``weak_agreement_warmup``).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from datasets import ClassLabel, Dataset
from transformers import TrainerCallback

from .data import column_array
from .labels import label_permutation
from .weak_labels import (
    WEAK_CONFIDENCE_COLUMN,
    WEAK_LABEL_COLUMN,
    WeakModel,
    align_weak_labels,
    find_label_column,
    label_dataset,
    load_weak_model,
    names_of,
    weak_logits_array,
)

__all__ = [
    "COMBINATIONS",
    "default_columns",
    "combine_weak_logits",
    "accuracy_weights",
    "supervisors_agree",
    "weights_nll",
    "WeakCombiner",
    "ZeroGradCallback",
    "label_dataset_multi",
    "merge_weak_label_datasets",
    "stack_weak_logits",
    "supervisor_accuracies",
    "supervisor_temperatures",
]

COMBINATIONS = ("mean", "accuracy", "learned")
#: columns compared by default to check that several weak-label datasets hold the same rows
ROW_ID_COLUMNS = ("id", "image_id", "label", "labels")


def default_columns(num_supervisors: int, prefix: str = "weak_logits") -> list[str]:
    """``[f"{prefix}_0", ..., f"{prefix}_{K-1}"]``."""
    return [f"{prefix}_{k}" for k in range(num_supervisors)]


# ----------------------------------------------------------------------------------------------------------------
# pure functions on tensors


def _check_stack(weak_logits: torch.Tensor) -> None:
    if weak_logits.dim() != 3:
        raise ValueError(
            f"stacked weak logits must be (batch, supervisors, classes), got shape {tuple(weak_logits.shape)}"
        )


def combine_weak_logits(
    weak_logits: torch.Tensor, weights: torch.Tensor, temperatures: torch.Tensor | None = None
) -> torch.Tensor:
    """``log Σ_k π_k softmax(w_k / T_k)``: ``(B, K, C)`` logits, ``(K,)`` simplex weights → ``(B, C)`` log-probs."""
    _check_stack(weak_logits)
    if weights.shape != (weak_logits.shape[1],):
        raise ValueError(f"{weak_logits.shape[1]} supervisors but {tuple(weights.shape)} weights")
    w = weak_logits.float()
    if temperatures is not None:
        w = w / temperatures.to(w).view(1, -1, 1)
    log_p = F.log_softmax(w, dim=-1)
    log_pi = weights.to(log_p).clamp_min(1e-12).log().view(1, -1, 1)
    return torch.logsumexp(log_pi + log_p, dim=1)


def accuracy_weights(accuracies: Sequence[float], num_classes: int) -> torch.Tensor:
    """``π_k ∝ max(acc_k − 1/C, 0)``: a supervisor at chance gets no weight."""
    acc = torch.as_tensor([float(a) for a in accuracies], dtype=torch.float32)
    if acc.dim() != 1 or len(acc) == 0 or not ((acc >= 0) & (acc <= 1)).all():
        raise ValueError(f"accuracies must be a non-empty list of numbers in [0, 1], got {list(accuracies)}")
    above = (acc - 1.0 / num_classes).clamp_min(0.0)
    if not above.sum() > 0:
        raise ValueError(f"no supervisor is above chance (1/{num_classes}): accuracies {acc.tolist()}")
    return above / above.sum()


def supervisors_agree(weak_logits: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: all supervisors have the same argmax."""
    _check_stack(weak_logits)
    preds = weak_logits.argmax(-1)
    return (preds == preds[:, :1]).all(dim=1)


def weights_nll(
    weak_logits: torch.Tensor, weights: torch.Tensor, student_logits: torch.Tensor,
    temperatures: torch.Tensor | None = None,
) -> torch.Tensor:
    """``−mean log Σ_k π_k p_k(argmax s)``: how badly the weighted supervisors explain the student's predictions.

    Differentiable in ``weights`` only (the student's and the supervisors' logits are constants here).
    """
    combined = combine_weak_logits(weak_logits.detach(), weights, temperatures)
    target = student_logits.detach().argmax(-1)
    return F.nll_loss(combined, target)


class WeakCombiner(nn.Module):
    """Combine ``K`` weak supervisors' logits ``(B, K, C)`` into one ``(B, C)`` supervision (see the module doc).

    ``mode``: ``mean``, ``accuracy`` (needs ``accuracies`` and ``num_classes``) or ``learned`` (a trainable
    ``logit_weights`` parameter, softmax-ed). ``temperatures`` (``K`` values) scale each supervisor's logits first.
    """

    def __init__(
        self,
        num_supervisors: int,
        mode: str = "mean",
        accuracies: Sequence[float] | None = None,
        num_classes: int | None = None,
        temperatures: Sequence[float] | None = None,
    ):
        super().__init__()
        if mode not in COMBINATIONS:
            raise ValueError(f"weak_combination must be one of {COMBINATIONS}, got {mode!r}")
        if num_supervisors < 1:
            raise ValueError(f"need at least one weak supervisor, got {num_supervisors}")
        self.mode = mode
        self.num_supervisors = num_supervisors
        if mode == "learned":
            self.logit_weights = nn.Parameter(torch.zeros(num_supervisors))
        else:
            if mode == "accuracy":
                if accuracies is None or num_classes is None:
                    raise ValueError("weak_combination='accuracy' needs each supervisor's accuracy (weak_accuracies)")
                if len(accuracies) != num_supervisors:
                    raise ValueError(f"{len(accuracies)} accuracies for {num_supervisors} weak supervisors")
                fixed = accuracy_weights(accuracies, num_classes)
            else:
                fixed = torch.full((num_supervisors,), 1.0 / num_supervisors)
            self.register_buffer("fixed_weights", fixed)
        if temperatures is not None:
            if len(temperatures) != num_supervisors or not all(t > 0 for t in temperatures):
                raise ValueError(f"need {num_supervisors} positive temperatures, got {list(temperatures)}")
            self.register_buffer("temperatures", torch.as_tensor([float(t) for t in temperatures]))
        else:
            self.temperatures = None

    @property
    def learnable(self) -> bool:
        return self.mode == "learned"

    def weights(self) -> torch.Tensor:
        """The simplex weights ``π`` ``(K,)`` (with gradient in ``learned`` mode)."""
        return F.softmax(self.logit_weights, dim=0) if self.learnable else self.fixed_weights

    def forward(self, weak_logits: torch.Tensor) -> torch.Tensor:
        """The combined supervision ``(B, C)`` (log-probabilities); the weights enter detached."""
        if weak_logits.shape[1] != self.num_supervisors:
            raise ValueError(f"batch has {weak_logits.shape[1]} supervisors, the combiner {self.num_supervisors}")
        return combine_weak_logits(weak_logits, self.weights().detach(), self.temperatures)

    def weight_loss(self, weak_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        """:func:`weights_nll` with this combiner's weights (the objective of the ``learned`` weights)."""
        return weights_nll(weak_logits, self.weights(), student_logits, self.temperatures)


class ZeroGradCallback(TrainerCallback):
    """Clear ``module``'s gradients after every optimizer step.

    ``Trainer`` calls ``model.zero_grad()`` only, so parameters outside the model (the learned supervisor weights)
    would otherwise accumulate gradients across steps.
    """

    def __init__(self, module: nn.Module):
        self.module = module

    def on_train_begin(self, args, state, control, **kwargs):
        self.module.zero_grad(set_to_none=True)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.module.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------------------------------------------
# datasets with several logits columns


def _check_columns(dataset: Dataset, columns: Sequence[str], what: str = "dataset") -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{what} has no column(s) {missing}; columns: {dataset.column_names}")


def stack_weak_logits(dataset: Dataset, columns: Sequence[str]) -> np.ndarray:
    """The ``(N, K, C)`` float32 array of ``K`` logits columns."""
    _check_columns(dataset, columns)
    return np.stack([weak_logits_array(dataset, c) for c in columns], axis=1)


def label_dataset_multi(
    dataset: Dataset,
    weak_models: Sequence,
    image_processors=None,
    *,
    columns: Sequence[str] | None = None,
    label_names=None,
    **label_kwargs,
) -> Dataset:
    """Label ``dataset`` with several weak models in one call: one logits column per model.

    A small loop over :func:`~hf_w2s.weak_labels.label_dataset` (each call cached by its own fingerprint).
    ``weak_models``: in-memory models, Hub ids / local directories or :class:`~hf_w2s.weak_labels.WeakModel` s;
    ``image_processors``: one for all, a list with one per model, or ``None`` for models loaded with their own.
    Every column is written in one label order, matched by name: ``label_names`` if given, else the ground-truth
    ``ClassLabel``'s names, else the first model's ``id2label``; a model missing a name is an error before any
    compute. Other keyword arguments go to ``label_dataset``. Its per-call ``weak_label``/``weak_confidence`` columns
    are dropped (they would describe only the last model) unless the input had them.
    """
    weak_models = [load_weak_model(m) if isinstance(m, (str, os.PathLike)) else m for m in weak_models]
    if not weak_models:
        raise ValueError("label_dataset_multi needs at least one weak model")
    if isinstance(image_processors, (list, tuple)):
        processors = list(image_processors)
    else:
        processors = [image_processors] * len(weak_models)
    if len(processors) != len(weak_models):
        raise ValueError(f"{len(processors)} image processors for {len(weak_models)} weak models")
    columns = list(columns) if columns is not None else default_columns(len(weak_models))
    if len(columns) != len(weak_models) or len(set(columns)) != len(columns):
        raise ValueError(f"need {len(weak_models)} distinct column names, got {columns}")
    clash = [c for c in columns if c in dataset.column_names]
    if clash:
        raise ValueError(f"dataset already has column(s) {clash}; choose other names (columns=...)")
    models = [m.model if isinstance(m, WeakModel) else m for m in weak_models]
    target = names_of(label_names)
    if target is None:
        label_column = find_label_column(dataset, label_kwargs.get("label_column"))
        feature = dataset.features.get(label_column) if label_column else None
        target = list(feature.names) if isinstance(feature, ClassLabel) else names_of(models[0])
    for k, model in enumerate(models):  # every model's names, checked before any compute
        label_permutation(names_of(model), target, source=f"weak model {k}", target="target label set")
    had = {c: c in dataset.column_names for c in (WEAK_LABEL_COLUMN, WEAK_CONFIDENCE_COLUMN)}
    out = dataset
    for k, (model, processor, column) in enumerate(zip(weak_models, processors, columns)):
        out = label_dataset(out, model, processor, logits_column=column, label_names=target,
                            desc=f"weak labels {k}", **label_kwargs)
    drop = [c for c, present in had.items() if not present and c in out.column_names]
    return out.remove_columns(drop) if drop else out


def merge_weak_label_datasets(
    datasets: Sequence[Dataset],
    *,
    logits_column: str = "weak_logits",
    columns: Sequence[str] | None = None,
    match_columns: Sequence[str] | None = None,
) -> Dataset:
    """Merge several weak-label datasets of the same rows into one dataset with one logits column per supervisor.

    Rows are matched by position and checked: all datasets must have the same length and equal values in
    ``match_columns`` (default: those of ``id``, ``image_id``, ``label``, ``labels`` that all have; pass ``[]`` to
    skip the check knowingly). Datasets written by ``label_dataset`` carry their label names (the ``weak_label``
    ``ClassLabel``): their logits are reordered by name to the first dataset's order (missing names are an error).
    The result is the first dataset without its ``logits_column``/``weak_label``/``weak_confidence`` columns, plus
    ``columns`` (default ``weak_logits_0..K-1``).
    """
    datasets = list(datasets)
    if len(datasets) < 2:
        raise ValueError("merge_weak_label_datasets needs at least two datasets")
    for k, ds in enumerate(datasets):
        _check_columns(ds, [logits_column], f"dataset {k}")
    lengths = [len(ds) for ds in datasets]
    if len(set(lengths)) != 1:
        raise ValueError(f"weak-label datasets differ in length {lengths}: they do not hold the same rows")
    widths = [weak_logits_array(ds.select(range(min(1, len(ds)))), logits_column).shape[-1] for ds in datasets]
    if len(set(widths)) != 1:
        raise ValueError(f"weak-label datasets have {widths} classes per row: their label sets differ")
    if match_columns is None:
        match_columns = [c for c in ROW_ID_COLUMNS if all(c in ds.column_names for ds in datasets)]
        if not match_columns:
            raise ValueError(
                f"cannot check that the datasets hold the same rows: none of {list(ROW_ID_COLUMNS)} is in all of "
                "them; pass match_columns=[...] (or match_columns=[] to skip the check)"
            )
    for col in match_columns:
        ref = datasets[0][col]
        for k, ds in enumerate(datasets[1:], start=1):
            _check_columns(ds, [col], f"dataset {k}")
            other = ds[col]
            bad = next((i for i, (a, b) in enumerate(zip(ref, other)) if a != b), None)
            if bad is not None:
                raise ValueError(
                    f"dataset {k} does not match dataset 0 at row {bad} in column {col!r} ({other[bad]!r} vs "
                    f"{ref[bad]!r}): the weak-label datasets must hold the same rows in the same order"
                )
    columns = list(columns) if columns is not None else default_columns(len(datasets))
    if len(columns) != len(datasets) or len(set(columns)) != len(columns):
        raise ValueError(f"need {len(datasets)} distinct column names, got {columns}")
    base = datasets[0].remove_columns(
        [c for c in (logits_column, WEAK_LABEL_COLUMN, WEAK_CONFIDENCE_COLUMN) if c in datasets[0].column_names]
    )
    clash = [c for c in columns if c in base.column_names]
    if clash:
        raise ValueError(f"the first dataset already has column(s) {clash}; choose other names (columns=...)")
    names = datasets[0].features.get(WEAK_LABEL_COLUMN)
    if isinstance(names, ClassLabel):
        datasets = [align_weak_labels(ds, names.names, logits_column=logits_column) for ds in datasets]
    feature = datasets[0].features[logits_column]
    for column, ds in zip(columns, datasets):
        base = base.add_column(column, weak_logits_array(ds, logits_column).tolist(), feature=feature)
    return base


def supervisor_accuracies(dataset: Dataset, columns: Sequence[str], label_column: str = "label") -> list[float]:
    """Each supervisor's accuracy on a labelled dataset carrying its logits (e.g. its ground-truth split)."""
    _check_columns(dataset, [label_column])
    labels = column_array(dataset, label_column)
    stacked = stack_weak_logits(dataset, columns)
    return [float((stacked[:, k].argmax(-1) == labels).mean()) for k in range(len(columns))]


def supervisor_temperatures(dataset: Dataset, columns: Sequence[str], label_column: str = "label") -> list[float]:
    """Each supervisor's temperature-scaling temperature fitted on a labelled dataset carrying its logits."""
    from .conf_select import column_temperature

    return [column_temperature(dataset, c, label_column) for c in columns]
