"""Seeded label noise for the noisy-label scenario: symmetric and asymmetric (pair-flip) corruption."""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("symmetric", "asymmetric")


def corrupt_labels(labels, num_classes: int, rate: float, kind: str = "symmetric", seed: int = 0) -> np.ndarray:
    """Return a corrupted copy of integer ``labels``; exactly ``round(rate * N)`` of them are changed.

    The examples to corrupt are drawn without replacement with ``numpy.random.default_rng(seed)``, so the same
    seed always corrupts the same examples the same way. ``kind``:

    - ``"symmetric"``: a corrupted label becomes one of the *other* ``num_classes - 1`` classes, uniformly;
    - ``"asymmetric"``: pair flipping, class ``c`` becomes ``(c + 1) % num_classes`` (a class-dependent,
      systematic error, like the classic ``2 → 7``-style confusions of a real annotator).

    The input is never modified.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown label-noise kind {kind!r}; choose one of {NOISE_KINDS}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"label-noise rate must be within [0, 1], got {rate}")
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got num_classes={num_classes}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-d sequence of class ids, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got values in [{labels.min()}, {labels.max()}]")
    out = labels.copy()
    rng = np.random.default_rng(seed)
    n_noisy = int(round(float(rate) * labels.size))
    idx = rng.choice(labels.size, size=n_noisy, replace=False)
    if kind == "symmetric":
        # an offset in 1..C-1 never maps a label onto itself and is uniform over the other classes
        out[idx] = (labels[idx] + rng.integers(1, num_classes, size=n_noisy)) % num_classes
    else:
        out[idx] = (labels[idx] + 1) % num_classes
    return out
