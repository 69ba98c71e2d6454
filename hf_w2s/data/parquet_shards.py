"""A dataset as Parquet shards of bounded size, the form in which weak labels are pushed to the Hub.

The shards are those of ``Dataset.push_to_hub``: ``data/SPLIT-INDEX-of-COUNT.parquet``, contiguous rows, as many as
the dataset's size divided by ``max_shard_size`` (+1), media files embedded, ``datasets`` features in the Parquet
schema. Writing is deterministic (the same rows give the same bytes), so a push resumed after a failure finds the
shards already on the Hub by their sha256 and uploads none of them again.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["plan_shards", "write_parquet", "parquet_rows", "shard_path"]


def shard_path(split: str, index: int, count: int) -> str:
    """The path in the repo of shard ``index`` of ``count`` (``Dataset.push_to_hub``'s naming)."""
    return f"data/{split}-{index:05d}-of-{count:05d}.parquet"


def plan_shards(dataset, max_shard_size: int | str = "500MB") -> list[range]:
    """Contiguous row ranges of about ``max_shard_size`` bytes each (of the dataset's Arrow size), as
    ``Dataset.push_to_hub`` splits a dataset."""
    from datasets.utils.py_utils import convert_file_size_to_int

    from ..distributed import process_rows

    # a number of bytes as it is (datasets 4.0's convert_file_size_to_int takes an int or a str, not a float)
    size = int(max_shard_size) if isinstance(max_shard_size, (int, float)) else convert_file_size_to_int(max_shard_size)
    if size < 1:
        raise ValueError(f"max_shard_size must be a positive size (bytes or e.g. '500MB'), got {max_shard_size!r}")
    nbytes = dataset._estimate_nbytes() if len(dataset) else 0  # datasets 4.0 divides by the rows it samples
    count = min(int((nbytes or 0) / size) + 1, max(len(dataset), 1))
    return [process_rows(len(dataset), count, i) for i in range(count)]


def write_parquet(dataset, path, batch_size: int = 1000) -> int:
    """Write ``dataset`` (e.g. one shard) to the Parquet file ``path`` with its ``datasets`` features, local media
    files embedded; returns its size in bytes."""
    from datasets.arrow_writer import ParquetWriter

    writer = ParquetWriter(path=str(path), features=dataset.features, embed_local_files=True)
    try:
        for table in dataset.with_format("arrow").iter(batch_size=batch_size):
            writer.write_table(table)
        writer.finalize()
    finally:
        writer.close()
    return Path(path).stat().st_size


def parquet_rows(path) -> int:
    """The number of rows of a Parquet file (from its footer)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(str(path)).metadata.num_rows
