"""Seeded label noise (symmetric / asymmetric) and noisy labels as weak supervision.

The paper's noisy-label setting supervises the strong model with ground truth corrupted at a chosen rate. Here a
corruption picks exactly ``round(rate * N)`` examples at random (seeded) and changes their label:

- ``symmetric``: to a class drawn uniformly from the *other* ``num_classes - 1`` classes, so the realised noise rate
  equals ``rate``;
- ``asymmetric``: to a fixed partner class, ``transition[c]`` (default ``(c + 1) % num_classes``, the pair-flip
  noise of the noisy-label literature). A class mapped to itself keeps its label, so the realised rate can be lower.

:func:`noisy_weak_logits` turns (noisy) labels into ``weak_logits`` rows — the log of a smoothed one-hot with
``confidence`` on the given label — and :func:`add_noisy_labels` adds them to a dataset in the same columns that
:func:`hf_w2s.data.weak_labels.label_dataset` writes, so any weak-to-strong loss trains on them unchanged.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .loading import column_array

NOISE_KINDS = ("symmetric", "asymmetric")


def _check_labels(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D sequence of class ids, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]; found {sorted(set(bad.tolist()))[:10]}")
    return labels.astype(np.int64)


def _transition(num_classes: int, transition) -> np.ndarray:
    if transition is None:
        return (np.arange(num_classes) + 1) % num_classes
    table = np.arange(num_classes)
    if not isinstance(transition, Mapping) and len(transition) != num_classes:
        raise ValueError(f"a transition sequence lists one partner per class: got {len(transition)} partners for "
                         f"{num_classes} classes")
    items = transition.items() if isinstance(transition, Mapping) else enumerate(transition)
    for src, dst in items:
        src, dst = int(src), int(dst)
        if not (0 <= src < num_classes and 0 <= dst < num_classes):
            raise ValueError(f"transition {src} -> {dst} is outside [0, {num_classes - 1}]")
        table[src] = dst
    return table


def corrupt_labels(
    labels: Sequence[int],
    num_classes: int,
    rate: float,
    kind: str = "symmetric",
    seed: int = 0,
    transition: Mapping[int, int] | Sequence[int] | None = None,
) -> np.ndarray:
    """Return a corrupted copy of ``labels`` (the input is never modified).

    Args:
        labels: class ids in ``[0, num_classes)``.
        num_classes: number of classes.
        rate: fraction of examples whose label is changed, in ``[0, 1]``.
        kind: ``"symmetric"`` (uniform over the other classes) or ``"asymmetric"`` (to ``transition[c]``).
        seed: seed of the generator; the same inputs and seed always give the same noise.
        transition: asymmetric only — a mapping ``{class: partner}`` or a sequence ``partner[c]``; classes not
            listed keep their label. Default: ``c -> (c + 1) % num_classes``.
    """
    labels = _check_labels(labels, num_classes)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind={kind!r} is not a label-noise kind; choose one of {NOISE_KINDS}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"rate must be within [0, 1], got {rate}")
    if transition is not None and kind != "asymmetric":
        raise ValueError("transition= only applies to kind='asymmetric'")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    n_flip = int(round(float(rate) * labels.size))
    idx = rng.permutation(labels.size)[:n_flip]
    if kind == "symmetric":
        # an offset in 1..C-1 added modulo C is uniform over the other classes
        offsets = rng.integers(1, num_classes, size=n_flip)
        noisy[idx] = (labels[idx] + offsets) % num_classes
    else:
        noisy[idx] = _transition(num_classes, transition)[labels[idx]]
    return noisy


def noisy_weak_logits(labels: Sequence[int], num_classes: int, confidence: float = 0.9) -> np.ndarray:
    """``(N, num_classes)`` float32 logits whose softmax puts ``confidence`` on each label and spreads the rest
    evenly: ``log`` of a smoothed one-hot. Their argmax is the label, so hard-label losses see the label itself."""
    labels = _check_labels(labels, num_classes)
    if not 1.0 / num_classes < confidence < 1.0:
        raise ValueError(
            f"confidence must be in (1/num_classes, 1) = ({1.0 / num_classes:.4g}, 1) so that the label is the "
            f"argmax and the logits stay finite, got {confidence}"
        )
    other = (1.0 - confidence) / (num_classes - 1)
    logits = np.full((labels.size, num_classes), np.log(other), dtype=np.float32)
    logits[np.arange(labels.size), labels] = np.log(confidence)
    return logits


def add_noisy_labels(
    dataset,
    rate: float,
    kind: str = "symmetric",
    seed: int = 0,
    *,
    label_column: str = "label",
    num_classes: int | None = None,
    confidence: float = 0.9,
    logits_column: str = "weak_logits",
    transition: Mapping[int, int] | Sequence[int] | None = None,
):
    """Add ``noisy_label`` and the weak-supervision columns (``logits_column``, ``weak_label``,
    ``weak_confidence``) built from ``label_column`` corrupted by :func:`corrupt_labels`.

    ``num_classes`` defaults to the size of the label column's ``ClassLabel``. The true labels stay in
    ``label_column`` (for a clean ceiling or diagnostics); a student trained with ``gt_loss_weight=0`` never sees them.
    """
    from datasets import List, Value

    if label_column not in dataset.column_names:
        raise ValueError(f"dataset has no label column {label_column!r}; columns: {dataset.column_names}")
    if num_classes is None:
        num_classes = getattr(dataset.features[label_column], "num_classes", None)
        if num_classes is None:
            raise ValueError(f"{label_column!r} is not a ClassLabel column; pass num_classes=")
    clean = column_array(dataset, label_column)
    noisy = corrupt_labels(clean, num_classes, rate, kind=kind, seed=seed, transition=transition)
    logits = noisy_weak_logits(noisy, num_classes, confidence=confidence)
    for name in ("noisy_label", logits_column, "weak_label", "weak_confidence"):
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
    dataset = dataset.add_column("noisy_label", noisy.tolist(), feature=Value("int64"))
    dataset = dataset.add_column(
        logits_column, logits.tolist(), feature=List(Value("float32"), length=num_classes)
    )
    dataset = dataset.add_column("weak_label", noisy.tolist(), feature=Value("int64"))
    return dataset.add_column("weak_confidence", [float(confidence)] * len(noisy), feature=Value("float32"))
