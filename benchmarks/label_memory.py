"""Peak memory of labelling with hf_w2s.label_dataset at two dataset sizes: labels go to Arrow, memory stays flat.

Both datasets are written first (the packaged digits repeated to N rows); then each size runs in a child forked from
that one state (the same imports, nothing of the other size), which loads its on-disk dataset (memory-mapped), labels
it, and reports its resident set size before labelling and its peak while labelling (sampled every 5 ms). Linux only
(/proc, fork).

    OMP_NUM_THREADS=1 python benchmarks/label_memory.py [--sizes 5000 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(path: str) -> dict:
    import datasets
    from common import PeakRss, processor, weak_model

    from hf_w2s.data.weak_labels import label_dataset

    ds = datasets.load_from_disk(path)
    model, proc = weak_model(), processor()
    with PeakRss() as rss:
        out = label_dataset(ds, model, proc, batch_size=256)
    return {"n": len(out), "before_kb": rss.before, "peak_kb": rss.peak,
            "cache_mb": sum(Path(f["filename"]).stat().st_size for f in out.cache_files) / 2**20}


def in_forked_child(path: str) -> dict:
    """``child(path)`` in a forked copy of this process; its result comes back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            result = json.dumps(child(path)).encode()
        except BaseException as err:  # reported by the parent
            result, code = json.dumps({"error": repr(err)}).encode(), 1
        with os.fdopen(write, "wb") as pipe:
            pipe.write(result)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        result = json.loads(pipe.read().decode())
    os.waitpid(pid, 0)
    if "error" in result:
        raise RuntimeError(f"labelling {path} failed in the child: {result['error']}")
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs=2, default=[5000, 50000])
    a = p.parse_args()
    import datasets
    from common import header, repeated_digits

    header("peak memory of label_dataset at two sizes")
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            repeated_digits(n).save_to_disk(f"{tmp}/ds{n}")
        rows = [in_forked_child(f"{tmp}/ds{n}") for n in a.sizes]
    for r in rows:
        print(f"N = {r['n']:>7}: RSS before labelling {r['before_kb'] / 1024:6.1f} MiB, peak while labelling "
              f"{r['peak_kb'] / 1024:6.1f} MiB (+{(r['peak_kb'] - r['before_kb']) / 1024:.1f} MiB); labels written "
              f"to Arrow: {r['cache_mb']:.1f} MiB")
    small, large = rows
    grow_small, grow_large = (r["peak_kb"] - r["before_kb"] for r in rows)
    print(f"peak RSS ratio N={large['n']} / N={small['n']}: {large['peak_kb'] / small['peak_kb']:.3f} for "
          f"{large['n'] / small['n']:.0f}x the rows (flat = close to 1); growth while labelling "
          f"{grow_small / 1024:.1f} MiB vs {grow_large / 1024:.1f} MiB")

if __name__ == "__main__":
    main()
