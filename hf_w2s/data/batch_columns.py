"""Per-row vectors computed batch by batch, written to disk as ``datasets`` columns: weak labels, cached features.

:func:`map_batches_to_columns` is the one writer behind ``label_dataset`` (and meant for a frozen backbone's cached
features): a function computes new columns (e.g. a float vector per row) for a batch of rows, and the result is kept
on disk, never gathered in memory:

* a ``datasets.Dataset``: ``Dataset.map`` into an Arrow cache file named by a deliberate fingerprint (a re-run is read
  from the cache); with several processes (``torchrun`` / ``accelerate launch``) each process maps its contiguous
  part into its own file (``TAG-FINGERPRINT_00001_of_00002.arrow``, the naming of ``Dataset.map(num_proc=...)``),
  a barrier follows, and every process opens the same files memory-mapped (``concatenate_datasets``): the rows, their
  order and the fingerprint are those of one process, and a complete set of files from any number of processes is a
  cache hit;
* a streaming ``IterableDataset``: shards of a fixed number of rows, each written as a Parquet file as it completes,
  resumable after an interruption (:mod:`hf_w2s.data.stream_shards`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["map_batches_to_columns"]


def map_batches_to_columns(
    dataset,
    fn: Callable,
    *,
    features,
    fingerprint: str,
    input_columns: Sequence[str],
    batch_size: int = 64,
    tag: str = "columns",
    desc: str | None = None,
    what: str = "map_batches_to_columns",
    output_dir: str | None = None,
    shard_size: int = 10_000,
):
    """``dataset`` with the columns ``fn`` computes, batch by batch, kept on disk.

    Args:
        dataset: a ``datasets.Dataset`` (backed by files, for a cache), or a streaming ``IterableDataset``.
        fn: ``fn(*values, rows) -> {column: array}``: ``values`` holds one list per name in ``input_columns``, in
            their *stored* form (an image is a ``{"bytes", "path"}`` dict: decode it with
            ``hf_w2s.data.images.decode_image`` to name the row of a bad one), ``rows`` the batch's row numbers (in
            the dataset; for a stream, in this process's part of it). It returns one array (or list) per column of
            ``features``, one entry per row, e.g. ``{"features": np.ndarray of shape (B, 1280)}``.
        features: the ``datasets.Features`` of the new columns (a column of the input with the same name is replaced).
        fingerprint: identifies the new values: build it from what determines them (the input's fingerprint or
            source, the model's identity, its preprocessing and parameters; not the batch size). It names the cache
            files, so a re-run with the same fingerprint computes nothing.
        input_columns: the columns ``fn`` reads.
        tag: prefix of the cache files (``HF_DATASETS_CACHE/hf_w2s/TAG-FINGERPRINT.arrow``).
        what: the name used in errors raised on every process when one fails.
        output_dir, shard_size: for a stream only — where the Parquet shards go and how many rows each holds (see
            :func:`hf_w2s.data.stream_shards.map_stream_to_parquet`).

    Returns a ``datasets.Dataset``: the input's columns and the new ones (a stream: loaded from its shards). Its
    fingerprint depends only on the input's and ``fingerprint``, whatever the number of processes.
    """
    from datasets import Dataset

    from .loading import is_streaming

    if is_streaming(dataset):
        from .stream_shards import map_stream_to_parquet

        if output_dir is None:
            raise ValueError(f"{what} of a streaming IterableDataset writes Parquet shards to a folder: pass "
                             "output_dir= (an interrupted run given the same folder resumes at its first missing "
                             "shard)")
        return map_stream_to_parquet(dataset, fn, features=features, fingerprint=fingerprint,
                                     input_columns=input_columns, batch_size=batch_size, output_dir=output_dir,
                                     shard_size=shard_size, desc=desc, what=what)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{what} needs a datasets.Dataset or a streaming IterableDataset, got "
                        f"{type(dataset).__name__}")
    new = _new_columns(dataset, fn, features, fingerprint, input_columns, batch_size, tag, desc, what)
    return _joined(dataset, new, fingerprint)


def undecoded(dataset, columns: Sequence[str]):
    """``dataset`` (map-style or streaming) with the media columns among ``columns`` (``Image``, ``Audio``, ...) cast
    to their stored form (``decode=False``): the bytes and the path, decoded by whoever reads them."""
    for name in columns:
        feature = dataset.features[name] if dataset.features else None
        if getattr(feature, "decode", False) and dataclasses.is_dataclass(feature):
            dataset = dataset.cast_column(name, dataclasses.replace(feature, decode=False))
    return dataset


#: rows written to the Arrow file at once: up to WRITE_ROWS, and about WRITE_BYTES of input and output (the images of
#: a write are read at once). Each write is one record batch, and opening an Arrow file touches every record batch's
#: header (the kernel maps 64 KiB around it): 1,000 record batches of one 256-row model batch each would keep 64 MiB of
#: the file resident
WRITE_ROWS, WRITE_BYTES = 4096, 16 * 2**20


def feature_bytes(feature) -> int:
    """Bytes a row of ``feature`` takes in Arrow, for fixed-size features (a list without a length counts one item)."""
    from datasets import List, Value

    if isinstance(feature, dict):
        return sum(feature_bytes(f) for f in feature.values())
    if isinstance(feature, List):
        return max(feature.length, 1) * feature_bytes(feature.feature)
    dtype = getattr(feature, "dtype", None) if isinstance(feature, Value) else None
    return np.dtype(dtype).itemsize if dtype and dtype not in ("string", "large_string", "binary") else 8


def rows_per_write(dataset, batch_size: int, features) -> int:
    """Rows ``Dataset.map`` hands over (and writes) at once: a multiple of ``batch_size`` (the function still sees
    batches of ``batch_size``), about :data:`WRITE_BYTES` of input and output, at most :data:`WRITE_ROWS` (at least
    one batch)."""
    row_bytes = (dataset._estimate_nbytes() or 0) / max(len(dataset), 1) + feature_bytes(dict(features))
    rows = min(WRITE_ROWS, int(WRITE_BYTES / max(row_bytes, 1)))
    return max(batch_size, rows // batch_size * batch_size)


def _in_batches(fn: Callable, batch_size: int, start: int) -> Callable:
    """``fn`` called on batches of ``batch_size`` of what ``Dataset.map`` hands over, with the dataset's row numbers
    (a part of several processes starts at ``start``); the outputs are joined back."""

    def mapped(*args):
        *values, indices = args
        outputs = [fn(*[v[i:i + batch_size] for v in values], [start + r for r in indices[i:i + batch_size]])
                   for i in range(0, len(indices), batch_size)]
        return {name: _joined_values([o[name] for o in outputs]) for name in outputs[0]} if outputs else {}

    return mapped


def _joined_values(parts: list):
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
    return [x for p in parts for x in p]


def _map_part(part, fn, features, fingerprint, input_columns, batch_size, desc, path, start):
    return part.map(
        _in_batches(fn, batch_size, start), batched=True,
        batch_size=rows_per_write(part, batch_size, features),
        with_indices=True, input_columns=list(input_columns), remove_columns=list(input_columns), features=features,
        new_fingerprint=fingerprint, cache_file_name=path, desc=desc,
    )


def _earlier_result(folder: Path, tag: str, fingerprint: str) -> list[str] | None:
    """The files of a complete earlier result: the one file of a single process, or every part of a run of several
    processes (any number); ``None`` if there is none."""
    whole = folder / f"{tag}-{fingerprint}.arrow"
    if whole.is_file():
        return [str(whole)]
    runs: dict[int, dict[int, str]] = {}
    for path in folder.glob(f"{tag}-{fingerprint}_*_of_*.arrow"):
        found = re.fullmatch(rf"{re.escape(tag)}-{re.escape(fingerprint)}_(\d+)_of_(\d+)\.arrow", path.name)
        if found:
            runs.setdefault(int(found[2]), {})[int(found[1])] = str(path)
    for total, parts in sorted(runs.items()):
        if sorted(parts) == list(range(total)):
            return [parts[r] for r in range(total)]
    return None


def _shared_folder(path: str | None, state) -> Path:
    """Where every process finds the parts: next to the cache file ``path`` of a dataset backed by files, else (an
    in-memory dataset, ``path`` None) in a temporary folder of the main process (``datasets``' own for in-memory
    results, removed when that process exits)."""
    if path is not None:
        return Path(path).parent
    import tempfile

    from datasets.fingerprint import get_temporary_cache_files_directory

    from ..distributed import broadcast_from_main

    local = None
    if state.is_main_process:
        local = tempfile.mkdtemp(prefix="parts-", dir=get_temporary_cache_files_directory())
    return Path(broadcast_from_main(local, state))


def _new_columns(dataset, fn, features, fingerprint, input_columns, batch_size, tag, desc, what):
    """The new columns alone, as a memory-mapped ``Dataset`` (in memory only for an in-memory input on one
    process), in the dataset's row order."""
    from datasets import Dataset, concatenate_datasets, is_caching_enabled

    from ..distributed import broadcast_from_main, process_rows, process_state, run_on_every_process
    from .loading import cache_file_name

    raw = undecoded(dataset.with_format(None).select_columns(list(input_columns)), input_columns)
    state = process_state()
    n, rank = state.num_processes, state.process_index
    path = cache_file_name(raw, tag, fingerprint)  # None for an in-memory dataset: never cached
    earlier = _earlier_result(Path(path).parent, tag, fingerprint) if path and is_caching_enabled() else None
    if n == 1:
        if earlier is None or earlier == [path]:  # Dataset.map reads its own cache file
            return _map_part(raw, fn, features, fingerprint, input_columns, batch_size, desc, path, 0)
        parts = earlier
    else:
        parts = broadcast_from_main(earlier, state)  # every process takes the same branch
        if parts is None:
            folder = _shared_folder(path, state)
            split = [process_rows(len(raw), n, r) for r in range(n)]
            parts = [str(folder / f"{tag}-{fingerprint}_{r:05d}_of_{n:05d}.arrow") for r in range(n)]
            rows = split[rank]
            run_on_every_process(
                lambda: _map_part(raw.select(rows), fn, features, f"{fingerprint}-{rank}-of-{n}", input_columns,
                                  batch_size, desc, parts[rank], rows.start) if len(rows) else None,
                state, what=what, where=f"handled rows {rows.start}..{rows.stop - 1} of the dataset")
            parts = [p for p, r in zip(parts, split) if len(r)]
    new = concatenate_datasets([Dataset.from_file(p) for p in parts])
    new._fingerprint = fingerprint
    return new


def _joined(dataset, new, fingerprint: str):
    """The input's columns (those ``new`` replaces removed) and ``new``'s, side by side, without a copy."""
    from datasets import concatenate_datasets
    from datasets.fingerprint import Hasher

    from .loading import without_indices

    replaced = [c for c in new.column_names if c in dataset.column_names]
    base = without_indices(dataset.remove_columns(replaced) if replaced else dataset)
    joined = concatenate_datasets([base, new], axis=1)
    joined._fingerprint = Hasher.hash([dataset._fingerprint, fingerprint])
    return joined
