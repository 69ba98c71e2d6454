"""Seeded, disjoint splits for weak-to-strong runs, subsets, few-shot draws, canonical column names, and the check
that splits share no example (:func:`check_disjoint`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from .loading import column_array

__all__ = ["w2s_splits", "shots_per_class", "random_subset", "canonical_columns", "content_hash", "example_hashes",
           "check_disjoint", "split_fingerprint"]


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
                      select: bool = False, where: str = "given"):
    """Rename ``image_column`` → ``image`` and ``label_column`` → ``label`` (what the collator and harness read; an
    existing other ``label`` column is dropped). ``select`` keeps only those two columns. Missing columns are a
    ``ValueError`` that lists the columns present."""
    from .checks import missing_column_error

    wanted = {c: new for c, new in ((image_column, "image"), (label_column, "label")) if c is not None}
    for column, kind in ((image_column, "image"), (label_column, "label")):
        if column is not None and column not in ds.column_names:
            raise missing_column_error(where, kind, column, ds.column_names, f"{kind}_column")
    if select:
        ds = ds.select_columns(list(wanted))
    drop = [new for c, new in wanted.items() if c != new and new in ds.column_names]
    if drop:
        ds = ds.remove_columns(drop)
    mapping = {c: new for c, new in wanted.items() if c != new}
    return ds.rename_columns(mapping) if mapping else ds


def _content(value) -> bytes:
    """The bytes that identify one example's value: an encoded image's file bytes (read from its path when the
    dataset stores only paths), else the value itself serialised."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes") is not None:
            return value["bytes"]
        if value.get("path"):
            return Path(value["path"]).read_bytes()
    return json.dumps(value, sort_keys=True, default=str).encode()


def content_hash(value) -> str:
    """The identity of one stored example's value (an image as ``datasets`` keeps it undecoded, a ``{"bytes",
    "path"}`` dict): the SHA-1 of :func:`_content` — its encoded bytes."""
    return hashlib.sha1(_content(value)).hexdigest()


def example_hashes(dataset, column: str = "image") -> list[str]:
    """One content hash (SHA-1) per example of ``column``: the image bytes for an ``Image`` column (read from the
    Arrow storage, no decoding), the serialised value otherwise. Two rows with the same image get the same hash,
    whatever their position or source."""
    if column not in dataset.column_names:
        raise ValueError(f"cannot check the splits' disjointness: no column {column!r}; columns: "
                         f"{dataset.column_names}")
    hashes = []
    for batch in dataset.select_columns([column]).with_format("arrow").iter(batch_size=1000):  # bounded memory
        hashes += [content_hash(v) for v in batch.column(column).to_pylist()]
    return hashes


def split_fingerprint(hashes) -> str:
    """The content fingerprint of a split: a SHA-256 of its examples' content hashes (:func:`example_hashes`),
    sorted, so the same examples in any order give the same fingerprint and any other example another one."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:20]


def check_disjoint(splits: Mapping, column: str = "image", where: str = "the splits") -> dict[str, str]:
    """Refuse splits that share an example: every pair of the named datasets in ``splits`` is compared by content
    hash (:func:`example_hashes`), so an image that is in two splits is found whatever the source (carved from one
    pool, separate splits of a Hub dataset, a weak-label dataset built elsewhere). Raises ``ValueError`` naming the
    splits and how many examples they share. Returns each non-empty split's :func:`split_fingerprint` (the hashes
    are read once, for both)."""
    per_example = {name: example_hashes(ds, column) for name, ds in splits.items() if ds is not None and len(ds)}
    hashes = {name: set(h) for name, h in per_example.items()}
    names = list(hashes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = hashes[a] & hashes[b]
            if shared:
                raise ValueError(
                    f"{where}: {len(shared)} example(s) of {a!r} ({len(splits[a])} examples) are also in {b!r} "
                    f"({len(splits[b])} examples) — the same {column!r} content. Training, validation and test "
                    "examples must be disjoint, or the figures measure memorisation: use splits of different "
                    "examples (remove the duplicates from the training side)."
                )
    return {name: split_fingerprint(h) for name, h in per_example.items()}
