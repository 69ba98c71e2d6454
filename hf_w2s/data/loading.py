"""The one image-dataset loader of hf_w2s, and reading whole columns.

:func:`load_image_dataset` takes a dataset from anywhere a user keeps one — a ``datasets.Dataset`` or
``DatasetDict`` object, ``hf_w2s:NAME`` (data that ships inside installed packages, see
:mod:`hf_w2s.data.packaged`), a ``save_to_disk`` directory, ``imagefolder`` with a ``data_dir`` or a local folder of
class sub-folders, or a Hub dataset id — and returns one split. The split name is honoured or refused, never ignored:
a source that is one single pool of examples (a ``Dataset``, a single-``Dataset`` ``save_to_disk`` directory, packaged
data) has no splits, so asking it for one is an error; carve splits from it with :func:`hf_w2s.data.splits.w2s_splits`.

A name that can only be a local path (``./x``, ``/x``, ``a/b/c``, or ``folder/x`` where ``folder`` exists here) and does
not exist is refused as such (:func:`missing_local_error`), never sent to the Hub; a bare name that is neither a local
folder nor loadable from the Hub says both (:func:`not_found_error`) — models are loaded the same way
(:mod:`hf_w2s.modeling`). A streaming ``IterableDataset`` is refused with the reason and the fix
(:func:`streaming_error`) where a dataset must be scanned or cached; the trainer takes one with ``max_steps``.
hf_w2s's own ``datasets`` cache files go under ``HF_DATASETS_CACHE/hf_w2s`` (:func:`cache_file_name`), never into the
folder of the user's data.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np

__all__ = ["column_array", "is_saved_dataset", "open_dataset", "load_image_dataset", "select_split", "PACKAGED_PREFIX",
           "looks_local", "check_source_name", "missing_local_error", "not_found_error", "is_streaming",
           "streaming_error", "cache_file_name",
           "without_indices"]

PACKAGED_PREFIX = "hf_w2s:"


def column_array(dataset, name: str, dtype=None) -> np.ndarray:
    """A whole column as one numpy array, read in one go (``np.asarray(dataset[name])`` walks a lazy column row by
    row: seconds for a few thousand rows)."""
    return np.asarray(dataset.with_format("numpy")[name][:], dtype=dtype)


def is_saved_dataset(path) -> bool:
    """Whether ``path`` is a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    path = Path(path)
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def looks_local(name: str) -> bool:
    """Whether ``name`` can only be a local path, not a Hub id (``name`` or ``namespace/name``)."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/"):
        return True
    parts = name.split("/")
    return len(parts) > 2 or (len(parts) == 2 and os.path.isdir(parts[0]))


def _nearest(name: str) -> tuple[str, str]:
    """``(absolute path, "; did you mean '...'?" or "")`` for a local path that does not exist."""
    full = os.path.abspath(os.path.expanduser(name))
    parent, base = os.path.dirname(full), os.path.basename(full.rstrip("/"))
    near = difflib.get_close_matches(base, sorted(os.listdir(parent)), n=1) if os.path.isdir(parent) else []
    hint = f"; did you mean {os.path.join(os.path.dirname(name.rstrip('/')), near[0])!r}?" if near else ""
    return full, hint


def missing_local_error(name: str, what: str = "dataset") -> ValueError:
    """The error for a local path that does not exist (never a Hub lookup)."""
    full, hint = _nearest(name)
    return ValueError(f"{what} {name!r} does not exist (no such local folder: {full}){hint}")


def not_found_error(name: str, what: str, err: BaseException) -> ValueError:
    """The error for a name that is neither a local folder nor loadable from the Hub: both, with the Hub's reason."""
    full, hint = _nearest(name)
    reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return ValueError(f"{what} {name!r} is not a local folder (nothing at {full}{hint}) and could not be loaded from "
                      f"the Hub ({reason}). Check the path, or the Hub id, the login and the network.")


def is_streaming(dataset) -> bool:
    """Whether ``dataset`` is a streaming ``IterableDataset`` (or a dict of them)."""
    from datasets import IterableDataset, IterableDatasetDict

    return isinstance(dataset, (IterableDataset, IterableDatasetDict))


def check_source_name(name, what: str = "dataset", option: str | None = None) -> None:
    """Check a dataset or model name when the options are read, before anything is loaded: packaged data must exist
    (``hf_w2s:NAME``), a name that can only be a local path must exist, a local ``model`` folder must hold a saved
    model (``config.json``; not, say, a saved dataset) whose safetensors weights open (not cut short). Hub ids are
    checked when they load."""
    if name is None or not isinstance(name, (str, os.PathLike)):
        return
    name = str(name)
    if name.startswith(PACKAGED_PREFIX):
        from .packaged import PACKAGED_DATASETS

        if what == "dataset" and name[len(PACKAGED_PREFIX):] not in PACKAGED_DATASETS:
            raise ValueError(f"{option or what} {name!r} is not packaged data; choose one of "
                             f"{[PACKAGED_PREFIX + n for n in sorted(PACKAGED_DATASETS)]}.")
        return
    if not os.path.exists(name) and looks_local(name):
        raise missing_local_error(name, option or what)
    if what == "model" and os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        kind = "a saved dataset" if is_saved_dataset(name) else "no config.json"
        raise ValueError(f"{option or what} {name!r} is a folder but not a saved model ({kind}); give the folder of a "
                         "model saved with save_pretrained (config.json and weights), or a Hub id.")
    if what == "model" and os.path.isdir(name):
        from ..checkpoints import weights_problem

        problem = weights_problem(name)
        if problem:
            raise ValueError(f"{option or what} {name!r}: {problem}; save the model again (save_pretrained), or "
                             "download it again.")


