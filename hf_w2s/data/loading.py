"""The one image-dataset loader of hf_w2s, and reading whole columns.

:func:`load_image_dataset` takes a dataset from anywhere a user keeps one — a ``datasets.Dataset`` or
``DatasetDict`` object, ``hf_w2s:NAME`` (data that ships inside installed packages, see
:mod:`hf_w2s.data.packaged`), a ``save_to_disk`` directory, ``imagefolder`` with a ``data_dir`` or a local folder of
class sub-folders, or a Hub dataset id — and returns one split. The split name is honoured or refused, never ignored:
a source that is one single pool of examples (a ``Dataset``, a single-``Dataset`` ``save_to_disk`` directory, packaged
data) has no splits, so asking it for one is an error; carve splits from it with :func:`hf_w2s.data.splits.w2s_splits`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["column_array", "is_saved_dataset", "open_dataset", "load_image_dataset", "select_split", "PACKAGED_PREFIX"]

PACKAGED_PREFIX = "hf_w2s:"


def column_array(dataset, name: str, dtype=None) -> np.ndarray:
    """A whole column as one numpy array, read in one go (``np.asarray(dataset[name])`` walks a lazy column row by
    row: seconds for a few thousand rows)."""
    return np.asarray(dataset.with_format("numpy")[name][:], dtype=dtype)


def is_saved_dataset(path) -> bool:
    """Whether ``path`` is a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    path = Path(path)
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _describe(source) -> str:
    return repr(str(source)) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def open_dataset(source, *, config_name: str | None = None, data_dir: str | None = None,
                 revision: str | None = None, token=None, split: str | None = None):
    """A ``Dataset`` (a single pool of examples) or a ``DatasetDict`` (named splits) from ``source`` (see the module
    doc). For a Hub id or a local folder, ``split`` is passed on to ``load_dataset`` (only that split is read)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    if isinstance(source, (Dataset, DatasetDict)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a Dataset, a DatasetDict, a path or a Hub id, got {type(source).__name__}")
    name = str(source)
    if name.startswith(PACKAGED_PREFIX):
        from .packaged import load_packaged

        return load_packaged(name[len(PACKAGED_PREFIX):])
    if name == "imagefolder":
        if not data_dir:
            raise ValueError("the dataset 'imagefolder' needs data_dir (the folder of class sub-folders).")
        return load_dataset("imagefolder", data_dir=data_dir, split=split)
    path = Path(name)
    if is_saved_dataset(path):
        return load_from_disk(name)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"dataset {name!r} is a file; give a folder of images or a save_to_disk directory")
        return load_dataset(name, split=split)  # infers imagefolder (or csv/parquet/...) from the files
    if name.startswith((".", "/", "~")) or os.sep in name.rstrip("/").split("/", 1)[-1]:
        raise ValueError(f"dataset {name!r} does not exist (no such local folder)")
    from .packaged import PACKAGED_DATASETS

    try:
        return load_dataset(name, config_name, data_dir=data_dir, split=split, revision=revision, token=token)
    except Exception as err:
        if name in PACKAGED_DATASETS:  # 'mnist' is a Hub id; the offline digits are 'hf_w2s:mnist'
            raise ValueError(f"cannot load the Hub dataset {name!r} ({type(err).__name__}: {err}); the offline "
                             f"packaged data is named {PACKAGED_PREFIX}{name}") from err
        raise


def select_split(dataset, split: str | None, source="the dataset"):
    """One split of ``dataset`` (see :func:`load_image_dataset` for the rules)."""
    from datasets import DatasetDict

    where = source if isinstance(source, str) else _describe(source)
    if not isinstance(dataset, DatasetDict):
        if split is not None:
            raise ValueError(
                f"{where} is a single pool of examples without splits, so it has no split {split!r}; use it whole "
                "(no split), or carve disjoint splits from it (split_sizes / hf_w2s.data.splits.w2s_splits)."
            )
        return dataset
    if split is None:
        if "train" in dataset:
            return dataset["train"]
        if len(dataset) == 1:
            return next(iter(dataset.values()))
        raise ValueError(f"{where} has several splits {sorted(dataset)} and none is named 'train': name the split")
    if split not in dataset:
        raise ValueError(f"{where} has no split {split!r}; its splits: {sorted(dataset)}")
    return dataset[split]


def load_image_dataset(source, split: str | None = None, *, config_name: str | None = None,
                       data_dir: str | None = None, revision: str | None = None, token=None):
    """One split of an image dataset, as a ``datasets.Dataset``.

    ``split=None`` takes a single pool whole, or the ``train`` split (or the only split) of a dataset with splits. A
    named split must exist: a single pool has none (an error, never silently the whole pool), and a missing split is
    an error listing the available ones."""
    from datasets import Dataset, DatasetDict

    remote = isinstance(source, (str, os.PathLike)) and not str(source).startswith(PACKAGED_PREFIX) and not (
        is_saved_dataset(source))
    opened = open_dataset(source, config_name=config_name, data_dir=data_dir, revision=revision, token=token,
                          split=split if remote else None)
    if remote and split is not None and isinstance(opened, Dataset):
        return opened  # load_dataset read just that split
    if not isinstance(opened, (Dataset, DatasetDict)):
        raise TypeError(f"{_describe(source)} is a {type(opened).__name__}; hf_w2s needs a datasets.Dataset "
                        "(a streaming dataset: load it with streaming=False)")
    return select_split(opened, split, _describe(source))
