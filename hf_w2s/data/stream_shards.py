"""A streaming dataset mapped into Parquet shards of a fixed number of rows, resumable after an interruption.

:func:`map_stream_to_parquet` reads a streaming ``IterableDataset`` in Arrow batches, computes new columns for each
batch and writes every row (its own columns and the new ones) into ``OUTPUT/data/SPLIT-RANK-of-WORLD-INDEX.parquet``:
shards of ``shard_size`` rows (the last one shorter), each written under a hidden temporary name and renamed when it
is complete. With several processes the stream is split by ``datasets.distributed.split_dataset_by_node`` (whole
data files per process when their number divides evenly, else every n-th example), so the shards of the processes
are disjoint; a process's shards hold its rows in stream order.

After each complete shard the process records, in ``OUTPUT/.hf_w2s/progress-RANK-of-WORLD.json``, the shards written
and the stream's position (``IterableDataset.state_dict()``); run again with the same folder, it resumes at its first
missing shard (``load_state_dict``: the stream is not read again from the start). The record also holds a key of
the computation (its fingerprint, the shard size and the number of processes): a folder holding another computation's
shards is refused, never mixed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["map_stream_to_parquet", "open_stream", "shard_files", "stream_sources", "stream_identity",
           "stream_revision", "DATA_DIR", "PROGRESS_DIR"]

DATA_DIR = "data"
PROGRESS_DIR = ".hf_w2s"


def shard_name(split: str, rank: int, world: int, index: int) -> str:
    return f"{split}-{rank:05d}-of-{world:05d}-{index:05d}.parquet"


def shard_files(output_dir, split: str = "train") -> list[str]:
    """The complete Parquet shards in ``output_dir``, in process then stream order."""
    return sorted(str(p) for p in (Path(output_dir) / DATA_DIR).glob(f"{split}-*-of-*-*.parquet"))


def stream_sources(stream) -> list[str]:
    """What a stream reads, as far as ``datasets`` tells: its data files (Hub files are ``hf://...@COMMIT/...``), or
    the fingerprints of the datasets it was made from (``Dataset.to_iterable_dataset``); empty when unknown."""
    source = stream._ex_iterable
    while getattr(source, "ex_iterable", None) is not None:  # the innermost iterable reads the data
        source = source.ex_iterable
    kwargs = getattr(source, "kwargs", None) or {}
    files = kwargs.get("files") or []
    shards = [getattr(s, "_fingerprint", None) for s in kwargs.get("shards") or []]
    return [str(f) for f in files] + [s for s in shards if s]


def stream_identity(stream) -> str:
    """A fingerprint of a stream (``IterableDataset`` has none): its sources, features, split and name."""
    from datasets.fingerprint import Hasher

    info = stream.info
    return Hasher.hash({"sources": stream_sources(stream), "features": stream.features.to_dict() if stream.features
                        else None, "split": str(stream.split), "name": info.dataset_name, "config": info.config_name})


def stream_revision(stream) -> str | None:
    """The Hub commit a stream of a Hub dataset reads (from its ``hf://datasets/REPO@COMMIT/...`` files), or None."""
    import re

    for source in stream_sources(stream):
        found = re.search(r"@([0-9a-f]{40})/", source)
        if found:
            return found[1]
    return None


class _Progress:
    """What one process has written to ``output_dir`` (see the module doc); saved atomically after each shard."""

    def __init__(self, output_dir: Path, rank: int, world: int, key: str, shard_size: int):
        self.path = output_dir / PROGRESS_DIR / f"progress-{rank:05d}-of-{world:05d}.json"
        self.record = {"key": key, "shard_size": shard_size, "world_size": world, "rank": rank, "shards": [],
                       "rows": 0, "state": None, "done": False}
        if self.path.is_file():
            found = json.loads(self.path.read_text())
            if found.get("key") != key:
                raise ValueError(
                    f"output_dir {str(output_dir)!r} holds the shards of another computation (other data, model, "
                    f"parameters or shard size: recorded in {self.path}); choose an empty folder, or delete it to "
                    "start again")
            self.record = found
            return
        others = sorted(p.name for p in (output_dir / PROGRESS_DIR).glob("progress-*.json")
                        if not p.name.endswith(f"-of-{world:05d}.json"))
        if others:
            raise ValueError(f"output_dir {str(output_dir)!r} was written by another number of processes ({others}); "
                             f"resume with that number, or choose an empty folder")
        if list((output_dir / DATA_DIR).glob(f"*-{rank:05d}-of-{world:05d}-*.parquet")):
            raise ValueError(f"output_dir {str(output_dir)!r} holds Parquet shards that no progress record of "
                             f"hf_w2s accounts for; choose an empty folder")

    def add(self, name: str, rows: int, state: dict) -> None:
        self.record["shards"].append({"file": f"{DATA_DIR}/{name}", "rows": rows})
        self.record["rows"] += rows
        self.record["state"] = state
        self.save()

    def finish(self) -> None:
        self.record["done"] = True
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.record, default=_jsonable))
        os.replace(partial, self.path)


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot record {type(value).__name__} in a progress file")


