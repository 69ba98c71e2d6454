"""Several weak supervisors' labels of the same rows: one logits column per supervisor.

:func:`label_dataset_multi` labels a dataset with several weak models in one call (a loop over
:func:`~hf_w2s.label_dataset`); :func:`merge_weak_label_datasets` merges several single-supervisor datasets of the
same rows. The columns are ``weak_logits_0 .. weak_logits_{K-1}`` by default; the trainer combines them
(:mod:`hf_w2s.trainer.combiner`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from datasets import ClassLabel, Dataset

from ..labels import label_permutation, names_of
from .loading import column_array
from .weak_labels import (
    WEAK_CONFIDENCE_COLUMN,
    WEAK_LABEL_COLUMN,
    WeakModel,
    align_weak_labels,
    find_label_column,
    label_dataset,
    load_weak_model,
    weak_logits_array,
)

__all__ = [
    "default_columns",
    "label_dataset_multi",
    "merge_weak_label_datasets",
    "stack_weak_logits",
    "supervisor_accuracies",
    "supervisor_temperatures",
]

#: columns compared by default to check that several weak-label datasets hold the same rows (``image_hash``: the
#: identity label_dataset writes, hf_w2s.data.identity)
ROW_ID_COLUMNS = ("image_hash", "id", "image_id", "label", "labels")


def default_columns(num_supervisors: int, prefix: str = "weak_logits") -> list[str]:
    """``[f"{prefix}_0", ..., f"{prefix}_{K-1}"]``."""
    return [f"{prefix}_{k}" for k in range(num_supervisors)]


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

    A small loop over :func:`~hf_w2s.data.weak_labels.label_dataset` (each call cached by its own fingerprint).
    ``weak_models``: in-memory models, Hub ids / local directories or :class:`~hf_w2s.data.weak_labels.WeakModel` s;
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
    ``match_columns`` (default: those of ``image_hash``, ``id``, ``image_id``, ``label``, ``labels`` that all have;
    pass ``[]`` to skip the check knowingly). Datasets written by ``label_dataset`` carry their label names (the
    ``weak_label`` ``ClassLabel``): their logits are reordered by name to the first dataset's order (missing names
    are an error). The result is the first dataset without its ``logits_column``/``weak_label``/``weak_confidence``
    columns, plus ``columns`` (default ``weak_logits_0..K-1``).
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
        ref = column_array(datasets[0], col)
        for k, ds in enumerate(datasets[1:], start=1):
            _check_columns(ds, [col], f"dataset {k}")
            other = column_array(ds, col)
            differ = np.flatnonzero(ref != other)
            bad = int(differ[0]) if len(differ) else None
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
    from ..calibration import column_temperature

    return [column_temperature(dataset, c, label_column) for c in columns]