def streaming_error(what: str = "hf_w2s") -> ValueError:
    """Why a streaming ``IterableDataset`` is refused where a dataset must be scanned or cached, and the fix."""
    return ValueError(f"{what} needs a datasets.Dataset, but got a streaming IterableDataset, which has no length and "
                      "cannot be checked, labelled once and cached. Load it with load_dataset(..., streaming=False), "
                      "or take a part of the stream: Dataset.from_generator(lambda: (yield from stream.take(N)), "
                      "features=stream.features).")


def cache_file_name(dataset, tag: str, fingerprint: str) -> str | None:
    """Where hf_w2s's ``datasets`` cache file ``tag-fingerprint`` goes for a dataset backed by files: under
    ``HF_DATASETS_CACHE/hf_w2s``, never next to the user's data (``datasets`` would write its cache and temporary
    files into the source folder). ``None`` for an in-memory dataset (which ``datasets`` does not cache)."""
    if not getattr(dataset, "cache_files", None):
        return None
    import datasets.config

    folder = Path(datasets.config.HF_DATASETS_CACHE) / "hf_w2s"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{tag}-{fingerprint}.arrow")


def without_indices(dataset):
    """``dataset`` with its row mapping (after ``select``/``shuffle``) applied, as column-wise concatenation needs;
    written under hf_w2s's cache (:func:`cache_file_name`), in memory for an in-memory dataset."""
    if getattr(dataset, "_indices", None) is None:
        return dataset
    path = cache_file_name(dataset, "rows", dataset._fingerprint)
    return dataset.flatten_indices(cache_file_name=path, keep_in_memory=path is None)


def _describe(source) -> str:
    return repr(str(source)) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def open_dataset(source, *, config_name: str | None = None, data_dir: str | None = None,
                 revision: str | None = None, token=None, split: str | None = None):
    """A ``Dataset`` (a single pool of examples) or a ``DatasetDict`` (named splits) from ``source`` (see the module
    doc). For a Hub id or a local folder, ``split`` is passed on to ``load_dataset`` (only that split is read)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    if isinstance(source, (Dataset, DatasetDict)):
        return source
    if is_streaming(source):
        raise streaming_error()
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
        _refuse_empty_saved_splits(path, name)
        return load_from_disk(name)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"dataset {name!r} is a file; give a folder of images or a save_to_disk directory")
        return load_dataset(name, split=split)  # infers imagefolder (or csv/parquet/...) from the files
    if looks_local(name):
        raise missing_local_error(name)
    from .packaged import PACKAGED_DATASETS

    try:
        return load_dataset(name, config_name, data_dir=data_dir, split=split, revision=revision, token=token)
    except Exception as err:
        if name in PACKAGED_DATASETS:  # 'mnist' is a Hub id; the offline digits are 'hf_w2s:mnist'
            raise ValueError(f"cannot load the Hub dataset {name!r} ({type(err).__name__}: {err}); the offline "
                             f"packaged data is named {PACKAGED_PREFIX}{name}") from err
        if _unreachable(err):
            raise not_found_error(name, "dataset", err) from err
        raise


def _refuse_empty_saved_splits(path: Path, name: str) -> None:
    """A ``save_to_disk`` folder holding a split of 0 rows (saved with no data file): ``load_from_disk`` cannot open
    it (an ``IndexError`` deep in ``datasets``), so it is named first."""
    import json

    folders = [path] if (path / "state.json").is_file() else [p for p in path.iterdir() if (p / "state.json").is_file()]
    for folder in folders:
        try:
            empty = json.loads((folder / "state.json").read_text()).get("_data_files") == []
        except (OSError, ValueError):
            continue
        if empty:
            what = "" if folder == path else f" split {folder.name!r}"
            raise ValueError(f"dataset {name!r}{what} is empty (0 rows, saved without data): datasets cannot load it. "
                             "Save it again without the empty split, or give one that has examples.")


def _unreachable(err: BaseException) -> bool:
    """The Hub could not be reached or has no such repo (not: the repo is there but its data is bad)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        from datasets.exceptions import DatasetNotFoundError
    except ImportError:  # pragma: no cover - older datasets
        DatasetNotFoundError = FileNotFoundError  # noqa: N806
    return isinstance(err, (ConnectionError, OfflineModeIsEnabled, DatasetNotFoundError, FileNotFoundError,
                            HfHubHTTPError)) or "OfflineModeIsEnabled" in str(err)


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
        raise streaming_error(f"{_describe(source)} is a {type(opened).__name__}; hf_w2s")
    return select_split(opened, split, _describe(source))