def _write_part(part, fn, *, features, all_features, input_columns, batch_size, output_dir: Path, shard_size: int,
                split: str, progress: _Progress, rank: int, world: int, desc: str | None) -> None:
    """Map this process's part of the stream into its shards, from where ``progress`` left off."""
    import pyarrow as pa
    from datasets.arrow_writer import ParquetWriter
    from datasets.utils.tqdm import tqdm

    if progress.record["done"]:
        return
    stream = part.with_format("arrow")
    if progress.record["state"] is not None:
        stream.load_state_dict(progress.record["state"])
    data = output_dir / DATA_DIR
    data.mkdir(parents=True, exist_ok=True)
    index, rows_done = len(progress.record["shards"]), progress.record["rows"]
    writer, partial, in_shard, pending = None, None, 0, []
    bar = tqdm(desc=desc, unit=" examples", initial=rows_done)

    def compute(tables):
        nonlocal writer, partial, in_shard, rows_done
        table = pa.concat_tables(tables)
        rows = list(range(rows_done, rows_done + table.num_rows))
        new = fn(*[table.column(c).to_pylist() for c in input_columns], rows)
        if writer is None:
            partial = data / f".{shard_name(split, rank, world, index)}.partial"
            writer = ParquetWriter(path=str(partial), features=all_features, embed_local_files=True)
        own = {c: table.column(c) for c in table.column_names if c not in features}
        writer.write_batch({**own, **{name: new[name] for name in features}})
        in_shard += table.num_rows
        rows_done += table.num_rows
        bar.update(table.num_rows)

    def close_shard(state):
        nonlocal writer, index, in_shard
        writer.finalize()
        name = shard_name(split, rank, world, index)
        os.replace(partial, data / name)
        progress.add(name, in_shard, state)
        writer, index, in_shard = None, index + 1, 0

    read = math.gcd(shard_size, batch_size)  # a read batch never straddles a model batch or a shard
    pending_rows = 0
    for table in stream.iter(batch_size=read):
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= batch_size or in_shard + pending_rows >= shard_size:
            compute(pending)
            pending, pending_rows = [], 0
            if in_shard >= shard_size:
                close_shard(stream.state_dict())
    if pending:
        compute(pending)
    if writer is not None:
        close_shard(stream.state_dict())
    bar.close()
    progress.finish()


def map_stream_to_parquet(stream, fn: Callable, *, features, fingerprint: str, input_columns: Sequence[str],
                          batch_size: int, output_dir, shard_size: int = 10_000, desc: str | None = None,
                          what: str = "map_stream_to_parquet", split: str = "train"):
    """Map ``stream`` (an ``IterableDataset``) with ``fn`` into Parquet shards under ``output_dir`` (see the module
    doc and :func:`hf_w2s.data.batch_columns.map_batches_to_columns` for ``fn``, ``features`` and ``fingerprint``),
    named as the split ``split`` of the output; returns the shards loaded as one ``datasets.Dataset`` (memory-mapped,
    in the ``datasets`` cache)."""
    from datasets import Features, load_dataset
    from datasets.distributed import split_dataset_by_node
    from datasets.fingerprint import Hasher

    from ..distributed import process_state, run_on_every_process

    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ValueError(f"shard_size must be an integer >= 1 (rows per Parquet shard), got {shard_size!r}")
    if stream.features is None:
        stream = stream._resolve_features()
    state = process_state()
    world, rank = state.num_processes, state.process_index
    all_features = Features({**{c: f for c, f in stream.features.items() if c not in features}, **features})
    key = Hasher.hash([fingerprint, shard_size, world, split])
    output = Path(output_dir)
    part = split_dataset_by_node(stream, rank=rank, world_size=world) if world > 1 else stream

    def work():
        progress = _Progress(output, rank, world, key, shard_size)
        _write_part(part, fn, features=features, all_features=all_features, input_columns=input_columns,
                    batch_size=batch_size, output_dir=output, shard_size=shard_size, split=split, progress=progress,
                    rank=rank, world=world, desc=desc)

    run_on_every_process(work, state, what=what, where="labelled its part of the stream (rows above are counted "
                         "within that part)")
    files = shard_files(output, split)
    if not files:
        raise ValueError(f"the stream given to {what} is empty: there is nothing to write")
    with state.main_process_first():  # one process converts the shards into the datasets cache, the others read it
        return load_dataset("parquet", data_files={split: files}, split=split)


def open_stream(source, split: str | None = None, revision: str | None = None):
    """``source`` as a streaming ``IterableDataset``: a Hub id or a local folder of data files through
    ``load_dataset(..., streaming=True)``, or anything else :func:`~hf_w2s.data.loading.load_image_dataset` opens (a
    ``save_to_disk`` folder, packaged data) through ``Dataset.to_iterable_dataset``. A dataset with several splits
    and no ``split`` gives its ``train`` split (or its only one)."""
    from datasets import IterableDatasetDict, load_dataset

    from .loading import (
        PACKAGED_PREFIX,
        _unreachable,
        is_saved_dataset,
        load_image_dataset,
        looks_local,
        missing_local_error,
        not_found_error,
    )

    name = str(source)
    if name.startswith(PACKAGED_PREFIX) or is_saved_dataset(name):
        return load_image_dataset(name, split=split).to_iterable_dataset()
    if looks_local(name) and not Path(name).exists():
        raise missing_local_error(name)
    try:
        stream = load_dataset(name, split=split, revision=revision, streaming=True)
    except Exception as err:
        if Path(name).exists() or not _unreachable(err):
            raise
        raise not_found_error(name, "dataset", err) from err
    if isinstance(stream, IterableDatasetDict):
        if "train" in stream or len(stream) == 1:
            return stream["train"] if "train" in stream else next(iter(stream.values()))
        raise ValueError(f"{name!r} has several splits {sorted(stream)} and none is named 'train': name the split")
    return stream
