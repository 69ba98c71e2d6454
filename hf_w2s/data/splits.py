"""Seeded, disjoint splits for weak-to-strong runs, subsets, few-shot draws and canonical column names."""

from __future__ import annotations

import numpy as np

from .loading import column_array

__all__ = ["w2s_splits", "shots_per_class", "random_subset", "canonical_columns"]


def w2s_splits(
    dataset, sizes: tuple[int, ...] = (500, 3000, 1500), seed: int = 0,
    names: tuple[str, ...] = ("weak_train", "strong_train", "test"),
):
    """Seeded, disjoint splits of one pool: by default ground truth for the weak supervisor, the strong model's
    (weakly labelled) split, and a test split. Returns a ``DatasetDict`` with one split per name."""
    from datasets import DatasetDict

    if len(sizes) != len(names):
        raise ValueError(f"{len(sizes)} split sizes for {len(names)} split names {list(names)}")
    if any(int(s) < 0 for s in sizes):
        raise ValueError(f"split sizes must be >= 0, got {list(sizes)}")
    if sum(sizes) > len(dataset):
        raise ValueError(f"split sizes {list(sizes)} add up to {sum(sizes)} > {len(dataset)} examples")
    order = np.random.default_rng(seed).permutation(len(dataset))
    out, start = {}, 0
    for name, size in zip(names, sizes):
        out[name] = dataset.select(np.sort(order[start : start + int(size)]))
        start += int(size)
    return DatasetDict(out)


def random_subset(dataset, n: int | None, seed: int, strict: bool = False):
    """A seeded random subset of ``n`` examples in their original order (the whole dataset when ``n`` is ``None``
    or not smaller than it; with ``strict``, ``n`` larger than the dataset is an error)."""
    if strict and n is not None and n > len(dataset):
        raise ValueError(f"asked for {n} examples from a split of {len(dataset)}")
    if n is None or n >= len(dataset):
        return dataset
    idx = np.random.default_rng(seed).permutation(len(dataset))[:n]
    return dataset.select(np.sort(idx))


def shots_per_class(ds, k: int, seed: int, label_column: str = "label"):
    """``k`` seeded examples of every class (few-shot); an error names a class with fewer than ``k``."""
    labels = column_array(ds, label_column)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < k:
            raise ValueError(f"class {c} has only {len(idx)} examples, fewer than shots_per_class={k}")
        chosen.append(rng.choice(idx, size=k, replace=False))
    return ds.select(np.sort(np.concatenate(chosen)))


def canonical_columns(ds, *, image_column: str | None = None, label_column: str | None = None,
                      select: bool = False, where: str = "the dataset"):
    """Rename ``image_column`` → ``image`` and ``label_column`` → ``label`` (what the collator and harness read; an
    existing other ``label`` column is dropped). ``select`` keeps only those two columns. Missing columns are a
    ``ValueError`` that lists the columns present."""
    wanted = {c: new for c, new in ((image_column, "image"), (label_column, "label")) if c is not None}
    missing = [c for c in wanted if c not in ds.column_names]
    if missing:
        raise ValueError(f"{where} has no column {missing[0]!r}; columns: {ds.column_names}")
    if select:
        ds = ds.select_columns(list(wanted))
    drop = [new for c, new in wanted.items() if c != new and new in ds.column_names]
    if drop:
        ds = ds.remove_columns(drop)
    mapping = {c: new for c, new in wanted.items() if c != new}
    return ds.rename_columns(mapping) if mapping else ds
